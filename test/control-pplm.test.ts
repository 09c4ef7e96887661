import * as path from 'path';
import { createModel } from '../native/index';
import { backwardToCache, forwardSequence, forwardStep, loadGpt2Weights, type Gpt2Weights, type KVCache } from '../activities/control/pplm/gpt2';
import { perturbPast, pplmLoss, pplmSample, windowMask, PPLM_DEFAULTS } from '../activities/control/pplm/pplm';
import { Rng } from '../activities/control/util/rng';
import { tempDir } from './helpers/eval-ctx';

let w: Gpt2Weights;
let nativeModel: ReturnType<typeof createModel>;

beforeAll(async () => {
  nativeModel = createModel(
    { arch: 'gpt2', vocabSize: 48, realVocabSize: 45, nPositions: 32, nEmbd: 16, nLayer: 2, nHead: 2, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 },
    5,
  );
  // Larger-than-init weights so attention and the MLP are far from linear (a stricter gradient check).
  const params = nativeModel.getParams();
  const rng = new Rng(9);
  for (let i = 0; i < params.length; i++) params[i] += (rng.nextFloat() - 0.5) * 0.6;
  nativeModel.setParams(params);
  const dir = path.join(tempDir('control-pplm-'), 'gpt2');
  await nativeModel.save(dir);
  w = loadGpt2Weights(dir);
});

afterAll(() => nativeModel.dispose());

const seq = [44, 3, 17, 9, 30, 12, 5];

describe('TypeScript GPT-2 step', () => {
  it('matches the native engine’s logits token by token over a KV cache', async () => {
    const { logits } = await nativeModel.forward(Int32Array.from(seq), { batch: 1, seq: seq.length, logits: true });
    let cache: KVCache | undefined;
    for (let i = 0; i < seq.length; i++) {
      const step = forwardStep(w, seq[i], cache ?? { length: 0, layers: w.layers.map(() => ({ k: new Float64Array(0), v: new Float64Array(0) })) });
      cache = step.cache;
      for (let v = 0; v < 48; v++) expect(step.logits[v]).toBeCloseTo(logits![i * 48 + v], 3);
    }
  });
});

describe('PPLM gradients', () => {
  const bag = [4, 11, 20];
  it('loss gradient w.r.t. logits matches finite differences (BoW + KL)', () => {
    const rng = new Rng(2);
    const logits = Float64Array.from({ length: 48 }, () => rng.nextFloat() * 4 - 2);
    const u = Float64Array.from({ length: 48 }, () => rng.nextFloat());
    const su = u.reduce((a, b) => a + b, 0);
    u.forEach((x, i) => (u[i] = x / su));
    const { dLogits } = pplmLoss(logits, u, bag, 0.5);
    const h = 1e-6;
    for (const v of [0, 4, 11, 30, 47]) {
      const plus = Float64Array.from(logits);
      const minus = Float64Array.from(logits);
      plus[v] += h;
      minus[v] -= h;
      const fd = (pplmLoss(plus, u, bag, 0.5).loss - pplmLoss(minus, u, bag, 0.5).loss) / (2 * h);
      expect(dLogits[v]).toBeCloseTo(fd, 6);
    }
  });

  it('perturbation gradient w.r.t. every layer’s cached keys and values matches finite differences', () => {
    const prefix = forwardSequence(w, seq.slice(0, -1));
    const past = prefix.cache; // T = 6 cached positions
    const last = seq[seq.length - 1];
    const u = (() => {
      const l = forwardStep(w, last, past).logits;
      const m = Math.max(...l);
      const e = l.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / z);
    })();
    // Evaluate at a non-zero perturbation so the KL term is active too.
    const rng = new Rng(4);
    const base: KVCache = { length: past.length, layers: past.layers.map((l) => ({ k: l.k.map((x) => x + (rng.nextFloat() - 0.5) * 0.2), v: l.v.map((x) => x + (rng.nextFloat() - 0.5) * 0.2) })) };
    const lossAt = (c: KVCache) => pplmLoss(forwardStep(w, last, c).logits, u, bag, 0.01).loss;
    const step = forwardStep(w, last, base);
    const grads = backwardToCache(w, step, pplmLoss(step.logits, u, bag, 0.01).dLogits);
    const h = 1e-6;
    let checked = 0;
    for (let l = 0; l < w.layers.length; l++) {
      for (const which of ['k', 'v'] as const) {
        for (const idx of [0, 7, 23, 40, 95]) {
          const perturbed = (sign: number): KVCache => ({
            length: base.length,
            layers: base.layers.map((layer, ll) => {
              const arr = Float64Array.from(layer[which]);
              if (ll === l) arr[idx] += sign * h;
              return which === 'k' ? { k: arr, v: layer.v } : { k: layer.k, v: arr };
            }),
          });
          const fd = (lossAt(perturbed(1)) - lossAt(perturbed(-1))) / (2 * h);
          const g = grads[l][which][idx];
          expect(Math.abs(g - fd)).toBeLessThan(1e-6 + 1e-4 * Math.abs(fd));
          checked++;
        }
      }
    }
    expect(checked).toBe(20);
    // Not all zero: the check is not vacuous.
    expect(Math.max(...grads[0].k.map(Math.abs))).toBeGreaterThan(1e-4);
  });

  it('window mask covers the first five cache positions once T > 5', () => {
    const m = windowMask(8, 5);
    expect([0, 4, 5, 7].map(m)).toEqual([1, 1, 0, 0]);
    expect([0, 3].map(windowMask(4, 5))).toEqual([1, 1]);
  });

  it('three normalised steps lower the BoW loss', () => {
    const prefix = forwardSequence(w, seq.slice(0, -1));
    const last = seq[seq.length - 1];
    const l = forwardStep(w, last, prefix.cache).logits;
    const m = Math.max(...l);
    const e = l.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    const u = e.map((x) => x / z);
    const out = perturbPast(w, prefix.cache, last, u, { ...PPLM_DEFAULTS, bag, stepsize: 0.05 }, {});
    expect(out.losses).toHaveLength(3);
    expect(out.losses[2]).toBeLessThan(out.losses[0]);
  });
});

describe('PPLM sampling', () => {
  const unperturbed = {
    async nextDistribution(tokens: number[]) {
      const l = forwardSequence(w, tokens).logits;
      const m = Math.max(...l);
      const e = l.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / z);
    },
  };
  it('stepsize 0 is plain ancestral sampling from the model', async () => {
    const opts = { ...PPLM_DEFAULTS, bag: [4], stepsize: 0, length: 6 };
    const { tokens } = await pplmSample(w, unperturbed, 44, opts, new Rng(8));
    const rng = new Rng(8);
    const plain = [44];
    for (let i = 0; i < 6; i++) {
      const p = await unperturbed.nextDistribution(plain);
      let r = rng.nextFloat() * p.reduce((a, b) => a + b, 0);
      let next = p.length - 1;
      for (let v = 0; v < p.length; v++) if ((r -= p[v]) < 0) {
        next = v;
        break;
      }
      plain.push(next);
    }
    expect(tokens).toEqual(plain);
  });
  it('a large step size pulls samples toward the bag', async () => {
    const bag = [4, 11, 20];
    const count = async (stepsize: number) => {
      let hits = 0;
      for (let s = 0; s < 6; s++) {
        const { tokens } = await pplmSample(w, unperturbed, 44, { ...PPLM_DEFAULTS, bag, stepsize, length: 10 }, new Rng(100 + s));
        hits += tokens.slice(1).filter((t) => bag.includes(t)).length;
      }
      return hits;
    };
    expect(await count(0.5)).toBeGreaterThan(await count(0));
  });
});
