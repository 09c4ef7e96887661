/**
 * Next-token sampling over the real vocabulary (padding rows never sampled): greedy, temperature, top-k, top-p.
 * Randomness comes from the counter-based generator keyed by (seed, row) and indexed by the step, so a row's
 * samples do not depend on the other rows of the batch.
 */
import { streamKey, uniform01 } from './rng';

export interface SamplingOptions {
  greedy?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
}

export function sampleToken(logits: Float32Array, realVocab: number, opts: SamplingOptions, seed: number, row: number, step: number): number {
  if (opts.greedy || opts.temperature === 0) {
    let best = 0;
    for (let i = 1; i < realVocab; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const temperature = opts.temperature ?? 1;
  if (!(temperature > 0)) throw new Error(`temperature must be > 0, got ${temperature}`);
  let ids = Array.from({ length: realVocab }, (_, i) => i);
  const scaled = new Float64Array(realVocab);
  let max = -Infinity;
  for (let i = 0; i < realVocab; i++) {
    scaled[i] = logits[i] / temperature;
    if (scaled[i] > max) max = scaled[i];
  }
  if (opts.topK !== undefined && opts.topK > 0 && opts.topK < realVocab) {
    ids.sort((a, b) => scaled[b] - scaled[a] || a - b);
    ids = ids.slice(0, opts.topK);
  }
  let probs = ids.map((i) => Math.exp(scaled[i] - max));
  let total = probs.reduce((a, b) => a + b, 0);
  if (opts.topP !== undefined && opts.topP > 0 && opts.topP < 1) {
    const order = ids.map((id, j) => ({ id, p: probs[j] / total })).sort((a, b) => b.p - a.p || a.id - b.id);
    const kept: typeof order = [];
    let cum = 0;
    for (const e of order) {
      kept.push(e);
      cum += e.p;
      if (cum >= opts.topP) break;
    }
    ids = kept.map((e) => e.id);
    probs = kept.map((e) => e.p);
    total = probs.reduce((a, b) => a + b, 0);
  }
  const u = uniform01(streamKey(seed, row), step) * total;
  let acc = 0;
  for (let j = 0; j < ids.length; j++) {
    acc += probs[j];
    if (u < acc) return ids[j];
  }
  return ids[ids.length - 1];
}
