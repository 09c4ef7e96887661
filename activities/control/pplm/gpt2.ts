/**
 * A plain-TypeScript GPT-2 for PPLM (PAPER.md §6.4): one-token forward steps over a key/value cache and the
 * exact backward of that step with respect to the cached keys and values of every layer — the gradient
 * PPLM ascends. Weights come from one of our checkpoints (Hugging Face GPT-2 layout, Conv1D [in, out]).
 * Float64 arithmetic; fine for the tiny profile, far too slow for GPT-2-small at paper scale.
 */
import * as path from 'path';
import { readSafetensors } from '../../../native/safetensors';
import { readConfigFile } from '../../../native/checkpoint';
import type { ModelConfig } from '../../../native/types';

interface Layer {
  ln1g: Float64Array;
  ln1b: Float64Array;
  /** [d][3d] Conv1D */
  attnW: Float64Array;
  attnB: Float64Array;
  /** [d][d] */
  projW: Float64Array;
  projB: Float64Array;
  ln2g: Float64Array;
  ln2b: Float64Array;
  /** [d][4d] */
  fcW: Float64Array;
  fcB: Float64Array;
  /** [4d][d] */
  fcProjW: Float64Array;
  fcProjB: Float64Array;
}

export interface Gpt2Weights {
  config: ModelConfig;
  /** [V][d] tied input/output embedding */
  wte: Float64Array;
  /** [P][d] */
  wpe: Float64Array;
  layers: Layer[];
  lnfG: Float64Array;
  lnfB: Float64Array;
}

/** Per layer: keys and values [H][T][dh] for T cached positions (head-major). */
export interface LayerKV {
  k: Float64Array;
  v: Float64Array;
}

export interface KVCache {
  length: number;
  layers: LayerKV[];
}

export function loadGpt2Weights(dir: string): Gpt2Weights {
  const config = readConfigFile(dir);
  if (config.arch !== 'gpt2') throw new Error(`${dir}: PPLM needs a GPT-2 (Transformer) checkpoint, got ${config.arch}`);
  const file = path.join(dir, 'model.safetensors');
  const { tensors } = readSafetensors(file);
  const get = (name: string, numel: number): Float64Array => {
    const t = tensors.get(name) ?? tensors.get(name.replace(/^transformer\./, ''));
    if (!t) throw new Error(`${file}: missing tensor "${name}"`);
    if (t.numel !== numel) throw new Error(`${file}: tensor "${name}" has ${t.numel} values, expected ${numel}`);
    return Float64Array.from(t.data);
  };
  const { vocabSize: V, nEmbd: d, nPositions: P, nLayer: L } = config;
  const layers: Layer[] = [];
  for (let l = 0; l < L; l++) {
    const p = `transformer.h.${l}.`;
    layers.push({
      ln1g: get(`${p}ln_1.weight`, d),
      ln1b: get(`${p}ln_1.bias`, d),
      attnW: get(`${p}attn.c_attn.weight`, d * 3 * d),
      attnB: get(`${p}attn.c_attn.bias`, 3 * d),
      projW: get(`${p}attn.c_proj.weight`, d * d),
      projB: get(`${p}attn.c_proj.bias`, d),
      ln2g: get(`${p}ln_2.weight`, d),
      ln2b: get(`${p}ln_2.bias`, d),
      fcW: get(`${p}mlp.c_fc.weight`, d * 4 * d),
      fcB: get(`${p}mlp.c_fc.bias`, 4 * d),
      fcProjW: get(`${p}mlp.c_proj.weight`, 4 * d * d),
      fcProjB: get(`${p}mlp.c_proj.bias`, d),
    });
  }
  return { config, wte: get('transformer.wte.weight', V * d), wpe: get('transformer.wpe.weight', P * d), layers, lnfG: get('transformer.ln_f.weight', d), lnfB: get('transformer.ln_f.bias', d) };
}

export function emptyCache(w: Gpt2Weights): KVCache {
  return { length: 0, layers: w.layers.map(() => ({ k: new Float64Array(0), v: new Float64Array(0) })) };
}

/** y = x W + b for Conv1D W [in][out]. */
function conv1d(x: Float64Array, W: Float64Array, b: Float64Array, out: number): Float64Array {
  const y = Float64Array.from(b);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    if (xi === 0) continue;
    const row = i * out;
    for (let j = 0; j < out; j++) y[j] += xi * W[row + j];
  }
  return y;
}

/** dx = W dy for Conv1D W [in][out]. */
function conv1dBackward(dy: Float64Array, W: Float64Array, inDim: number): Float64Array {
  const out = dy.length;
  const dx = new Float64Array(inDim);
  for (let i = 0; i < inDim; i++) {
    let s = 0;
    const row = i * out;
    for (let j = 0; j < out; j++) s += W[row + j] * dy[j];
    dx[i] = s;
  }
  return dx;
}

interface LnCache {
  xhat: Float64Array;
  invStd: number;
}

function layerNorm(x: Float64Array, g: Float64Array, b: Float64Array, eps: number): { y: Float64Array; cache: LnCache } {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i] - mean) ** 2;
  const invStd = 1 / Math.sqrt(v / n + eps);
  const xhat = new Float64Array(n);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    xhat[i] = (x[i] - mean) * invStd;
    y[i] = xhat[i] * g[i] + b[i];
  }
  return { y, cache: { xhat, invStd } };
}

function layerNormBackward(dy: Float64Array, g: Float64Array, c: LnCache): Float64Array {
  const n = dy.length;
  const dxhat = new Float64Array(n);
  let meanD = 0;
  let meanDX = 0;
  for (let i = 0; i < n; i++) {
    dxhat[i] = dy[i] * g[i];
    meanD += dxhat[i];
    meanDX += dxhat[i] * c.xhat[i];
  }
  meanD /= n;
  meanDX /= n;
  const dx = new Float64Array(n);
  for (let i = 0; i < n; i++) dx[i] = c.invStd * (dxhat[i] - meanD - c.xhat[i] * meanDX);
  return dx;
}

const GELU_C = Math.sqrt(2 / Math.PI);
function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x)));
}
function geluGrad(x: number): number {
  const t = Math.tanh(GELU_C * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * x * x);
}

interface LayerTrace {
  xIn: Float64Array;
  ln1: LnCache;
  q: Float64Array;
  /** attention keys/values used ([H][T+1][dh]), probabilities [H][T+1] */
  keys: Float64Array;
  values: Float64Array;
  probs: Float64Array;
  attnOut: Float64Array;
  xMid: Float64Array;
  ln2: LnCache;
  fcPre: Float64Array;
  fcAct: Float64Array;
}

export interface StepResult {
  /** [V] logits of the next token. */
  logits: Float64Array;
  /** The cache extended by this token (the input cache's arrays are not modified). */
  cache: KVCache;
  trace: { layers: LayerTrace[]; lnf: LnCache; hidden: Float64Array; T: number };
}

/**
 * Forward of one token at position `cache.length` attending to the cache (whose keys/values may already
 * include a perturbation). Returns logits over all V rows and the extended cache.
 */
export function forwardStep(w: Gpt2Weights, token: number, cache: KVCache): StepResult {
  const { nEmbd: d, nHead: H, vocabSize: V, layerNormEpsilon: eps, scaleAttnByInverseLayerIdx } = w.config;
  const dh = d / H;
  const T = cache.length;
  if (T + 1 > w.config.nPositions) throw new Error(`gpt2: position ${T} is beyond the ${w.config.nPositions} positions`);
  if (token < 0 || token >= V) throw new Error(`gpt2: token ${token} outside the vocabulary`);
  let x = new Float64Array(d);
  for (let i = 0; i < d; i++) x[i] = w.wte[token * d + i] + w.wpe[T * d + i];
  const traces: LayerTrace[] = [];
  const newLayers: LayerKV[] = [];
  w.layers.forEach((layer, l) => {
    const xIn = x;
    const ln1 = layerNorm(xIn, layer.ln1g, layer.ln1b, eps);
    const qkv = conv1d(ln1.y, layer.attnW, layer.attnB, 3 * d);
    const q = qkv.subarray(0, d);
    const keys = new Float64Array(H * (T + 1) * dh);
    const values = new Float64Array(H * (T + 1) * dh);
    const past = cache.layers[l];
    for (let h = 0; h < H; h++) {
      keys.set(past.k.subarray(h * T * dh, (h + 1) * T * dh), h * (T + 1) * dh);
      values.set(past.v.subarray(h * T * dh, (h + 1) * T * dh), h * (T + 1) * dh);
      keys.set(qkv.subarray(d + h * dh, d + (h + 1) * dh), (h * (T + 1) + T) * dh);
      values.set(qkv.subarray(2 * d + h * dh, 2 * d + (h + 1) * dh), (h * (T + 1) + T) * dh);
    }
    const scale = 1 / Math.sqrt(dh) / (scaleAttnByInverseLayerIdx ? l + 1 : 1);
    const probs = new Float64Array(H * (T + 1));
    const attn = new Float64Array(d);
    for (let h = 0; h < H; h++) {
      let max = -Infinity;
      for (let j = 0; j <= T; j++) {
        let s = 0;
        for (let t = 0; t < dh; t++) s += q[h * dh + t] * keys[(h * (T + 1) + j) * dh + t];
        s *= scale;
        probs[h * (T + 1) + j] = s;
        if (s > max) max = s;
      }
      let z = 0;
      for (let j = 0; j <= T; j++) z += probs[h * (T + 1) + j] = Math.exp(probs[h * (T + 1) + j] - max);
      for (let j = 0; j <= T; j++) {
        const p = (probs[h * (T + 1) + j] /= z);
        for (let t = 0; t < dh; t++) attn[h * dh + t] += p * values[(h * (T + 1) + j) * dh + t];
      }
    }
    const attnOut = conv1d(attn, layer.projW, layer.projB, d);
    const xMid = new Float64Array(d);
    for (let i = 0; i < d; i++) xMid[i] = xIn[i] + attnOut[i];
    const ln2 = layerNorm(xMid, layer.ln2g, layer.ln2b, eps);
    const fcPre = conv1d(ln2.y, layer.fcW, layer.fcB, 4 * d);
    const fcAct = fcPre.map(gelu);
    const mlpOut = conv1d(fcAct, layer.fcProjW, layer.fcProjB, d);
    x = new Float64Array(d);
    for (let i = 0; i < d; i++) x[i] = xMid[i] + mlpOut[i];
    traces.push({ xIn, ln1: ln1.cache, q: Float64Array.from(q), keys, values, probs, attnOut: attn, xMid, ln2: ln2.cache, fcPre, fcAct });
    newLayers.push({ k: keys, v: values });
  });
  const lnf = layerNorm(x, w.lnfG, w.lnfB, eps);
  const logits = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += w.wte[v * d + i] * lnf.y[i];
    logits[v] = s;
  }
  return { logits, cache: { length: T + 1, layers: newLayers }, trace: { layers: traces, lnf: lnf.cache, hidden: lnf.y, T } };
}

/**
 * Gradient of a loss with respect to the cached keys and values the step attended to (positions
 * 0..T−1 of every layer), given dLoss/dlogits of that step.
 */
export function backwardToCache(w: Gpt2Weights, step: StepResult, dLogits: Float64Array): LayerKV[] {
  const { nEmbd: d, nHead: H, scaleAttnByInverseLayerIdx } = w.config;
  const dh = d / H;
  const T = step.trace.T;
  const V = w.config.vocabSize;
  const dHidden = new Float64Array(d);
  for (let v = 0; v < V; v++) {
    const g = dLogits[v];
    if (g === 0) continue;
    for (let i = 0; i < d; i++) dHidden[i] += g * w.wte[v * d + i];
  }
  let dx = layerNormBackward(dHidden, w.lnfG, step.trace.lnf);
  const grads: LayerKV[] = new Array(w.layers.length);
  for (let l = w.layers.length - 1; l >= 0; l--) {
    const layer = w.layers[l];
    const tr = step.trace.layers[l];
    // MLP block: x_out = xMid + proj(gelu(fc(ln2(xMid))))
    const dAct = conv1dBackward(dx, layer.fcProjW, 4 * d);
    const dPre = dAct.map((g, i) => g * geluGrad(tr.fcPre[i]));
    const dLn2 = conv1dBackward(dPre, layer.fcW, d);
    const dxMid = layerNormBackward(dLn2, layer.ln2g, tr.ln2);
    for (let i = 0; i < d; i++) dxMid[i] += dx[i];
    // Attention block: xMid = xIn + proj(attn)
    const dAttn = conv1dBackward(dxMid, layer.projW, d);
    const scale = 1 / Math.sqrt(dh) / (scaleAttnByInverseLayerIdx ? l + 1 : 1);
    const dK = new Float64Array(H * T * dh);
    const dV = new Float64Array(H * T * dh);
    const dqkv = new Float64Array(3 * d);
    for (let h = 0; h < H; h++) {
      const dp = new Float64Array(T + 1);
      let dot = 0;
      for (let j = 0; j <= T; j++) {
        const p = tr.probs[h * (T + 1) + j];
        let s = 0;
        for (let t = 0; t < dh; t++) {
          const g = dAttn[h * dh + t];
          s += g * tr.values[(h * (T + 1) + j) * dh + t];
          const dv = p * g;
          if (j < T) dV[(h * T + j) * dh + t] = dv;
          else dqkv[2 * d + h * dh + t] = dv;
        }
        dp[j] = s;
        dot += p * s;
      }
      for (let j = 0; j <= T; j++) {
        const ds = tr.probs[h * (T + 1) + j] * (dp[j] - dot) * scale;
        for (let t = 0; t < dh; t++) {
          dqkv[h * dh + t] += ds * tr.keys[(h * (T + 1) + j) * dh + t];
          const dk = ds * tr.q[h * dh + t];
          if (j < T) dK[(h * T + j) * dh + t] = dk;
          else dqkv[d + h * dh + t] = dk;
        }
      }
    }
    grads[l] = { k: dK, v: dV };
    const dLn1 = conv1dBackward(dqkv, layer.attnW, d);
    const dxIn = layerNormBackward(dLn1, layer.ln1g, tr.ln1);
    for (let i = 0; i < d; i++) dxIn[i] += dxMid[i];
    dx = dxIn;
  }
  return grads;
}

/** Runs a whole token sequence through forwardStep from an empty cache (returns the last step). */
export function forwardSequence(w: Gpt2Weights, tokens: ArrayLike<number>): StepResult {
  let cache = emptyCache(w);
  let step: StepResult | undefined;
  for (let i = 0; i < tokens.length; i++) {
    step = forwardStep(w, tokens[i], cache);
    cache = step.cache;
  }
  if (!step) throw new Error('gpt2: empty sequence');
  return step;
}
