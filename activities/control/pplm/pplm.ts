/**
 * PPLM-BoW (Dathathri et al. 2020) exactly as PAPER.md §6.4 describes the authors' run: unconditional
 * generation from EOS; at every token the carried key/value cache is perturbed by `iterations` normalised
 * gradient steps toward the bag of words (with a KL term to the unperturbed distribution), the first
 * `window` cache positions only, a running per-layer gradient norm, and geometric-mean fusion of the
 * perturbed and unperturbed next-token distributions.
 */
import { throwIfAborted } from '../../../pipelines/activity';
import { Rng } from '../util/rng';
import { backwardToCache, emptyCache, forwardStep, type Gpt2Weights, type KVCache, type LayerKV } from './gpt2';

export interface PplmOptions {
  bag: number[];
  stepsize: number;
  iterations: number;
  window: number;
  gamma: number;
  klScale: number;
  gmScale: number;
  /** New tokens after the EOS prompt (100 in the paper). */
  length: number;
}

export const PPLM_DEFAULTS: Omit<PplmOptions, 'bag' | 'stepsize'> = { iterations: 3, window: 5, gamma: 1.5, klScale: 0.01, gmScale: 0.9, length: 100 };

const SMALL = 1e-15;

export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(logits.length);
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += p[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < p.length; i++) p[i] /= z;
  return p;
}

/** log û with û = u + 1e−15·[u ≤ 1e−15], the fixed side of the KL term (computed once per token). */
export function logClamped(u: Float64Array): Float64Array {
  const out = new Float64Array(u.length);
  for (let v = 0; v < u.length; v++) out[v] = Math.log(u[v] <= SMALL ? u[v] + SMALL : u[v]);
  return out;
}

/**
 * PPLM loss of a perturbed step and its gradient with respect to the logits:
 * L = −log Σ_{w∈bag} p_w + klScale·Σ p̂ log(p̂/û), p̂ = p + 1e−15·[p ≤ 1e−15], û likewise (û fixed).
 * `logU` (= logClamped(unperturbed)) may be passed when several steps share one û.
 */
export function pplmLoss(
  logits: Float64Array,
  unperturbed: Float64Array,
  bag: number[],
  klScale: number,
  logU: Float64Array = logClamped(unperturbed),
): { loss: number; dLogits: Float64Array } {
  const n = logits.length;
  let max = -Infinity;
  for (let v = 0; v < n; v++) if (logits[v] > max) max = logits[v];
  // p = softmax(logits) with one exp per entry; log p = logits − max − log z comes for free.
  const p = new Float64Array(n);
  let z = 0;
  for (let v = 0; v < n; v++) z += p[v] = Math.exp(logits[v] - max);
  const logNorm = max + Math.log(z);
  const invZ = 1 / z;
  for (let v = 0; v < n; v++) p[v] *= invZ;
  let bagMass = 0;
  for (const w of bag) bagMass += p[w];
  let loss = -Math.log(bagMass);
  // d(−log Σ_B p)/dlogit_v = p_v − [v∈B] p_v / Σ_B p
  const dLogits = Float64Array.from(p);
  for (const w of bag) dLogits[w] -= p[w] / bagMass;
  if (klScale > 0) {
    // d KL/dlogit_v = p_v (g_v − Σ p g), g_v = log(p̂_v/û_v) + 1
    const g = new Float64Array(n);
    let mean = 0;
    let kl = 0;
    for (let v = 0; v < n; v++) {
      const tiny = p[v] <= SMALL;
      const ph = tiny ? p[v] + SMALL : p[v];
      const r = (tiny ? Math.log(ph) : logits[v] - logNorm) - logU[v];
      kl += ph * r;
      g[v] = r + 1;
      mean += p[v] * g[v];
    }
    loss += klScale * kl;
    for (let v = 0; v < n; v++) dLogits[v] += klScale * p[v] * (g[v] - mean);
  }
  return { loss, dLogits };
}

function addPerturbation(cache: KVCache, delta: LayerKV[]): KVCache {
  return {
    length: cache.length,
    layers: cache.layers.map((layer, l) => ({
      k: layer.k.map((x, i) => x + delta[l].k[i]),
      v: layer.v.map((x, i) => x + delta[l].v[i]),
    })),
  };
}

/** Window mask over cache positions: the first `window` positions when T > window, else all (per PPLM). */
export function windowMask(T: number, window: number): (position: number) => number {
  return (j) => (T > window && window > 0 ? (j < window ? 1 : 0) : 1);
}

export interface PerturbState {
  /** Running per-layer gradient norms, carried across iterations and tokens. */
  gradNorms?: number[];
}

/**
 * Perturbs `past` (the cache of y[:−1]) for input token `last`, returning past + Δ. `unperturbed` is the
 * model's next-token distribution on the whole sequence.
 */
export function perturbPast(w: Gpt2Weights, past: KVCache, last: number, unperturbed: Float64Array, options: PplmOptions, state: PerturbState): { past: KVCache; losses: number[] } {
  const { nHead: H, nEmbd: d } = w.config;
  const dh = d / H;
  const T = past.length;
  const mask = windowMask(T, options.window);
  const delta: LayerKV[] = past.layers.map((l) => ({ k: new Float64Array(l.k.length), v: new Float64Array(l.v.length) }));
  const losses: number[] = [];
  for (let it = 0; it < options.iterations; it++) {
    const step = forwardStep(w, last, addPerturbation(past, delta));
    const { loss, dLogits } = pplmLoss(step.logits, unperturbed, options.bag, options.klScale);
    losses.push(loss);
    const grads = backwardToCache(w, step, dLogits);
    grads.forEach((g, l) => {
      // Mask and norm over this layer's stacked (K, V) perturbation.
      let sq = 0;
      for (const arr of [g.k, g.v]) {
        for (let h = 0; h < H; h++) for (let j = 0; j < T; j++) {
          const m = mask(j);
          for (let t = 0; t < dh; t++) {
            const idx = (h * T + j) * dh + t;
            arr[idx] *= m;
            sq += arr[idx] * arr[idx];
          }
        }
      }
      const norm = Math.sqrt(sq);
      const prev = state.gradNorms?.[l];
      const n = prev === undefined ? norm + SMALL : Math.max(prev, norm);
      if (!state.gradNorms) state.gradNorms = new Array(grads.length);
      state.gradNorms[l] = n;
      const factor = options.stepsize / Math.pow(n, options.gamma);
      for (let i = 0; i < g.k.length; i++) {
        delta[l].k[i] -= factor * g.k[i];
        delta[l].v[i] -= factor * g.v[i];
      }
    });
  }
  return { past: addPerturbation(past, delta), losses };
}

export interface UnperturbedModel {
  /** Next-token distribution (softmax over all V logits) after the whole sequence. */
  nextDistribution(tokens: number[]): Promise<Float64Array>;
}

/** One PPLM sample: EOS + `length` tokens. Stepsize 0 reduces to plain sampling from the model. */
export async function pplmSample(
  w: Gpt2Weights,
  unperturbedModel: UnperturbedModel,
  eosId: number,
  options: PplmOptions,
  rng: Rng,
  signal?: AbortSignal,
): Promise<{ tokens: number[]; losses: number[] }> {
  const perturb = options.stepsize > 0 && options.iterations > 0;
  const tokens = [eosId];
  let past: KVCache | undefined; // cache of tokens[:-1]
  const state: PerturbState = {};
  const losses: number[] = [];
  for (let i = 0; i < options.length; i++) {
    if (signal) throwIfAborted(signal);
    const last = tokens[tokens.length - 1];
    const u = await unperturbedModel.nextDistribution(tokens);
    let pertPast = past ?? emptyCache(w);
    if (perturb && past && past.length > 0) {
      const out = perturbPast(w, past, last, u, options, state);
      pertPast = out.past;
      losses.push(out.losses[out.losses.length - 1]);
    }
    const step = forwardStep(w, last, pertPast);
    past = step.cache;
    const p = softmax(step.logits);
    tokens.push(sampleIndex(perturb ? fuseWithUnperturbed(p, u, options.gmScale) : p, rng));
  }
  return { tokens, losses };
}

/** Geometric-mean fusion p^gm · u^(1−gm), renormalised when its mass is ≤ 1 (as the authors' code). */
export function fuseWithUnperturbed(p: Float64Array, u: Float64Array, gmScale: number): Float64Array {
  const fused = new Float64Array(p.length);
  let total = 0;
  for (let v = 0; v < p.length; v++) total += fused[v] = Math.pow(p[v], gmScale) * Math.pow(u[v], 1 - gmScale);
  if (total <= 1) for (let v = 0; v < p.length; v++) fused[v] /= total;
  return fused;
}

/** log Σ exp(x). */
export function logSumExp(x: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  let z = 0;
  for (let i = 0; i < x.length; i++) z += Math.exp(x[i] - max);
  return max + Math.log(z);
}

/**
 * fuseWithUnperturbed from the two logit vectors: p^gm · u^(1−gm) = exp(gm·log p + (1−gm)·log u), one exp per
 * entry instead of two powers.
 */
export function fuseLogits(logitsP: ArrayLike<number>, logitsU: ArrayLike<number>, gmScale: number): Float64Array {
  const lseP = logSumExp(logitsP);
  const lseU = logSumExp(logitsU);
  const fused = new Float64Array(logitsP.length);
  let total = 0;
  for (let v = 0; v < fused.length; v++) total += fused[v] = Math.exp(gmScale * (logitsP[v] - lseP) + (1 - gmScale) * (logitsU[v] - lseU));
  if (total <= 1) for (let v = 0; v < fused.length; v++) fused[v] /= total;
  return fused;
}

/** One draw from non-negative weights (normalised first, like torch.multinomial). */
export function sampleIndex(p: ArrayLike<number>, rng: Rng): number {
  let total = 0;
  for (let v = 0; v < p.length; v++) total += p[v];
  let r = rng.nextFloat() * total;
  for (let v = 0; v < p.length; v++) {
    r -= p[v];
    if (r < 0) return v;
  }
  return p.length - 1;
}
