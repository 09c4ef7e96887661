/**
 * PPLM on the native engine (native/pplm.ts, native/src/pplm/) against the float64 TypeScript reference
 * (activities/control/pplm/gpt2.ts) and against finite differences, on a tiny random GPT-2 whose weights are
 * pushed far from init so attention and the MLP are strongly non-linear.
 */
import * as fs from 'fs';
import * as path from 'path';
import { createModel, type NativeModel } from '../native/index';
import { PplmSession } from '../native/pplm';
import { backwardToCache, emptyCache, forwardSequence, forwardStep, loadGpt2Weights, type Gpt2Weights, type KVCache } from '../activities/control/pplm/gpt2';
import { pplmLoss, pplmSample, PPLM_DEFAULTS, type UnperturbedModel } from '../activities/control/pplm/pplm';
import { pplmSamplesNative } from '../activities/control/pplm/native';
import { Rng } from '../activities/control/util/rng';
import { pplmActivity, trainTopicClassifierActivity } from '../activities/control';
import { activityContext, inputArtifact, tempDir } from './helpers/eval-ctx';
import { buildControlFixture, MIRROR } from './helpers/control-fixtures';

const V = 48;
const L = 2;
const D = 16;
const H = 2;
const DH = D / H;
let w: Gpt2Weights;
let model: NativeModel;

beforeAll(async () => {
  model = createModel({ arch: 'gpt2', vocabSize: V, realVocabSize: 45, nPositions: 32, nEmbd: D, nLayer: L, nHead: H, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 }, 5);
  const params = model.getParams();
  const rng = new Rng(9);
  for (let i = 0; i < params.length; i++) params[i] += (rng.nextFloat() - 0.5) * 0.6;
  model.setParams(params);
  const dir = path.join(tempDir('control-pplm-native-'), 'gpt2');
  await model.save(dir);
  w = loadGpt2Weights(dir);
});

afterAll(() => model.dispose());

const seq = [44, 3, 17, 9, 30, 12, 5];
const bag = [4, 11, 20];

function softmax(l: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < l.length; i++) m = Math.max(m, l[i]);
  const e = Float64Array.from({ length: l.length }, (_, i) => Math.exp(l[i] - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/** Native layout [L][2][P][d] (one row) -> value of the TypeScript cache layout [H][T][dh] at (l, kv, h, j, t). */
function nativeIndex(P: number, l: number, kv: number, h: number, j: number, t: number): number {
  return ((l * 2 + kv) * P + j) * D + h * DH + t;
}

/** A random perturbation in the native layout over P positions, and the TypeScript cache it produces. */
function perturbation(past: KVCache, P: number, seed: number, scale: number): { delta: Float32Array; cache: KVCache } {
  const rng = new Rng(seed);
  const delta = new Float32Array(L * 2 * P * D).map(() => (rng.nextFloat() - 0.5) * scale);
  const T = past.length;
  const cache: KVCache = {
    length: T,
    layers: past.layers.map((layer, l) => {
      const k = Float64Array.from(layer.k);
      const v = Float64Array.from(layer.v);
      for (let h = 0; h < H; h++)
        for (let j = 0; j < P; j++)
          for (let t = 0; t < DH; t++) {
            k[(h * T + j) * DH + t] += delta[nativeIndex(P, l, 0, h, j, t)];
            v[(h * T + j) * DH + t] += delta[nativeIndex(P, l, 1, h, j, t)];
          }
      return { k, v };
    }),
  };
  return { delta, cache };
}

/** Fills the session's past (and clean) cache with `prefix`; returns the TypeScript cache of the same tokens. */
async function prefill(session: PplmSession, prefix: number[]): Promise<KVCache> {
  await session.reset();
  let cache = emptyCache(w);
  for (const t of prefix) {
    await session.cleanStep(Int32Array.of(t));
    await session.perturbedStep(Int32Array.of(t), null, 0, true);
    cache = forwardStep(w, t, cache).cache;
  }
  return cache;
}

describe('native PPLM session', () => {
  it('clean and carried caches reproduce the engine’s full forward logits', async () => {
    const { logits } = await model.forward(Int32Array.from(seq), { batch: 1, seq: seq.length, logits: true });
    const session = await PplmSession.open(model, 1, 16);
    for (let i = 0; i < seq.length; i++) {
      const clean = await session.cleanStep(Int32Array.of(seq[i]));
      const past = await session.perturbedStep(Int32Array.of(seq[i]), null, 0, true);
      for (let v = 0; v < V; v++) {
        expect(clean[v]).toBeCloseTo(logits![i * V + v], 4);
        expect(past[v]).toBe(clean[v]);
      }
    }
    expect(session.lengths()).toEqual({ clean: seq.length, past: seq.length });
  });

  it('gradient w.r.t. every cached key and value matches the float64 TypeScript reference', async () => {
    const session = await PplmSession.open(model, 1, 16);
    const past = await prefill(session, seq.slice(0, -1)); // T = 6 cached positions
    const T = past.length;
    const last = seq[seq.length - 1];
    const u = softmax(forwardStep(w, last, past).logits);
    // A perturbation on the first 4 positions; the gradient is asked for all 6.
    const { delta, cache } = perturbation(past, 4, 3, 0.4);
    const logits = await session.perturbedStep(Int32Array.of(last), delta, 4, false);
    const ref = forwardStep(w, last, cache);
    for (let v = 0; v < V; v++) expect(Math.abs(logits[v] - ref.logits[v])).toBeLessThan(1e-4 * (1 + Math.abs(ref.logits[v])));
    // The same dLogits (from the float64 logits) into both backward passes isolates the backward's error.
    const { dLogits } = pplmLoss(ref.logits, u, bag, 0.01);
    const grad = await session.backward(Float32Array.from(dLogits), T);
    const refGrads = backwardToCache(w, ref, dLogits);
    let maxAbs = 0;
    let maxErr = 0;
    for (let l = 0; l < L; l++)
      for (const [kv, which] of [[0, 'k'], [1, 'v']] as const)
        for (let h = 0; h < H; h++)
          for (let j = 0; j < T; j++)
            for (let t = 0; t < DH; t++) {
              const r = refGrads[l][which][(h * T + j) * DH + t];
              maxAbs = Math.max(maxAbs, Math.abs(r));
              maxErr = Math.max(maxErr, Math.abs(grad[nativeIndex(T, l, kv, h, j, t)] - r));
            }
    expect(maxAbs).toBeGreaterThan(1e-3); // not vacuous
    expect(maxErr / maxAbs).toBeLessThan(2e-5);
  });

  it('gradient matches central finite differences of the native forward (directional, every layer and K/V)', async () => {
    const session = await PplmSession.open(model, 1, 16);
    const past = await prefill(session, seq.slice(0, -1));
    const T = past.length;
    const last = Int32Array.of(seq[seq.length - 1]);
    const u = softmax(forwardStep(w, seq[seq.length - 1], past).logits);
    const base = perturbation(past, T, 7, 0.3).delta;
    const lossAt = async (delta: Float32Array) => pplmLoss(Float64Array.from(await session.perturbedStep(last, delta, T, false)), u, bag, 0.01).loss;
    await session.perturbedStep(last, base, T, false);
    const logits = Float64Array.from(await session.perturbedStep(last, base, T, false));
    const grad = await session.backward(Float32Array.from(pplmLoss(logits, u, bag, 0.01).dLogits), T);
    const rng = new Rng(11);
    const block = 2 * T * D;
    for (let l = 0; l < L; l++) {
      for (const kv of [0, 1]) {
        // Random direction confined to one layer's keys or values.
        const dir = new Float32Array(base.length);
        let analytic = 0;
        for (let i = 0; i < T * D; i++) {
          const at = l * block + kv * T * D + i;
          dir[at] = rng.nextFloat() - 0.5;
          analytic += grad[at] * dir[at];
        }
        const h = 1e-2;
        const fd = ((await lossAt(base.map((x, i) => x + h * dir[i]))) - (await lossAt(base.map((x, i) => x - h * dir[i])))) / (2 * h);
        expect(Math.abs(analytic)).toBeGreaterThan(1e-3);
        expect(Math.abs(fd - analytic)).toBeLessThan(5e-3 * Math.abs(analytic) + 1e-4);
      }
    }
  });

  it('commit folds the perturbation into the carried past; the clean cache is untouched', async () => {
    const session = await PplmSession.open(model, 1, 16);
    const past = await prefill(session, seq.slice(0, 4));
    const { delta, cache } = perturbation(past, 3, 5, 0.5);
    await session.perturbedStep(Int32Array.of(seq[4]), delta, 3, true);
    const next = await session.perturbedStep(Int32Array.of(seq[5]), null, 0, false);
    const ref = forwardStep(w, seq[5], forwardStep(w, seq[4], cache).cache).logits;
    for (let v = 0; v < V; v++) expect(next[v]).toBeCloseTo(ref[v], 4);
    await session.cleanStep(Int32Array.of(seq[4]));
    const clean = await session.cleanStep(Int32Array.of(seq[5]));
    const refClean = forwardSequence(w, seq.slice(0, 6)).logits;
    for (let v = 0; v < V; v++) expect(clean[v]).toBeCloseTo(refClean[v], 4);
  });

  it('a joint step equals the clean step plus the undisturbed perturbed step, and its trace serves backward', async () => {
    const apart = await PplmSession.open(model, 2, 16);
    const joint = await PplmSession.open(model, 2, 16);
    const rows = [[44, 3, 17, 9], [44, 30, 2, 8]];
    for (let i = 0; i < 4; i++) {
      const tokens = Int32Array.from(rows.map((r) => r[i]));
      const clean = await apart.cleanStep(tokens);
      const past = await apart.perturbedStep(tokens, null, 0, i < 3);
      const both = await joint.jointStep(tokens, i < 3);
      for (let k = 0; k < 2 * V; k++) {
        expect(both.clean[k]).toBeCloseTo(clean[k], 5);
        expect(both.past[k]).toBeCloseTo(past[k], 5);
      }
    }
    expect(joint.lengths()).toEqual({ clean: 4, past: 3 });
    const dLogits = new Float32Array(2 * V).map((_, i) => Math.sin(i));
    const a = await apart.backward(dLogits, 3);
    const b = await joint.backward(dLogits, 3);
    expect(b.length).toBe(2 * L * 2 * 3 * D);
    for (let k = 0; k < a.length; k++) expect(b[k]).toBeCloseTo(a[k], 5);
    await expect(joint.jointStep(Int32Array.of(1, 1), false)).rejects.toThrow(/same length/);
  });

  it('rows are independent sequences decoded in lockstep', async () => {
    const one = await PplmSession.open(model, 1, 8);
    const three = await PplmSession.open(model, 3, 8);
    const rows = [[44, 3, 17], [44, 30, 2], [44, 7, 7]];
    const single: Float32Array[] = [];
    for (const r of rows) {
      await one.reset();
      for (const t of r) single.push(await one.cleanStep(Int32Array.of(t)));
    }
    for (let i = 0; i < 3; i++) {
      const out = await three.cleanStep(Int32Array.from(rows.map((r) => r[i])));
      for (let b = 0; b < 3; b++) for (let v = 0; v < V; v++) expect(out[b * V + v]).toBeCloseTo(single[b * 3 + i][v], 5);
    }
  });

  it('refuses bad input with errors that say what', async () => {
    const session = await PplmSession.open(model, 1, 4);
    await expect(session.backward(new Float32Array(V), 0)).rejects.toThrow(/backward needs a perturbed step first/);
    await expect(session.perturbedStep(Int32Array.of(44), new Float32Array(3), 1, false)).rejects.toThrow(/delta holds 3 values/);
    await expect(session.perturbedStep(Int32Array.of(44), new Float32Array(L * 2 * D), 1, false)).rejects.toThrow(/only 0 are cached/);
    await expect(session.cleanStep(Int32Array.of(V + 5))).rejects.toThrow(/outside the vocabulary/);
    for (let i = 0; i < 4; i++) await session.cleanStep(Int32Array.of(1));
    await expect(session.cleanStep(Int32Array.of(1))).rejects.toThrow(/cache is full/);
    await expect(PplmSession.open(model, 1, 33)).rejects.toThrow(/capacity must be in 1..32/);
    await session.close();
    await expect(session.cleanStep(Int32Array.of(1))).rejects.toThrow(/session was closed/);
    // The model's own calls still work after refused session calls.
    const { logits } = await model.forward(Int32Array.of(44), { batch: 1, seq: 1, logits: true });
    expect(logits!.length).toBe(V);
  });
});

describe('native PPLM sampling', () => {
  const tsUnperturbed: UnperturbedModel = { nextDistribution: async (tokens) => softmax(forwardSequence(w, tokens).logits) };
  const options = { ...PPLM_DEFAULTS, bag, stepsize: 0.05, length: 12 };

  it('gives the same tokens and losses as the float64 TypeScript reference for fixed seeds', async () => {
    for (const seed of [1, 2, 3]) {
      const ref = await pplmSample(w, tsUnperturbed, 44, options, new Rng(seed));
      const session = await PplmSession.open(model, 1, 16);
      const [out] = await pplmSamplesNative(session, 44, options, [new Rng(seed)]);
      expect(out.tokens).toEqual(ref.tokens);
      expect(out.losses).toHaveLength(ref.losses.length);
      out.losses.forEach((x, i) => expect(Math.abs(x - ref.losses[i])).toBeLessThan(1e-4 * (1 + Math.abs(ref.losses[i]))));
    }
  });

  it('a batch of rows gives each row the sample it gets alone', async () => {
    const seeds = [21, 22, 23, 24];
    const batch = await pplmSamplesNative(await PplmSession.open(model, 4, 16), 44, options, seeds.map((s) => new Rng(s)));
    const single = await PplmSession.open(model, 1, 16);
    for (const [i, s] of seeds.entries()) {
      const [alone] = await pplmSamplesNative(single, 44, options, [new Rng(s)]);
      expect(batch[i].tokens).toEqual(alone.tokens);
    }
  });

  it('stepsize 0 is plain ancestral sampling; a large step pulls samples toward the bag', async () => {
    const session = await PplmSession.open(model, 6, 16);
    const rngs = (base: number) => Array.from({ length: 6 }, (_, s) => new Rng(base + s));
    const plain = await pplmSamplesNative(session, 44, { ...options, stepsize: 0 }, rngs(100));
    for (const [s, out] of plain.entries()) expect(out.tokens).toEqual((await pplmSample(w, tsUnperturbed, 44, { ...options, stepsize: 0 }, new Rng(100 + s))).tokens);
    const hits = (samples: { tokens: number[] }[]) => samples.reduce((n, o) => n + o.tokens.slice(1).filter((t) => bag.includes(t)).length, 0);
    const steered = await pplmSamplesNative(session, 44, { ...options, stepsize: 0.5 }, rngs(100));
    expect(hits(steered)).toBeGreaterThan(hits(plain));
  });
});

describe('control.pplm activity', () => {
  it('writes the same samples with the native engine (batched) as with the float64 TypeScript engine', async () => {
    process.env.PIPELINE_DATA_MIRROR = MIRROR;
    process.env.PIPELINE_CACHE_DIR = tempDir('control-pplm-native-cache-');
    const fx = await buildControlFixture();
    const classifier = activityContext('classifier', {});
    await trainTopicClassifierActivity.run(trainTopicClassifierActivity.params.parse({ epochs: 1, heldOut: 50 }), classifier);
    const inputs = {
      transformer: [inputArtifact('transformer', fx.gpt2Dir, { arch: 'gpt2', size: 'test' })],
      tokenizer: [inputArtifact('tokenizer', fx.tokenizerDir)],
      classifier: [inputArtifact('classifier', classifier.outDir)],
    };
    const run = async (engine: 'native' | 'typescript') => {
      const ctx = activityContext(`pplm-${engine}`, inputs);
      const summary = (await pplmActivity.run(pplmActivity.params.parse({ topic: 'sports', stepsize: 0.05, samples: 3, length: 8, seed: 3, engine, batch: 2 }), ctx)) as Record<string, unknown>;
      expect(summary.engine).toBe(engine);
      return JSON.parse(fs.readFileSync(path.join(ctx.outDir, 'texts.json'), 'utf8')) as string[];
    };
    const native = await run('native');
    expect(native).toHaveLength(3);
    expect(new Set(native).size).toBeGreaterThan(1);
    expect(native).toEqual(await run('typescript'));
  });
});
