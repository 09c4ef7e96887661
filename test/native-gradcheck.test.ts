/**
 * Engine vs. the independent float64 reference (test/helpers/native-reference.ts): logits and loss agree to
 * 1e-5 relative, and every gradient entry of every parameter tensor agrees with central finite differences
 * of the reference loss — for tiny GPT-2 and Backpack models, without and with dropout.
 */
import { createModel, type NativeModel } from '../native';
import type { ModelConfig } from '../native/types';
import { streamKey, uniform01 } from '../native/rng';
import { referenceForward, type Weights } from './helpers/native-reference';

const base = { vocabSize: 24, realVocabSize: 21, nPositions: 8, nEmbd: 8, nLayer: 2, nHead: 2, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 };
const configs: Record<string, ModelConfig> = {
  gpt2: { arch: 'gpt2', ...base },
  backpack: { arch: 'backpack', ...base, numSenses: 2, senseIntermediateScale: 2 },
  'backpack-shrink': { arch: 'backpack', ...base, numSenses: 4, senseIntermediateScale: 4, shrinkSenseMlp: true },
};

const B = 2, T = 5;
const tokens = Int32Array.from([3, 7, 1, 20, 23, 5, 5, 0, 12, 9]);
const targets = Int32Array.from([7, 1, 20, 4, 2, 5, -1, 12, 9, 20]);

/** Randomises all parameters (larger than the init so every path carries signal). */
function randomise(model: NativeModel, seed: number): void {
  const p = model.getParams();
  const key = streamKey(seed, 7);
  for (let i = 0; i < p.length; i++) p[i] = (uniform01(key, i) - 0.5) * 0.6;
  for (const t of model.tensors) if (/ln(_\d|_f)?\.weight$|\.ln\.weight$/.test(t.key)) for (let i = 0; i < t.size; i++) p[t.offset + i] += 1;
  model.setParams(p);
}

/** The engine's parameters in the Hugging Face layout, float64. */
function toWeights(model: NativeModel): Weights {
  const p = model.getParams();
  const w: Weights = new Map();
  for (const t of model.tensors) {
    const src = p.subarray(t.offset, t.offset + t.size);
    const data = new Float64Array(t.size);
    if (t.conv1d) {
      const [out, inF] = t.shape;
      for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) data[i * out + o] = src[o * inF + i];
      w.set(t.key, { shape: [inF, out], data });
    } else {
      data.set(src);
      w.set(t.key, { shape: t.shape, data });
    }
  }
  return w;
}

describe.each(Object.keys(configs))('native engine vs float64 reference: %s', (name) => {
  const config = configs[name];

  test('logits and loss agree to 1e-5 relative', async () => {
    const model = createModel(config, 1);
    randomise(model, 3);
    const ref = referenceForward(config, toWeights(model), tokens, B, T, targets);
    const out = await model.forward(tokens, { batch: B, seq: T, logits: true, targets, alpha: config.arch === 'backpack' });
    let maxRel = 0;
    const scale = Math.max(...Array.from(ref.logits, Math.abs));
    for (let i = 0; i < ref.logits.length; i++) maxRel = Math.max(maxRel, Math.abs(out.logits![i] - ref.logits[i]) / scale);
    expect(maxRel).toBeLessThan(1e-5);
    expect(Math.abs(out.loss! - ref.loss) / ref.loss).toBeLessThan(1e-5);
    if (config.arch === 'backpack') {
      for (let i = 0; i < ref.alpha!.length; i++) expect(Math.abs(out.alpha![i] - ref.alpha![i])).toBeLessThan(1e-5);
    }
    // padding rows take part in the softmax: the engine's mean loss equals the reference's over all V rows
    expect(config.vocabSize).toBeGreaterThan(config.realVocabSize);
  });

  test.each([0, 0.25])('gradients of every tensor match finite differences (dropout %p)', async (p) => {
    const model = createModel(config, 2);
    randomise(model, 5);
    const seed = 99;
    await model.zeroGrad();
    const step = await model.trainStep(tokens, targets, B, T, { dropout: p, rngSeed: seed, gradScale: 1 });
    const weights = toWeights(model);
    const opts = { dropout: p, seed };
    const refLoss = referenceForward(config, weights, tokens, B, T, targets, opts).loss;
    expect(Math.abs(step.loss - refLoss) / refLoss).toBeLessThan(1e-5);
    const grads = model.getGrads();
    const h = 1e-5;
    for (const t of model.tensors) {
      const w = weights.get(t.key)!;
      // every entry of small tensors, a spread sample of 24 entries of larger ones
      const picks = t.size <= 24 ? [...Array(t.size).keys()] : Array.from({ length: 24 }, (_, j) => Math.floor(((j + uniform01(11, j)) * t.size) / 24));
      const fd = new Float64Array(picks.length);
      const native = new Float64Array(picks.length);
      for (const [n, e] of picks.entries()) {
        const orig = w.data[e];
        w.data[e] = orig + h;
        const up = referenceForward(config, weights, tokens, B, T, targets, opts).loss;
        w.data[e] = orig - h;
        const down = referenceForward(config, weights, tokens, B, T, targets, opts).loss;
        w.data[e] = orig;
        fd[n] = (up - down) / (2 * h);
        // HF index e -> engine index (Conv1D tensors are transposed)
        let ei = e;
        if (t.conv1d) {
          const [out, inF] = t.shape;
          const i = Math.floor(e / out), o = e % out;
          ei = o * inF + i;
        }
        native[n] = grads[t.offset + ei];
      }
      let num = 0, den = 0;
      for (let n = 0; n < picks.length; n++) {
        num += (native[n] - fd[n]) ** 2;
        den += fd[n] ** 2;
      }
      const rel = Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-6);
      if (!(rel < 1e-3)) throw new Error(`${t.key}: relative gradient error ${rel.toExponential(2)} (|g| ${Math.sqrt(den).toExponential(2)})`);
      expect(rel).toBeLessThan(1e-3);
    }
  });
});

describe.each(['gpt2', 'backpack'] as const)('%s over several attention row blocks (T = 150)', (arch) => {
  test('loss and sampled gradients match the reference with dropout', async () => {
    const config: ModelConfig = { ...configs[arch], nPositions: 160, nLayer: 1 };
    const T2 = 150;
    const toks = Int32Array.from({ length: T2 }, (_, i) => (i * 7 + 3) % 21);
    const tgts = Int32Array.from({ length: T2 }, (_, i) => (i * 5 + 1) % 21);
    const model = createModel(config, 3);
    randomise(model, 8);
    await model.zeroGrad();
    const step = await model.trainStep(toks, tgts, 1, T2, { dropout: 0.2, rngSeed: 5, gradScale: 1 });
    const weights = toWeights(model);
    const opts = { dropout: 0.2, seed: 5 };
    const refLoss = referenceForward(config, weights, toks, 1, T2, tgts, opts).loss;
    expect(Math.abs(step.loss - refLoss) / refLoss).toBeLessThan(1e-5);
    const grads = model.getGrads();
    const h = 1e-5;
    // the tensors whose gradients flow through the blocked attention / alpha / mixing kernels
    for (const t of model.tensors.filter((x) => /attn|sense_weight_net|final_mlp\.c_proj\.weight|wte/.test(x.key))) {
      const w = weights.get(t.key)!;
      const picks = Array.from({ length: Math.min(3, t.size) }, (_, j) => Math.floor(((j + uniform01(13, j)) * t.size) / Math.min(3, t.size)));
      let num = 0, den = 0;
      for (const e of picks) {
        const orig = w.data[e];
        w.data[e] = orig + h;
        const up = referenceForward(config, weights, toks, 1, T2, tgts, opts).loss;
        w.data[e] = orig - h;
        const down = referenceForward(config, weights, toks, 1, T2, tgts, opts).loss;
        w.data[e] = orig;
        const fd = (up - down) / (2 * h);
        let ei = e;
        if (t.conv1d) {
          const [out, inF] = t.shape;
          ei = (e % out) * inF + Math.floor(e / out);
        }
        num += (grads[t.offset + ei] - fd) ** 2;
        den += fd ** 2;
      }
      const rel = Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-6);
      if (!(rel < 2e-3)) throw new Error(`${t.key}: relative gradient error ${rel.toExponential(2)}`);
    }
  });
});

test('gradient accumulation: two half batches with gradScale 1/2 give the full batch gradient', async () => {
  const config = configs.backpack;
  const model = createModel(config, 4);
  randomise(model, 9);
  await model.zeroGrad();
  await model.trainStep(tokens, targets.map((t) => (t < 0 ? 0 : t)), B, T, { dropout: 0, rngSeed: 1, gradScale: 1 });
  const full = model.getGrads();
  await model.zeroGrad();
  const half = T; // one sequence per micro-batch
  const t2 = targets.map((t) => (t < 0 ? 0 : t));
  await model.trainStep(tokens.subarray(0, half), t2.subarray(0, half), 1, T, { dropout: 0, rngSeed: 1, gradScale: 0.5 });
  await model.trainStep(tokens.subarray(half), t2.subarray(half), 1, T, { dropout: 0, rngSeed: 1, gradScale: 0.5 });
  const acc = model.getGrads();
  let num = 0, den = 0;
  for (let i = 0; i < full.length; i++) {
    num += (acc[i] - full[i]) ** 2;
    den += full[i] ** 2;
  }
  expect(Math.sqrt(num / den)).toBeLessThan(1e-5);
  expect(den).toBeGreaterThan(0);
});
