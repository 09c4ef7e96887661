/**
 * An independent, slow, float64 reference of the two architectures (PAPER.md §1–§2), written directly from
 * the spec against the Hugging Face tensor layout (Conv1D [in,out]: y = xW + b; Linear [out,in]: y = xWᵀ + b).
 * It shares nothing with the native engine except the counter-based dropout masks (native/rng.ts), so its
 * logits/loss and finite-difference gradients check the engine.
 */
import { keep16, keepThreshold16, streamKey, uniform01 } from '../../native/rng';
import type { ModelConfig } from '../../native/types';

export type Weights = Map<string, { shape: number[]; data: Float64Array }>;

export interface ReferenceOptions {
  dropout?: number;
  seed?: number;
}

type Mat = Float64Array; // row-major [rows][cols]

function get(w: Weights, key: string): Float64Array {
  const t = w.get(key);
  if (!t) throw new Error(`reference: missing ${key}`);
  return t.data;
}

/** Conv1D: x [n][inF] · W [inF][outF] + b */
function conv1d(x: Mat, n: number, inF: number, outF: number, W: Float64Array, b: Float64Array): Mat {
  const y = new Float64Array(n * outF);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < outF; o++) {
      let s = b[o];
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * W[i * outF + o];
      y[r * outF + o] = s;
    }
  return y;
}

/** Linear: x [n][inF] · W[outF][inF]ᵀ + b */
function linear(x: Mat, n: number, inF: number, outF: number, W: Float64Array, b: Float64Array | null): Mat {
  const y = new Float64Array(n * outF);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * W[o * inF + i];
      y[r * outF + o] = s;
    }
  return y;
}

function layerNorm(x: Mat, n: number, d: number, w: Float64Array, b: Float64Array, eps: number): Mat {
  const y = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let mean = 0;
    for (let c = 0; c < d; c++) mean += x[r * d + c];
    mean /= d;
    let v = 0;
    for (let c = 0; c < d; c++) v += (x[r * d + c] - mean) ** 2;
    v /= d;
    const s = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < d; c++) y[r * d + c] = (x[r * d + c] - mean) * s * w[c] + b[c];
  }
  return y;
}

function gelu(x: Mat): Mat {
  return x.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
}

function add(a: Mat, b: Mat): Mat {
  return a.map((v, i) => v + b[i]);
}

/** Inverted dropout with the engine's masks: element i kept when uniform01(key, i) >= p. */
function dropout(x: Mat, opts: ReferenceOptions, stream: number): Mat {
  const p = opts.dropout ?? 0;
  if (p <= 0) return x;
  const key = streamKey(opts.seed ?? 0, stream);
  return x.map((v, i) => (uniform01(key, i) >= p ? v / (1 - p) : 0));
}

/** Causal softmax rows of scores [T][T] (j <= i). */
function causalSoftmax(S: Float64Array, T: number): Float64Array {
  const P = new Float64Array(T * T);
  for (let i = 0; i < T; i++) {
    let max = -Infinity;
    for (let j = 0; j <= i; j++) max = Math.max(max, S[i * T + j]);
    let sum = 0;
    for (let j = 0; j <= i; j++) sum += Math.exp(S[i * T + j] - max);
    for (let j = 0; j <= i; j++) P[i * T + j] = Math.exp(S[i * T + j] - max) / sum;
  }
  return P;
}

export interface ReferenceResult {
  logits: Float64Array;
  loss: number;
  alpha?: Float64Array;
}

export function referenceForward(c: ModelConfig, w: Weights, tokens: Int32Array, B: number, T: number, targets?: Int32Array, opts: ReferenceOptions = {}): ReferenceResult {
  const d = c.nEmbd, H = c.nHead, hs = d / H, N = B * T, V = c.vocabSize;
  const pre = c.arch === 'backpack' ? 'backpack.gpt2_model.' : 'transformer.';
  const wte = get(w, pre + 'wte.weight');
  const wpe = get(w, pre + 'wpe.weight');
  let x: Mat = new Float64Array(N * d);
  for (let r = 0; r < N; r++) for (let e = 0; e < d; e++) x[r * d + e] = wte[tokens[r] * d + e] + wpe[(r % T) * d + e];
  x = dropout(x, opts, 1);
  for (let l = 0; l < c.nLayer; l++) {
    const h = `${pre}h.${l}.`;
    const a = layerNorm(x, N, d, get(w, h + 'ln_1.weight'), get(w, h + 'ln_1.bias'), c.layerNormEpsilon);
    const qkv = conv1d(a, N, d, 3 * d, get(w, h + 'attn.c_attn.weight'), get(w, h + 'attn.c_attn.bias'));
    const y = new Float64Array(N * d);
    const scale = 1 / Math.sqrt(hs) / (c.scaleAttnByInverseLayerIdx ? l + 1 : 1);
    const attKey = (opts.dropout ?? 0) > 0 ? streamKey(opts.seed ?? 0, 100 + 4 * l) : 0;
    for (let b = 0; b < B; b++)
      for (let hh = 0; hh < H; hh++) {
        const S = new Float64Array(T * T);
        for (let i = 0; i < T; i++)
          for (let j = 0; j <= i; j++) {
            let s = 0;
            for (let e = 0; e < hs; e++) s += qkv[(b * T + i) * 3 * d + hh * hs + e] * qkv[(b * T + j) * 3 * d + d + hh * hs + e];
            S[i * T + j] = s * scale;
          }
        const P = causalSoftmax(S, T);
        for (let i = 0; i < T; i++)
          for (let j = 0; j <= i; j++) {
            let p = P[i * T + j];
            if ((opts.dropout ?? 0) > 0) {
              const idx = ((b * H + hh) * T + i) * T + j;
              p = keep16(attKey, idx, keepThreshold16(opts.dropout!)) ? p / (1 - opts.dropout!) : 0;
            }
            for (let e = 0; e < hs; e++) y[(b * T + i) * d + hh * hs + e] += p * qkv[(b * T + j) * 3 * d + 2 * d + hh * hs + e];
          }
      }
    const proj = conv1d(y, N, d, d, get(w, h + 'attn.c_proj.weight'), get(w, h + 'attn.c_proj.bias'));
    const x2 = add(x, dropout(proj, opts, 101 + 4 * l));
    const m = layerNorm(x2, N, d, get(w, h + 'ln_2.weight'), get(w, h + 'ln_2.bias'), c.layerNormEpsilon);
    const f = gelu(conv1d(m, N, d, 4 * d, get(w, h + 'mlp.c_fc.weight'), get(w, h + 'mlp.c_fc.bias')));
    const f2 = conv1d(f, N, 4 * d, d, get(w, h + 'mlp.c_proj.weight'), get(w, h + 'mlp.c_proj.bias'));
    x = add(x2, dropout(f2, opts, 102 + 4 * l));
  }
  const hc = layerNorm(x, N, d, get(w, pre + 'ln_f.weight'), get(w, pre + 'ln_f.bias'), c.layerNormEpsilon);
  let feats = hc;
  let alphaOut: Float64Array | undefined;
  if (c.arch === 'backpack') {
    const k = c.numSenses!, hidden = c.shrinkSenseMlp ? d : (c.senseIntermediateScale ?? 4) * d, kd = k * d;
    const s = 'backpack.sense_network.';
    const e = new Float64Array(N * d);
    for (let r = 0; r < N; r++) for (let q = 0; q < d; q++) e[r * d + q] = wte[tokens[r] * d + q];
    const r0 = dropout(e, opts, 10);
    const h0 = layerNorm(r0, N, d, get(w, s + 'ln.weight'), get(w, s + 'ln.bias'), c.layerNormEpsilon);
    const r1 = add(r0, dropout(h0, opts, 11));
    const h1 = layerNorm(r1, N, d, get(w, s + 'block.ln_1.weight'), get(w, s + 'block.ln_1.bias'), c.layerNormEpsilon);
    const ma = conv1d(gelu(conv1d(h1, N, d, hidden, get(w, s + 'block.mlp.c_fc.weight'), get(w, s + 'block.mlp.c_fc.bias'))), N, hidden, d, get(w, s + 'block.mlp.c_proj.weight'), get(w, s + 'block.mlp.c_proj.bias'));
    const r2 = add(r1, dropout(ma, opts, 12));
    const h2 = layerNorm(r2, N, d, get(w, s + 'block.ln_2.weight'), get(w, s + 'block.ln_2.bias'), c.layerNormEpsilon);
    const C = conv1d(gelu(conv1d(h2, N, d, hidden, get(w, s + 'final_mlp.c_fc.weight'), get(w, s + 'final_mlp.c_fc.bias'))), N, hidden, kd, get(w, s + 'final_mlp.c_proj.weight'), get(w, s + 'final_mlp.c_proj.bias'));
    const qk = linear(hc, N, d, 2 * d, get(w, 'backpack.sense_weight_net.c_attn.weight'), get(w, 'backpack.sense_weight_net.c_attn.bias'));
    const ahs = d / k;
    alphaOut = new Float64Array(B * k * T * T);
    const o = new Float64Array(N * d);
    for (let b = 0; b < B; b++)
      for (let l = 0; l < k; l++) {
        const S = new Float64Array(T * T);
        for (let i = 0; i < T; i++)
          for (let j = 0; j <= i; j++) {
            let acc = 0;
            for (let q = 0; q < ahs; q++) acc += qk[(b * T + i) * 2 * d + l * ahs + q] * qk[(b * T + j) * 2 * d + d + l * ahs + q];
            S[i * T + j] = acc / Math.sqrt(ahs);
          }
        const A = causalSoftmax(S, T);
        alphaOut.set(A, (b * k + l) * T * T);
        for (let i = 0; i < T; i++)
          for (let j = 0; j <= i; j++)
            for (let q = 0; q < d; q++) o[(b * T + i) * d + q] += A[i * T + j] * C[(b * T + j) * kd + l * d + q];
      }
    feats = o;
  }
  const logits = linear(feats, N, d, V, wte, null);
  let loss = 0;
  let count = 0;
  if (targets) {
    for (let r = 0; r < N; r++) {
      if (targets[r] < 0) continue;
      let max = -Infinity;
      for (let v = 0; v < V; v++) max = Math.max(max, logits[r * V + v]);
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(logits[r * V + v] - max);
      loss += max + Math.log(sum) - logits[r * V + targets[r]];
      count++;
    }
  }
  return { logits, loss: count ? loss / count : NaN, alpha: alphaOut };
}
