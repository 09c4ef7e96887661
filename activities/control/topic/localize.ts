/**
 * Topic localization (PAPER.md §6.3 steps 1–2): which senses of which words point at a topic.
 *
 * For every word v and sense ℓ the sense's vocabulary projection Λ = E·C(v)_ℓ is normalised by its
 * maximum (signed, D2 default; or absolute) and summed over the topic's target ids:
 *   S[v, ℓ] = Σ_{t ∈ targets} Λ[t] / max_u Λ[u].
 * The normaliser does not depend on the topic, so it is computed once per model (`senseProjectionStats`)
 * and reused by all 17 topics; the numerator is (Σ_t E[t]) · C(v)_ℓ.
 */

export type LocalizeNorm = 'max' | 'absmax';

export interface SenseTable {
  /** Rows covered (vocabulary size of the model, padded). */
  vocab: number;
  senses: number;
  dim: number;
  /** [vocab][k][d] sense vectors of every row (rows never localized may be zero). */
  vectors: Float32Array;
}

export interface ProjectionStats {
  vocab: number;
  senses: number;
  /** [vocab][k] max_u (E·C(v)_ℓ)[u] */
  max: Float32Array;
  /** [vocab][k] max_u |(E·C(v)_ℓ)[u]| */
  absMax: Float32Array;
}

/**
 * Signed and absolute maxima of every sense's vocabulary projection, over all `vocab` rows of E
 * (padding included). Rows listed in `skipRows` are left at 0 (their S row is zero anyway).
 */
export function senseProjectionStats(
  embeddings: Float32Array,
  senses: SenseTable,
  skipRow: (v: number) => boolean,
  onProgress?: (fraction: number) => void,
): ProjectionStats {
  const { vocab, senses: k, dim: d, vectors } = senses;
  if (embeddings.length !== vocab * d) throw new Error(`localize: E has ${embeddings.length} entries, expected ${vocab}×${d}`);
  const max = new Float32Array(vocab * k);
  const absMax = new Float32Array(vocab * k);
  // Block of sense vectors × all rows of E: keeps a few KB of senses hot while E streams through.
  const blockRows = 32;
  const block = new Float64Array(blockRows * d);
  const bestMax = new Float64Array(blockRows);
  const bestAbs = new Float64Array(blockRows);
  const pending: number[] = [];
  const flush = () => {
    const count = pending.length;
    for (let b = 0; b < count; b++) {
      block.set(vectors.subarray(pending[b] * d, pending[b] * d + d), b * d);
      bestMax[b] = -Infinity;
      bestAbs[b] = 0;
    }
    for (let u = 0; u < vocab; u++) {
      const eRow = u * d;
      for (let b = 0; b < count; b++) {
        const sRow = b * d;
        let dot = 0;
        for (let j = 0; j < d; j++) dot += embeddings[eRow + j] * block[sRow + j];
        if (dot > bestMax[b]) bestMax[b] = dot;
        const a = dot < 0 ? -dot : dot;
        if (a > bestAbs[b]) bestAbs[b] = a;
      }
    }
    for (let b = 0; b < count; b++) {
      max[pending[b]] = bestMax[b];
      absMax[pending[b]] = bestAbs[b];
    }
    pending.length = 0;
  };
  const total = vocab * k;
  for (let v = 0; v < vocab; v++) {
    if (skipRow(v)) continue;
    for (let l = 0; l < k; l++) {
      pending.push(v * k + l);
      if (pending.length === blockRows) flush();
    }
    if (onProgress && v % 256 === 0) onProgress((v * k) / total);
  }
  flush();
  return { vocab, senses: k, max, absMax };
}

/**
 * S ∈ R^{vocab×k} for one topic. Rows where `skipRow(v)` (EOS and padding) are zero. A sense whose
 * normaliser is 0 contributes 0 (nothing to normalise against).
 */
export function localizationScores(
  embeddings: Float32Array,
  senses: SenseTable,
  stats: ProjectionStats,
  targetIds: number[],
  norm: LocalizeNorm,
  skipRow: (v: number) => boolean,
): Float32Array {
  const { vocab, senses: k, dim: d, vectors } = senses;
  const targetSum = new Float64Array(d);
  for (const t of targetIds) {
    if (t < 0 || t >= vocab) throw new Error(`localize: target id ${t} outside the vocabulary (0..${vocab - 1})`);
    for (let j = 0; j < d; j++) targetSum[j] += embeddings[t * d + j];
  }
  const scores = new Float32Array(vocab * k);
  for (let v = 0; v < vocab; v++) {
    if (skipRow(v)) continue;
    for (let l = 0; l < k; l++) {
      const row = (v * k + l) * d;
      let num = 0;
      for (let j = 0; j < d; j++) num += targetSum[j] * vectors[row + j];
      const den = norm === 'max' ? stats.max[v * k + l] : stats.absMax[v * k + l];
      scores[v * k + l] = den === 0 ? 0 : num / den;
    }
  }
  return scores;
}

/** numpy.quantile with linear interpolation (the default method) on a copy of `values`. */
export function quantileLinear(values: ArrayLike<number>, q: number): number {
  return quantilesLinear(values, [q])[0];
}

export function quantilesLinear(values: ArrayLike<number>, qs: number[]): number[] {
  if (values.length === 0) throw new Error('quantile of an empty array');
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  return qs.map((q) => {
    if (q < 0 || q > 1) throw new Error(`quantile ${q} outside [0, 1]`);
    const pos = q * (sorted.length - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, sorted.length - 1);
    const frac = pos - lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
  });
}

/** Per-strength quantile weights (paper Table 11, identical in the authors' code). */
export const STRENGTH_TABLE: Record<number, [number, number, number, number]> = {
  0: [1, 1, 1, 1],
  1: [1.5, 1.5, 1.3, 1],
  2: [2.2, 2.2, 1.5, 1],
  3: [3.3, 3.3, 3, 1],
};

export function strengthWeights(strength: number): [number, number, number, number] {
  const row = STRENGTH_TABLE[strength];
  if (!row) throw new Error(`topic strength must be one of ${Object.keys(STRENGTH_TABLE).join(', ')}, got ${strength}`);
  return row;
}

export interface QuantileWeights {
  /** [vocab][k] */
  delta: Float32Array;
  q95: number;
  q80: number;
  q60: number;
  maxDelta: number;
}

/**
 * δ[v,ℓ] = δ0 if S > q95; δ1 if q80 < S < q95; δ2 if q60 < S < q80; δ3 if S < q60; 1 when S equals
 * one of the three quantiles exactly (the reference's strict comparisons leave those entries at 1).
 */
export function quantileWeights(scores: Float32Array, weights: [number, number, number, number]): QuantileWeights {
  const [q95, q80, q60] = quantilesLinear(scores, [0.95, 0.8, 0.6]);
  const [d0, d1, d2, d3] = weights;
  const delta = new Float32Array(scores.length);
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    if (s > q95) delta[i] = d0;
    else if (s > q80 && s < q95) delta[i] = d1;
    else if (s > q60 && s < q80) delta[i] = d2;
    else if (s < q60) delta[i] = d3;
    else delta[i] = 1;
  }
  return { delta, q95, q80, q60, maxDelta: Math.max(...weights) };
}
