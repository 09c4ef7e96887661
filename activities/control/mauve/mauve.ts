/**
 * MAUVE (Pillutla et al. 2021) on feature matrices, with the defaults of the reference package
 * mauve-text: L2-normalise rows, PCA on [Q; P] keeping 90 % explained variance, k-means with
 * max(2, round(min(|P|, |Q|)/10)) buckets, 5 restarts, 500 iterations, cluster histograms, a
 * 25-point divergence curve with scaling factor 5, and the area under it.
 */
import { kmeans } from './kmeans';
import { l2NormalizeRows, pcaProject } from './pca';

export interface FeatureMatrix {
  rows: number;
  dim: number;
  /** rows × dim, row-major. */
  data: Float64Array | Float32Array;
}

export interface MauveOptions {
  /** Number of clusters; 'auto' = max(2, round(min(|P|, |Q|) / 10)). */
  numBuckets: number | 'auto';
  pcaMaxData: number;
  kmeansExplainedVar: number;
  kmeansNumRedo: number;
  kmeansMaxIter: number;
  divergenceCurveDiscretization: number;
  scalingFactor: number;
  seed: number;
  /** 'symmetric' = mauve-text ≥ 0.3 (mean of both axis orders); 'x-sorted' = earlier releases. */
  areaMode: 'symmetric' | 'x-sorted';
  /** Normalise feature rows before PCA ('l2', as the reference) or not. */
  norm: 'l2' | 'none';
}

export const MAUVE_DEFAULTS: MauveOptions = {
  numBuckets: 'auto',
  pcaMaxData: -1,
  kmeansExplainedVar: 0.9,
  kmeansNumRedo: 5,
  kmeansMaxIter: 500,
  divergenceCurveDiscretization: 25,
  scalingFactor: 5,
  seed: 25,
  areaMode: 'symmetric',
  norm: 'l2',
};

export interface MauveResult {
  mauve: number;
  /** Divergence-curve points (x, y) including the extremes, in computation order. */
  curve: Array<[number, number]>;
  pHistogram: Float64Array;
  qHistogram: Float64Array;
  numBuckets: number;
  pcaComponents: number;
  kmeansObjective: number;
  kmeansIterations: number;
  numP: number;
  numQ: number;
}

export function resolveNumBuckets(numBuckets: number | 'auto', numP: number, numQ: number): number {
  if (numBuckets === 'auto') return Math.max(2, roundHalfEven(Math.min(numP, numQ) / 10));
  if (!Number.isInteger(numBuckets) || numBuckets < 2) throw new Error(`mauve: num_buckets must be an integer ≥ 2 or 'auto', got ${numBuckets}`);
  return numBuckets;
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Cluster the union of P and Q features and return the two cluster histograms. */
export function quantize(p: FeatureMatrix, q: FeatureMatrix, options: MauveOptions) {
  if (p.dim !== q.dim) throw new Error(`mauve: P features have ${p.dim} dimensions but Q has ${q.dim}`);
  if (p.rows < 1 || q.rows < 1) throw new Error('mauve: P and Q need at least one row each');
  const n = p.rows + q.rows;
  const d = p.dim;
  // Q first, then P, as the reference stacks them.
  let stacked: Float64Array = new Float64Array(n * d);
  stacked.set(q.data, 0);
  stacked.set(p.data, q.rows * d);
  for (let i = 0; i < stacked.length; i++) {
    if (!Number.isFinite(stacked[i])) {
      const row = Math.floor(i / d);
      const where = row < q.rows ? `Q row ${row}` : `P row ${row - q.rows}`;
      throw new Error(`mauve: non-finite feature value in ${where}`);
    }
  }
  if (options.norm === 'l2') stacked = l2NormalizeRows(stacked, n, d);
  if (options.pcaMaxData !== -1 && options.pcaMaxData < n) {
    throw new Error('mauve: pca_max_data subsampling is not supported; use -1 (all data)');
  }
  const pca = pcaProject(stacked, n, d, options.kmeansExplainedVar);
  const buckets = resolveNumBuckets(options.numBuckets, p.rows, q.rows);
  if (buckets > n) throw new Error(`mauve: ${buckets} buckets for only ${n} points`);
  const clusters = kmeans(pca.projected, n, pca.components, {
    k: buckets,
    restarts: options.kmeansNumRedo,
    maxIterations: options.kmeansMaxIter,
    seed: options.seed + 2,
  });
  const qHistogram = new Float64Array(buckets);
  const pHistogram = new Float64Array(buckets);
  for (let i = 0; i < q.rows; i++) qHistogram[clusters.labels[i]] += 1;
  for (let i = 0; i < p.rows; i++) pHistogram[clusters.labels[q.rows + i]] += 1;
  for (let c = 0; c < buckets; c++) {
    qHistogram[c] /= q.rows;
    pHistogram[c] /= p.rows;
  }
  return { pHistogram, qHistogram, buckets, pca, clusters };
}

/** KL(a‖b) = Σ_{a>0} a log(a/b); ∞ when b = 0 somewhere a > 0. */
export function klDivergence(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] <= 0) continue;
    if (b[i] <= 0) return Infinity;
    s += a[i] * Math.log(a[i] / b[i]);
  }
  return s;
}

/** Points (exp(−c·KL(q‖r)), exp(−c·KL(p‖r))) for r = w p + (1−w) q, plus (1, 0) and (0, 1). */
export function divergenceCurve(p: ArrayLike<number>, q: ArrayLike<number>, points: number, scalingFactor: number): Array<[number, number]> {
  if (p.length !== q.length) throw new Error('divergenceCurve: histograms differ in length');
  const curve: Array<[number, number]> = [[1, 0]];
  const lo = 1e-6;
  const hi = 1 - 1e-6;
  const r = new Float64Array(p.length);
  for (let t = 0; t < points; t++) {
    const w = points === 1 ? lo : lo + ((hi - lo) * t) / (points - 1);
    for (let i = 0; i < p.length; i++) r[i] = w * p[i] + (1 - w) * q[i];
    curve.push([Math.exp(-scalingFactor * klDivergence(q, r)), Math.exp(-scalingFactor * klDivergence(p, r))]);
  }
  curve.push([0, 1]);
  return curve;
}

/**
 * Trapezoid area under points sorted by their first coordinate. Ties (e.g. every point at x = 1 when
 * P = Q) are ordered by descending second coordinate, which traces the monotone curve itself; the
 * reference leaves tie order to numpy's unstable argsort.
 */
function sortedTrapezoid(points: Array<[number, number]>): number {
  const sorted = points.map((pt) => ({ pt })).sort((a, b) => a.pt[0] - b.pt[0] || b.pt[1] - a.pt[1]);
  let area = 0;
  for (let i = 1; i < sorted.length; i++) {
    const [x0, y0] = sorted[i - 1].pt;
    const [x1, y1] = sorted[i].pt;
    area += ((x1 - x0) * (y0 + y1)) / 2;
  }
  return area;
}

export function curveArea(curve: Array<[number, number]>, mode: MauveOptions['areaMode']): number {
  const forward = sortedTrapezoid(curve);
  if (mode === 'x-sorted') return forward;
  const swapped = sortedTrapezoid(curve.map(([x, y]) => [y, x] as [number, number]));
  return 0.5 * (forward + swapped);
}

/** MAUVE score from two histograms over the same buckets. */
export function mauveFromHistograms(p: ArrayLike<number>, q: ArrayLike<number>, options: Pick<MauveOptions, 'divergenceCurveDiscretization' | 'scalingFactor' | 'areaMode'>) {
  const curve = divergenceCurve(p, q, options.divergenceCurveDiscretization, options.scalingFactor);
  return { mauve: curveArea(curve, options.areaMode), curve };
}

/** Full MAUVE between prediction features P and reference features Q. */
export function computeMauve(p: FeatureMatrix, q: FeatureMatrix, overrides: Partial<MauveOptions> = {}): MauveResult {
  const options = { ...MAUVE_DEFAULTS, ...overrides };
  const quant = quantize(p, q, options);
  const { mauve, curve } = mauveFromHistograms(quant.pHistogram, quant.qHistogram, options);
  return {
    mauve,
    curve,
    pHistogram: quant.pHistogram,
    qHistogram: quant.qHistogram,
    numBuckets: quant.buckets,
    pcaComponents: quant.pca.components,
    kmeansObjective: quant.clusters.objective,
    kmeansIterations: quant.clusters.iterations,
    numP: p.rows,
    numQ: q.rows,
  };
}
