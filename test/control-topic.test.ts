import * as path from 'path';
import { ToyBackpack } from './helpers/control-toy-backpack';
import {
  localizeOnModel,
  projectionStatsByForward,
  scoresFromColumns,
  localizationScores,
  quantileWeights,
  quantilesLinear,
  senseProjectionStats,
  strengthWeights,
} from '../activities/control/topic/localize';
import { AnnealingState, annealingScale, annealingWeights } from '../activities/control/topic/anneal';
import { sampleFromLogits, sharedSample } from '../activities/control/topic/sampler';
import { generateTopicSamples } from '../activities/control/topic/generate';
import { TOPICS, bagTargetIds, readTopicBag } from '../activities/control/topic/topics';
import { Rng } from '../activities/control/util/rng';
import { SHARED_DATA } from './helpers/shared-data';

// Hand-built model: V = 4, d = 2, k = 2, token 3 is EOS.
//   E: e0 = (1,0), e1 = (0,1), e2 = (1,1), e3 = (−2,0)
//   C(0) = [(1,0), (0,1)], C(1) = [(0,2), (1,−1)], C(2) = [(1,1), (0,0)], C(3) = [(0,0), (1,0)]
const E = Float32Array.from([1, 0, 0, 1, 1, 1, -2, 0]);
const C = Float32Array.from([1, 0, 0, 1, 0, 2, 1, -1, 1, 1, 0, 0, 0, 0, 1, 0]);
const EOS = 3;
const table = { vocab: 4, senses: 2, dim: 2, vectors: C };
const skipEos = (v: number) => v === EOS;

describe('localization score matrix S', () => {
  it('matches the hand computation for signed max (D2 default) and absolute max', () => {
    const stats = senseProjectionStats(E, table, skipEos);
    // Λ(0,0) = [1,0,1,−2]: max 1, |max| 2.  Λ(1,1) = [1,−1,0,−2]: max 1, |max| 2.  Λ(2,1) = 0.
    expect(Array.from(stats.max)).toEqual([1, 1, 2, 1, 2, 0, 0, 0]);
    expect(Array.from(stats.absMax)).toEqual([2, 1, 2, 2, 2, 0, 0, 0]);
    // Target token 1: S[v,ℓ] = Λ(v,ℓ)[1] / normaliser.
    const sMax = localizationScores(E, table, stats, [1], 'max', skipEos);
    expect(Array.from(sMax)).toEqual([0, 1, 1, -1, 0.5, 0, 0, 0]);
    const sAbs = localizationScores(E, table, stats, [1], 'absmax', skipEos);
    expect(Array.from(sAbs)).toEqual([0, 1, 1, -0.5, 0.5, 0, 0, 0]);
    // Two targets add up: targets {1, 2}: Λ(0,0)[1]+Λ(0,0)[2] = 0 + 1 → 1/1.
    const sTwo = localizationScores(E, table, stats, [1, 2], 'max', skipEos);
    expect(Array.from(sTwo)).toEqual([1, 2, 2, -1, 1.5, 0, 0, 0]);
  });
  it('rejects target ids outside the vocabulary', () => {
    const stats = senseProjectionStats(E, table, skipEos);
    expect(() => localizationScores(E, table, stats, [9], 'max', skipEos)).toThrow(/target id 9/);
  });
});

describe('quantile weights δ', () => {
  it('uses numpy linear-interpolation quantiles', () => {
    // numpy.quantile([1, 2, 3, 4], [0.95, 0.8, 0.6, 0, 1]) = [3.85, 3.4, 2.8, 1, 4]
    const q = quantilesLinear([4, 1, 3, 2], [0.95, 0.8, 0.6, 0, 1]);
    [3.85, 3.4, 2.8, 1, 4].forEach((v, i) => expect(q[i]).toBeCloseTo(v, 12));
  });
  it('assigns δ by band, and 1 to entries equal to a quantile (hand computation)', () => {
    // S sorted: [−1, 0, 0, 0, 0, 0.5, 1, 1] → q95 = 1, q80 = 0.8, q60 = 0.1.
    const s = Float32Array.from([0, 1, 1, -1, 0.5, 0, 0, 0]);
    const w3 = quantileWeights(s, strengthWeights(3));
    expect(w3.q95).toBeCloseTo(1, 12);
    expect(w3.q80).toBeCloseTo(0.8, 12);
    expect(w3.q60).toBeCloseTo(0.1, 12);
    // S = 1 equals q95 → 1; S = 0.5 in (q60, q80) → δ2 = 3; the rest < q60 → δ3 = 1.
    expect(Array.from(w3.delta)).toEqual([1, 1, 1, 1, 3, 1, 1, 1]);
    expect(w3.maxDelta).toBe(3.3);
    const w1 = quantileWeights(s, strengthWeights(1));
    expect(w1.delta[4]).toBeCloseTo(1.3, 6);
    // A spread-out S reaches every band.
    const spread = Float32Array.from(Array.from({ length: 100 }, (_, i) => i));
    const w2 = quantileWeights(spread, strengthWeights(2)); // q95 = 94.05, q80 = 79.2, q60 = 59.4
    expect(w2.delta[99]).toBeCloseTo(2.2, 6);
    expect(w2.delta[90]).toBeCloseTo(2.2, 6);
    expect(w2.delta[70]).toBeCloseTo(1.5, 6);
    expect(w2.delta[10]).toBe(1);
  });
  it('knows the strength table and rejects unknown strengths', () => {
    expect(strengthWeights(0)).toEqual([1, 1, 1, 1]);
    expect(strengthWeights(2)).toEqual([2.2, 2.2, 1.5, 1]);
    expect(() => strengthWeights(4)).toThrow(/strength/);
  });
});

describe('annealing', () => {
  it('f = max δ / 7.5 (code, D3) or 7.5 / max δ (paper)', () => {
    expect(annealingScale(3.3, 'code')).toBeCloseTo(0.44, 12);
    expect(annealingScale(2.2, 'code')).toBeCloseTo(0.29333333, 8);
    expect(annealingScale(1.5, 'paper')).toBeCloseTo(5, 12);
  });
  it('computes a, b and w by hand for the sequence [EOS, 0, 1]', () => {
    // δ rows: v0 = [2, 1], v1 = [1, 3], v2 = [1, 1], v3 = [1, 1]; max δ = 3 → f = 0.4.
    const delta = Float32Array.from([2, 1, 1, 3, 1, 1, 1, 1]);
    const seq = [3, 0, 1];
    const senseOf = (id: number) => C.subarray(id * 4, id * 4 + 4);
    const { a, b, w } = annealingWeights(seq, senseOf, E, 2, 2, delta, 3);
    // a_{ℓ,j} = Σ_i ReLU(Λ(x_j, ℓ)[x_i]) over x = (3, 0, 1):
    //   j=0 (x=3): ℓ0 Λ=0 → 0;                ℓ1 Λ=[1,0,1,−2] → (−2, 1, 0) → 1
    //   j=1 (x=0): ℓ0 Λ=[1,0,1,−2] → 1;       ℓ1 Λ=[0,1,1,0] → (0, 0, 1) → 1
    //   j=2 (x=1): ℓ0 Λ=[0,2,2,0] → 2;        ℓ1 Λ=[1,−1,0,−2] → (−2, 1, −1) → 1
    expect(Array.from(a)).toEqual([0, 1, 1, 1, 2, 1]);
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    const expectB = [sig(6), sig(-0.4 + 6), sig(-0.4 + 6) * 1.01, sig(-0.4 + 6) * 1.01, sig(-0.8 + 6) * 1.02, sig(-0.4 + 6) * 1.02];
    expectB.forEach((v, i) => expect(b[i]).toBeCloseTo(v, 12));
    const deltaAt = [1, 1, 2, 1, 1, 3]; // δ[x_j, ℓ]
    deltaAt.forEach((dl, i) => expect(w[i]).toBeCloseTo(dl * expectB[i] + 1 - expectB[i], 6));
    // b may exceed 1 (no clipping): at j = 2, ℓ = 1 it is 1.02·σ(5.6) ≈ 1.0163 → w = 3b + 1 − b.
    expect(b[5]).toBeGreaterThan(1);
    // Paper mix (D4 variant): w = δ b + (1 − a).
    const paper = annealingWeights(seq, senseOf, E, 2, 2, delta, 3, { scaleMode: 'code', mixMode: 'paper' });
    deltaAt.forEach((dl, i) => expect(paper.w[i]).toBeCloseTo(dl * expectB[i] + 1 - a[i], 6));
  });
});

describe('shared sampler', () => {
  it('draws from the softmax over all logits', () => {
    const rng = new Rng(1);
    const logits = Float32Array.from([0, Math.log(3), -Infinity, 0]);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 20000; i++) counts[sampleFromLogits(logits, 0, 4, rng)]++;
    expect(counts[2]).toBe(0);
    expect(counts[1] / 20000).toBeCloseTo(0.6, 1);
    expect(counts[0] / 20000).toBeCloseTo(0.2, 1);
  });
  it('returns prompt + sampled tokens up to the total length, recomputing every step', async () => {
    const model = new ToyBackpack(E, C, 4, 2, 2);
    const out = await sharedSample(model, { prompts: [[EOS], [EOS]], totalLength: 7, rng: new Rng(3) });
    expect(out).toHaveLength(2);
    out.forEach((s) => {
      expect(s).toHaveLength(7);
      expect(s[0]).toBe(EOS);
    });
    expect(model.calls.map((c) => c.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(model.calls.every((c) => c.batch === 2)).toBe(true);
  });
});

describe('topic generation', () => {
  it('passes the annealed weights of the whole current sequence as senseScale', async () => {
    const model = new ToyBackpack(E, C, 4, 2, 2);
    const delta = Float32Array.from([2, 1, 1, 3, 1, 1, 1, 1]);
    const samples = await generateTopicSamples(model, { delta, maxDelta: 3, samples: 2, batchSize: 2, prompt: [EOS], totalLength: 5, seed: 9 });
    expect(samples).toHaveLength(2);
    const last = model.calls[model.calls.length - 1];
    const scale = last.interventions!.senseScale!;
    expect(scale).toHaveLength(2 * 4 * 2);
    for (let b = 0; b < 2; b++) {
      const seq = samples[b].slice(0, 4);
      const { w } = annealingWeights(seq, (id) => C.subarray(id * 4, id * 4 + 4), E, 2, 2, delta, 3);
      Array.from(w).forEach((x, i) => expect(scale[b * 8 + i]).toBeCloseTo(x, 6));
    }
  });
  it('is reproducible for a seed and unmodified at strength 0 (no interventions passed)', async () => {
    const a = await generateTopicSamples(new ToyBackpack(E, C, 4, 2, 2), { maxDelta: 1, samples: 3, batchSize: 2, prompt: [EOS], totalLength: 6, seed: 4 });
    const model = new ToyBackpack(E, C, 4, 2, 2);
    const b = await generateTopicSamples(model, { maxDelta: 1, samples: 3, batchSize: 2, prompt: [EOS], totalLength: 6, seed: 4 });
    expect(a).toEqual(b);
    expect(a).toHaveLength(3);
    expect(model.calls.every((c) => c.interventions === undefined)).toBe(true);
  });
  it('raises the frequency of a topic word when its sense is up-weighted', async () => {
    // Only token 2's sense 0 (S = 0.5) lands in a boosted band; its projection Λ = [1, 1, 2, −2] favours
    // token 2 itself, so up-weighting it makes 2 more frequent (measured here: 410 → 497 of 704 tokens).
    const model = new ToyBackpack(E, C, 4, 2, 2);
    const stats = senseProjectionStats(E, table, skipEos);
    const s = localizationScores(E, table, stats, [1], 'max', skipEos);
    const weights = quantileWeights(s, strengthWeights(3));
    const count = (seqs: number[][]) => seqs.flat().filter((t) => t === 2).length;
    const base = await generateTopicSamples(model, { maxDelta: 1, samples: 64, batchSize: 16, prompt: [EOS], totalLength: 12, seed: 5 });
    const boosted = await generateTopicSamples(model, {
      delta: weights.delta,
      maxDelta: weights.maxDelta,
      samples: 64,
      batchSize: 16,
      prompt: [EOS],
      totalLength: 12,
      seed: 5,
    });
    expect(weights.delta[4]).toBe(3); // token 2's sense 0 (S = 0.5) is boosted
    expect(count(boosted)).toBeGreaterThan(count(base));
  });
});

describe('topic table and bags', () => {
  const bags = path.join(SHARED_DATA, 'backpack-topic-classes');
  it('has the 17 topics of D10 in alphabetical order', () => {
    expect(TOPICS).toHaveLength(17);
    expect(TOPICS.map((t) => t.name)).toEqual([...TOPICS.map((t) => t.name)].sort());
  });
  it('reads the bags from the data mirror and maps words to first tokens', () => {
    expect(readTopicBag(bags, 'diaries_daily_life')).toEqual(['diaries', 'daily', 'life']);
    const fakeEncode = (text: string) => Array.from(text.trim()).map((ch) => ch.charCodeAt(0));
    expect(bagTargetIds(['ab', 'ac', 'b'], fakeEncode)).toEqual([97, 98]);
  });
});

describe('chunked localization on a model', () => {
  it('equals the one-shot computation and reuses cached normalisers', async () => {
    const model = new ToyBackpack(E, C, 4, 2, 2);
    const stats = senseProjectionStats(E, table, skipEos);
    const oneShot = localizationScores(E, table, stats, [1], 'max', skipEos);
    const chunked = await localizeOnModel((ids) => model.senseVectors(ids), E, 4, 2, 2, [1], 'max', skipEos, { chunk: 3 });
    expect(Array.from(chunked.scores)).toEqual(Array.from(oneShot));
    expect(Array.from(chunked.stats.max)).toEqual(Array.from(stats.max));
    const reused = await localizeOnModel((ids) => model.senseVectors(ids), E, 4, 2, 2, [2], 'absmax', skipEos, { chunk: 1, stats: chunked.stats });
    expect(Array.from(reused.scores)).toEqual(Array.from(localizationScores(E, table, stats, [2], 'absmax', skipEos)));
  });
});

describe('normalisers by forward pass', () => {
  it('equal the direct dot products (one-token rows, one-hot senseScale)', async () => {
    const model = new ToyBackpack(E, C, 4, 2, 2);
    const direct = senseProjectionStats(E, table, skipEos);
    const byForward = await projectionStatsByForward(model, 4, 2, skipEos, { batch: 3 });
    expect(Array.from(byForward.max)).toEqual(Array.from(direct.max));
    expect(Array.from(byForward.absMax)).toEqual(Array.from(direct.absMax));
  });
});

describe('incremental annealing', () => {
  it('gives the same weights as the whole-sequence formula at every length', () => {
    const delta = Float32Array.from([2, 1, 1, 3, 1.5, 1, 1, 1]);
    const senseOf = (id: number) => C.subarray(id * 4, id * 4 + 4);
    const seq = [3, 0, 1, 2, 1, 0, 2, 2];
    const state = new AnnealingState(senseOf, E, 2, 2, delta, 3);
    for (let n = 1; n <= seq.length; n++) {
      state.syncTo(seq.slice(0, n));
      const whole = annealingWeights(seq.slice(0, n), senseOf, E, 2, 2, delta, 3).w;
      const inc = state.weights();
      Array.from(whole).forEach((x, i) => expect(inc[i]).toBeCloseTo(x, 6));
    }
    expect(() => state.syncTo([0, 0])).toThrow(/does not extend/);
  });
});

describe('scores from recorded columns', () => {
  it('equal the sense-vector computation for recorded targets and decline unrecorded ones', async () => {
    const model = new ToyBackpack(E, C, 4, 2, 2);
    const stats = await projectionStatsByForward(model, 4, 2, skipEos, { recordColumns: [1, 2] });
    const direct = senseProjectionStats(E, table, skipEos);
    for (const norm of ['max', 'absmax'] as const) {
      expect(Array.from(scoresFromColumns(stats, [1, 2], norm, skipEos)!)).toEqual(Array.from(localizationScores(E, table, direct, [1, 2], norm, skipEos)));
    }
    expect(scoresFromColumns(stats, [0], 'max', skipEos)).toBeUndefined();
  });
});
