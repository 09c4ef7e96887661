/**
 * Generation with the KV cache and the intervention hooks: cached greedy decoding must pick exactly the argmax
 * of a full forward pass (same interventions), sampling is seeded, and each intervention has its defined effect.
 */
import { createModel, type NativeModel, type Interventions } from '../native';
import { streamKey, uniform01 } from '../native/rng';
import type { ModelConfig } from '../native/types';

const base = { vocabSize: 40, realVocabSize: 37, nPositions: 24, nEmbd: 16, nLayer: 2, nHead: 2, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 };
const gpt2: ModelConfig = { arch: 'gpt2', ...base };
const backpack: ModelConfig = { arch: 'backpack', ...base, numSenses: 4, senseIntermediateScale: 2 };

function randomModel(config: ModelConfig, seed: number): NativeModel {
  const m = createModel(config, seed);
  const p = m.getParams();
  const key = streamKey(seed, 3);
  for (const t of m.tensors) {
    const isLnWeight = /ln(_\d|_f)?\.weight$|\.ln\.weight$/.test(t.key);
    for (let i = 0; i < t.size; i++) p[t.offset + i] = (isLnWeight ? 1 : 0) + (uniform01(key, t.offset + i) - 0.5) * 0.8;
  }
  m.setParams(p);
  return m;
}

/** Greedy next token under a full forward pass over `seq` (argmax over the real vocabulary). */
async function fullArgmax(m: NativeModel, seq: number[], iv?: Interventions): Promise<number> {
  const { vocabSize: V, realVocabSize: R } = m.config;
  const tokens = Int32Array.from(seq);
  const { logits } = await m.forward(tokens, { batch: 1, seq: seq.length, logits: true, interventions: iv });
  const row = logits!.subarray((seq.length - 1) * V, seq.length * V);
  let best = 0;
  for (let i = 1; i < R; i++) if (row[i] > row[best]) best = i;
  return best;
}

const prompts = [Int32Array.from([36, 4, 9]), Int32Array.from([36]), Int32Array.from([36, 11, 2, 30, 8])];

describe.each([['gpt2', gpt2], ['backpack', backpack]] as const)('%s generation', (_n, config) => {
  test('cached greedy decoding equals full-forward argmax, batched prompts of different lengths', async () => {
    const m = randomModel(config, 5);
    const out = await m.generate({ prompt: prompts, maxNewTokens: 8, greedy: true, seed: 0 });
    expect(out.map((o) => o.length)).toEqual([8, 8, 8]);
    for (const [r, p] of prompts.entries()) {
      const seq = Array.from(p);
      for (const t of out[r]) {
        expect(t).toBe(await fullArgmax(m, seq));
        expect(t).toBeLessThan(config.realVocabSize);
        seq.push(t);
      }
    }
  });

  test('sampling is reproducible from the seed and varies with it', async () => {
    const m = randomModel(config, 6);
    const opts = { prompt: prompts, maxNewTokens: 10, temperature: 1.5, topK: 20, topP: 0.95 };
    const a = await m.generate({ ...opts, seed: 1 });
    const b = await m.generate({ ...opts, seed: 1 });
    const c = await m.generate({ ...opts, seed: 2 });
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    for (const row of a) for (const t of row) expect(t).toBeLessThan(config.realVocabSize);
  });

  test('eosId stops a row', async () => {
    const m = randomModel(config, 5);
    const free = await m.generate({ prompt: [prompts[0]], maxNewTokens: 8, greedy: true, seed: 0 });
    const eos = free[0][2];
    const stopped = await m.generate({ prompt: [prompts[0]], maxNewTokens: 8, greedy: true, seed: 0, eosId: eos });
    expect(Array.from(stopped[0])).toEqual(Array.from(free[0]).slice(0, Array.from(free[0]).indexOf(eos) + 1));
  });
});

describe('interventions', () => {
  const k = 4, d = 16, V = 40;

  test('generation with every intervention matches full forward passes with the same interventions', async () => {
    const m = randomModel(backpack, 8);
    const byToken = new Float32Array(V * k).fill(1);
    for (let l = 0; l < k; l++) byToken[11 * k + l] = 3 - l;
    const iv: Interventions = {
      senseScaleByToken: byToken,
      alphaScale: { sense: 2, tokenIds: [4, 36], factor: 0.3 },
      senseReplace: [{ tokenId: 9, vectors: Float32Array.from({ length: k * d }, (_, i) => Math.sin(i)) }],
      embeddingReplace: [{ tokenId: 2, row: Float32Array.from({ length: d }, (_, i) => Math.cos(i)) }],
    };
    const out = await m.generate({ prompt: prompts, maxNewTokens: 6, greedy: true, seed: 0, interventions: iv });
    for (const [r, p] of prompts.entries()) {
      const seq = Array.from(p);
      for (const t of out[r]) {
        expect(t).toBe(await fullArgmax(m, seq, iv));
        seq.push(t);
      }
    }
    const plain = await m.generate({ prompt: prompts, maxNewTokens: 6, greedy: true, seed: 0 });
    expect(plain).not.toEqual(out);
  });

  test('senseScaleFn (recomputed from the sequence each step) matches forward with per-position scales', async () => {
    const m = randomModel(backpack, 9);
    // scale of position j, sense l depends on how often x_j occurs in the whole current sequence
    const fn = (seqs: Int32Array[]) =>
      seqs.map((s) => {
        const out = new Float32Array(s.length * k);
        for (let j = 0; j < s.length; j++) {
          const count = s.filter((x) => x === s[j]).length;
          for (let l = 0; l < k; l++) out[j * k + l] = 1 + 0.5 * count * (l % 2);
        }
        return out;
      });
    const out = await m.generate({ prompt: [prompts[2]], maxNewTokens: 6, greedy: true, seed: 0, senseScaleFn: fn });
    const seq = Array.from(prompts[2]);
    for (const t of out[0]) {
      expect(t).toBe(await fullArgmax(m, seq, { senseScale: fn([Int32Array.from(seq)])[0] }));
      seq.push(t);
    }
  });

  test('scaling every sense by 2 doubles the logits (the output is linear in the senses)', async () => {
    const m = randomModel(backpack, 10);
    const tokens = Int32Array.from([1, 2, 3, 4, 5, 6]);
    const a = await m.forward(tokens, { batch: 2, seq: 3, logits: true });
    const b = await m.forward(tokens, { batch: 2, seq: 3, logits: true, interventions: { senseScale: new Float32Array(6 * k).fill(2) } });
    for (let i = 0; i < a.logits!.length; i++) expect(b.logits![i]).toBeCloseTo(2 * a.logits![i], 4);
  });

  test('alphaScale zeroes alpha of one sense at key positions holding the tokens, without renormalising', async () => {
    const m = randomModel(backpack, 11);
    const tokens = Int32Array.from([7, 3, 7, 5]);
    const T = 4;
    const a = await m.forward(tokens, { batch: 1, seq: T, alpha: true });
    const b = await m.forward(tokens, { batch: 1, seq: T, alpha: true, interventions: { alphaScale: { sense: 1, tokenIds: [7], factor: 0 } } });
    for (let l = 0; l < k; l++)
      for (let i = 0; i < T; i++)
        for (let j = 0; j <= i; j++) {
          const at = (l * T + i) * T + j;
          const want = l === 1 && tokens[j] === 7 ? 0 : a.alpha![at];
          expect(b.alpha![at]).toBeCloseTo(want, 6);
        }
    // each row of an unmodified sense sums to 1
    for (let i = 0; i < T; i++) {
      let s = 0;
      for (let j = 0; j <= i; j++) s += a.alpha![(0 * T + i) * T + j];
      expect(s).toBeCloseTo(1, 5);
    }
  });

  test('senseVectors: position 0 output is the sum of its senses; senseReplace shows up in senseVectors', async () => {
    const m = randomModel(backpack, 12);
    const tokens = Int32Array.from([13, 2]);
    const { hidden } = await m.forward(tokens, { batch: 1, seq: 2, hidden: true });
    const c = await m.senseVectors(Int32Array.from([13]));
    expect(c.length).toBe(k * d);
    for (let e = 0; e < d; e++) {
      let s = 0;
      for (let l = 0; l < k; l++) s += c[l * d + e];
      expect(hidden![e]).toBeCloseTo(s, 4);
    }
    const vectors = Float32Array.from({ length: k * d }, (_, i) => i / 10);
    const r = await m.senseVectors(Int32Array.from([13, 9]), { senseReplace: [{ tokenId: 9, vectors }] });
    expect(Array.from(r.subarray(k * d))).toEqual(Array.from(vectors));
    // (a different batch shape may round differently in the GEMM kernels)
    for (let i = 0; i < k * d; i++) expect(r[i]).toBeCloseTo(c[i], 5);
  });
});

describe('bad token ids', () => {
  test('forward, trainStep and senseVectors name the offending id and where it stands', async () => {
    const m = randomModel(backpack, 13);
    const { vocabSize: V, realVocabSize: R } = backpack;
    await expect(m.forward(Int32Array.from([1, 2, V, 3]), { batch: 2, seq: 2 })).rejects.toThrow(
      new RegExp(`token id ${V} at index 2 outside 0\\.\\.${V - 1}`),
    );
    await expect(m.forward(Int32Array.from([1, -4]), { batch: 1, seq: 2 })).rejects.toThrow(/token id -4 at index 1/);
    const ok = Int32Array.from([1, 2, 3, 4]);
    await expect(m.trainStep(ok, Int32Array.from([1, 2, 3, R]), 2, 2, { dropout: 0, rngSeed: 1, gradScale: 1 })).rejects.toThrow(
      new RegExp(`target id ${R} at index 3 is not a real vocabulary item`),
    );
    await expect(m.senseVectors(Int32Array.from([5, V + 7]))).rejects.toThrow(new RegExp(`token id ${V + 7} outside the vocabulary`));
    // and a valid batch still runs afterwards
    const r = await m.trainStep(ok, Int32Array.from([1, 2, 3, -1]), 2, 2, { dropout: 0, rngSeed: 1, gradScale: 1 });
    expect(r.count).toBe(3);
    expect(Number.isFinite(r.loss)).toBe(true);
  });
});
