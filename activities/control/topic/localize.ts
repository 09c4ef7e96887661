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
  /** Sense rows held in `vectors` (token ids rowOffset .. rowOffset + vocab − 1). */
  vocab: number;
  /** Token id of the first row (chunked localization); default 0. */
  rowOffset?: number;
  senses: number;
  dim: number;
  /** [vocab][k][d] sense vectors of every row (rows never localized may be zero). */
  vectors: Float32Array;
}

export interface ProjectionStats {
  vocab: number;
  senses: number;
  /** Token ids u whose projections Λ_{v,ℓ}[u] were recorded (by the forward pass), if any. */
  columnIds?: number[];
  /** [columnIds.length][vocab][k] recorded Λ_{v,ℓ}[u]. */
  columns?: Float32Array;
  /** [vocab][k] max_u (E·C(v)_ℓ)[u] */
  max: Float32Array;
  /** [vocab][k] max_u |(E·C(v)_ℓ)[u]| */
  absMax: Float32Array;
}

/**
 * Signed and absolute maxima of every sense's vocabulary projection, over all rows of E (padding
 * included). Rows where `skipRow(tokenId)` are left at 0 (their S row is zero anyway).
 */
export function senseProjectionStats(
  embeddings: Float32Array,
  senses: SenseTable,
  skipRow: (v: number) => boolean,
  onProgress?: (fraction: number) => void,
): ProjectionStats {
  const { vocab, senses: k, dim: d, vectors } = senses;
  const offset = senses.rowOffset ?? 0;
  if (embeddings.length % d !== 0) throw new Error(`localize: E has ${embeddings.length} entries, not a multiple of d = ${d}`);
  const eRows = embeddings.length / d;
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
    for (let u = 0; u < eRows; u++) {
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
    if (skipRow(v + offset)) continue;
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
  const offset = senses.rowOffset ?? 0;
  const eRows = embeddings.length / d;
  const targetSum = new Float64Array(d);
  for (const t of targetIds) {
    if (!Number.isInteger(t) || t < 0 || t >= eRows) throw new Error(`localize: target id ${t} outside the vocabulary (0..${eRows - 1})`);
    for (let j = 0; j < d; j++) targetSum[j] += embeddings[t * d + j];
  }
  const scores = new Float32Array(vocab * k);
  for (let v = 0; v < vocab; v++) {
    if (skipRow(v + offset)) continue;
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

/**
 * Localization on a whole model, fetching sense vectors in chunks of token ids (the full [V][k][d]
 * table of a paper-size model does not fit comfortably in memory). `stats` may be passed in from a
 * previous topic on the same model: the normaliser does not depend on the topic.
 */
export async function localizeOnModel(
  fetchSenses: (ids: Int32Array) => Promise<Float32Array>,
  embeddings: Float32Array,
  vocab: number,
  senses: number,
  dim: number,
  targetIds: number[],
  norm: LocalizeNorm,
  skipRow: (v: number) => boolean,
  options: { chunk?: number; stats?: ProjectionStats; onProgress?: (fraction: number) => void } = {},
): Promise<{ scores: Float32Array; stats: ProjectionStats }> {
  const chunk = options.chunk ?? 512;
  const scores = new Float32Array(vocab * senses);
  const stats: ProjectionStats = options.stats ?? { vocab, senses, max: new Float32Array(vocab * senses), absMax: new Float32Array(vocab * senses) };
  if (stats.vocab !== vocab || stats.senses !== senses) throw new Error('localize: cached projection stats belong to another model shape');
  const fresh = !options.stats;
  for (let start = 0; start < vocab; start += chunk) {
    const end = Math.min(vocab, start + chunk);
    const ids = new Int32Array(end - start);
    for (let i = 0; i < ids.length; i++) ids[i] = start + i;
    const table: SenseTable = { vocab: ids.length, rowOffset: start, senses, dim, vectors: await fetchSenses(ids) };
    let chunkStats: ProjectionStats;
    if (fresh) {
      chunkStats = senseProjectionStats(embeddings, table, skipRow);
      stats.max.set(chunkStats.max, start * senses);
      stats.absMax.set(chunkStats.absMax, start * senses);
    } else {
      chunkStats = { vocab: ids.length, senses, max: stats.max.subarray(start * senses, end * senses), absMax: stats.absMax.subarray(start * senses, end * senses) };
    }
    scores.set(localizationScores(embeddings, table, chunkStats, targetIds, norm, skipRow), start * senses);
    options.onProgress?.(end / vocab);
  }
  return { scores, stats };
}

/**
 * The same normalisers computed by the model itself: a length-1 sequence [v] has α_ℓ[0,0] = 1 for every
 * sense (softmax over a single key), so with senseScale one-hot on ℓ the output is o = C(v)_ℓ and the
 * logits are exactly Λ = E·C(v)_ℓ. Batches of such one-token rows run as one native GEMM, which is far
 * faster than the TypeScript dot products for real vocabularies.
 */
export async function projectionStatsByForward(
  model: {
    forward(tokens: Int32Array, opts: { batch: number; seq: number; logits?: boolean; interventions?: { senseScale?: Float32Array } }): Promise<{ logits?: Float32Array }>;
  },
  vocab: number,
  senses: number,
  skipRow: (v: number) => boolean,
  options: { batch?: number; onProgress?: (fraction: number) => void; signal?: AbortSignal; recordColumns?: number[] } = {},
): Promise<ProjectionStats> {
  const rowsPerBatch = options.batch ?? 256;
  const max = new Float32Array(vocab * senses);
  const absMax = new Float32Array(vocab * senses);
  const columnIds = [...new Set(options.recordColumns ?? [])];
  const columns = new Float32Array(columnIds.length * vocab * senses);
  const pairs: number[] = [];
  for (let v = 0; v < vocab; v++) if (!skipRow(v)) for (let l = 0; l < senses; l++) pairs.push(v * senses + l);
  for (let start = 0; start < pairs.length; start += rowsPerBatch) {
    if (options.signal?.aborted) throw new Error('cancelled');
    const chunk = pairs.slice(start, start + rowsPerBatch);
    const tokens = Int32Array.from(chunk, (p) => Math.floor(p / senses));
    const scale = new Float32Array(chunk.length * senses);
    chunk.forEach((p, i) => (scale[i * senses + (p % senses)] = 1));
    const out = await model.forward(tokens, { batch: chunk.length, seq: 1, logits: true, interventions: { senseScale: scale } });
    if (!out.logits) throw new Error('localize: the model returned no logits');
    const V = out.logits.length / chunk.length;
    chunk.forEach((p, i) => {
      let best = -Infinity;
      let bestAbs = 0;
      const row = out.logits!.subarray(i * V, i * V + V);
      for (let u = 0; u < V; u++) {
        const x = row[u];
        if (x > best) best = x;
        const a = x < 0 ? -x : x;
        if (a > bestAbs) bestAbs = a;
      }
      max[p] = best;
      absMax[p] = bestAbs;
      columnIds.forEach((u, c) => (columns[c * vocab * senses + p] = row[u]));
    });
    options.onProgress?.(Math.min(1, (start + chunk.length) / pairs.length));
  }
  return { vocab, senses, max, absMax, columnIds, columns };
}

/**
 * S from recorded columns: S[v,ℓ] = Σ_t Λ_{v,ℓ}[t] / normaliser, no sense vectors needed. Returns
 * undefined when a target was not recorded.
 */
export function scoresFromColumns(stats: ProjectionStats, targetIds: number[], norm: LocalizeNorm, skipRow: (v: number) => boolean): Float32Array | undefined {
  const { vocab, senses: k } = stats;
  const cols = targetIds.map((t) => stats.columnIds?.indexOf(t) ?? -1);
  if (!stats.columns || cols.some((c) => c < 0)) return undefined;
  const scores = new Float32Array(vocab * k);
  for (let v = 0; v < vocab; v++) {
    if (skipRow(v)) continue;
    for (let l = 0; l < k; l++) {
      const p = v * k + l;
      let num = 0;
      for (const c of cols) num += stats.columns[c * vocab * k + p];
      const den = norm === 'max' ? stats.max[p] : stats.absMax[p];
      scores[p] = den === 0 ? 0 : num / den;
    }
  }
  return scores;
}
