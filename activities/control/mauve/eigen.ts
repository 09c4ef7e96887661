/**
 * Symmetric eigendecomposition: Householder reduction to tridiagonal form, then the implicit QL
 * algorithm with Wilkinson-style shifts. O(n³); used by PCA on a d×d covariance (d ≤ a few thousand).
 */

export interface SymmetricEigen {
  /** Eigenvalues in descending order. */
  values: Float64Array;
  /** Column-major eigenvectors: vector i occupies vectors[i*n .. i*n+n) (same order as values). */
  vectors: Float64Array;
  n: number;
}

/** `matrix` is n×n row-major and symmetric (only read, never modified). */
export function symmetricEigen(matrix: Float64Array, n: number): SymmetricEigen {
  if (matrix.length !== n * n) throw new Error(`symmetricEigen: expected ${n * n} entries, got ${matrix.length}`);
  // z holds the accumulated orthogonal transform, row-major n×n; columns become eigenvectors.
  const z = Float64Array.from(matrix);
  const diag = new Float64Array(n);
  const off = new Float64Array(n);
  householderTridiagonalize(z, n, diag, off);
  implicitQl(z, n, diag, off);

  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => diag[b] - diag[a]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = diag[src];
    for (let r = 0; r < n; r++) vectors[dst * n + r] = z[r * n + src];
  });
  return { values, vectors, n };
}

/**
 * Reduces symmetric z (row-major) to tridiagonal form T = Qᵀ A Q; on return z = Q, diag/off hold T
 * (off[i] couples i-1 and i; off[0] = 0).
 */
function householderTridiagonalize(z: Float64Array, n: number, diag: Float64Array, off: Float64Array): void {
  for (let i = n - 1; i > 0; i--) {
    const l = i - 1;
    let h = 0;
    if (l > 0) {
      let scale = 0;
      for (let k = 0; k <= l; k++) scale += Math.abs(z[i * n + k]);
      if (scale === 0) {
        off[i] = z[i * n + l];
      } else {
        for (let k = 0; k <= l; k++) {
          z[i * n + k] /= scale;
          h += z[i * n + k] * z[i * n + k];
        }
        const f = z[i * n + l];
        const g = f >= 0 ? -Math.sqrt(h) : Math.sqrt(h);
        off[i] = scale * g;
        h -= f * g;
        z[i * n + l] = f - g;
        let fAcc = 0;
        for (let j = 0; j <= l; j++) {
          z[j * n + i] = z[i * n + j] / h;
          let gj = 0;
          for (let k = 0; k <= j; k++) gj += z[j * n + k] * z[i * n + k];
          for (let k = j + 1; k <= l; k++) gj += z[k * n + j] * z[i * n + k];
          off[j] = gj / h;
          fAcc += off[j] * z[i * n + j];
        }
        const hh = fAcc / (h + h);
        for (let j = 0; j <= l; j++) {
          const fj = z[i * n + j];
          const gj = off[j] - hh * fj;
          off[j] = gj;
          for (let k = 0; k <= j; k++) z[j * n + k] -= fj * off[k] + gj * z[i * n + k];
        }
      }
    } else {
      off[i] = z[i * n + l];
    }
    diag[i] = h;
  }
  diag[0] = 0;
  off[0] = 0;
  // Accumulate the transformations.
  for (let i = 0; i < n; i++) {
    const l = i - 1;
    if (diag[i] !== 0) {
      for (let j = 0; j <= l; j++) {
        let g = 0;
        for (let k = 0; k <= l; k++) g += z[i * n + k] * z[k * n + j];
        for (let k = 0; k <= l; k++) z[k * n + j] -= g * z[k * n + i];
      }
    }
    diag[i] = z[i * n + i];
    z[i * n + i] = 1;
    for (let j = 0; j <= l; j++) {
      z[j * n + i] = 0;
      z[i * n + j] = 0;
    }
  }
}

/** QL iterations with implicit shifts on the tridiagonal (diag, off); rotations applied to z's columns. */
function implicitQl(z: Float64Array, n: number, diag: Float64Array, off: Float64Array): void {
  for (let i = 1; i < n; i++) off[i - 1] = off[i];
  if (n > 0) off[n - 1] = 0;
  for (let l = 0; l < n; l++) {
    let iterations = 0;
    for (;;) {
      let m = l;
      for (; m < n - 1; m++) {
        const dd = Math.abs(diag[m]) + Math.abs(diag[m + 1]);
        if (Math.abs(off[m]) <= Number.EPSILON * dd) break;
      }
      if (m === l) break;
      if (++iterations > 60) throw new Error('symmetricEigen: QL iteration did not converge');
      let g = (diag[l + 1] - diag[l]) / (2 * off[l]);
      let r = Math.hypot(g, 1);
      g = diag[m] - diag[l] + off[l] / (g + (g >= 0 ? r : -r));
      let s = 1;
      let c = 1;
      let p = 0;
      let i = m - 1;
      let underflow = false;
      for (; i >= l; i--) {
        let f = s * off[i];
        const b = c * off[i];
        r = Math.hypot(f, g);
        off[i + 1] = r;
        if (r === 0) {
          diag[i + 1] -= p;
          off[m] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = diag[i + 1] - p;
        r = (diag[i] - g) * s + 2 * c * b;
        p = s * r;
        diag[i + 1] = g + p;
        g = c * r - b;
        for (let k = 0; k < n; k++) {
          f = z[k * n + i + 1];
          z[k * n + i + 1] = s * z[k * n + i] + c * f;
          z[k * n + i] = c * z[k * n + i] - s * f;
        }
      }
      if (underflow && i >= l) continue;
      diag[l] -= p;
      off[l] = g;
      off[m] = 0;
    }
  }
}
