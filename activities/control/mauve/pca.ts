/**
 * Principal component analysis as MAUVE uses it: fit on all rows (no whitening), keep the leading
 * components whose cumulative explained-variance ratio first reaches a threshold, return the
 * projected (centred) data. Exact: eigendecomposition of the covariance (d×d) or, when there are
 * fewer rows than columns, of the Gram matrix (n×n); both give the same subspace as a full SVD.
 */
import { symmetricEigen } from './eigen';

export interface PcaResult {
  /** Projected rows, n × components, row-major. */
  projected: Float64Array;
  components: number;
  /** Explained-variance ratio of every component (descending). */
  explainedVarianceRatio: Float64Array;
}

/**
 * `data` is n×d row-major. Keeps c = smallest count with cumulative ratio ≥ `explainedVariance`
 * (like `np.argmax(cumsum >= t) + 1`); `explainedVariance` ≥ 1 keeps all components with variance.
 */
export function pcaProject(data: Float64Array, n: number, d: number, explainedVariance: number): PcaResult {
  if (data.length !== n * d) throw new Error(`pca: data has ${data.length} entries, expected ${n}×${d}`);
  if (n < 2) throw new Error('pca: need at least two rows');
  const centred = new Float64Array(n * d);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += data[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) centred[i * d + j] = data[i * d + j] - mean[j];

  // Directions: columns u_c of length d (unit), with variances λ_c / (n − 1).
  let directions: Float64Array; // c-major: direction c at [c*d, c*d+d)
  let variances: Float64Array;
  if (n >= d) {
    const cov = new Float64Array(d * d);
    for (let i = 0; i < n; i++) {
      const row = i * d;
      for (let a = 0; a < d; a++) {
        const xa = centred[row + a];
        if (xa === 0) continue;
        const base = a * d;
        for (let b = a; b < d; b++) cov[base + b] += xa * centred[row + b];
      }
    }
    for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) cov[a * d + b] = cov[b * d + a];
    const eig = symmetricEigen(cov, d);
    directions = eig.vectors;
    variances = eig.values.map((v) => Math.max(v, 0));
  } else {
    // Gram trick: X Xᵀ v = λ v ⇒ u = Xᵀ v / √λ is a unit principal direction.
    const gram = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += centred[i * d + k] * centred[j * d + k];
        gram[i * n + j] = s;
        gram[j * n + i] = s;
      }
    }
    const eig = symmetricEigen(gram, n);
    variances = eig.values.map((v) => Math.max(v, 0));
    directions = new Float64Array(n * d);
    for (let c = 0; c < n; c++) {
      const lambda = variances[c];
      if (lambda <= 0) continue;
      const scale = 1 / Math.sqrt(lambda);
      for (let i = 0; i < n; i++) {
        const vi = eig.vectors[c * n + i] * scale;
        if (vi === 0) continue;
        for (let k = 0; k < d; k++) directions[c * d + k] += vi * centred[i * d + k];
      }
    }
  }

  let total = 0;
  for (const v of variances) total += v;
  const ratio = variances.map((v) => (total > 0 ? v / total : 0));
  let components = ratio.length;
  let cumulative = 0;
  for (let c = 0; c < ratio.length; c++) {
    cumulative += ratio[c];
    if (cumulative >= explainedVariance - 1e-12) {
      components = c + 1;
      break;
    }
  }
  components = Math.max(1, Math.min(components, Math.min(n, d)));

  const projected = new Float64Array(n * components);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < components; c++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += centred[i * d + k] * directions[c * d + k];
      projected[i * components + c] = s;
    }
  }
  return { projected, components, explainedVarianceRatio: ratio };
}

/** Rows scaled to unit Euclidean length (zero rows stay zero), as sklearn's normalize(norm='l2'). */
export function l2NormalizeRows(data: Float64Array, n: number, d: number): Float64Array {
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += data[i * d + j] * data[i * d + j];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < d; j++) out[i * d + j] = data[i * d + j] * inv;
  }
  return out;
}
