/**
 * Word-similarity functions of PAPER.md §6.2. A word vector is either one d-vector (embedding rows) or a
 * k×d block of sense vectors, stored row-major in a Float32Array. Cosine is computed in float64.
 */
export interface WordVector {
  data: Float32Array;
  /** 1 for embedding rows, k for sense vectors. */
  rows: number;
  dim: number;
}

export type SimilarityMethod = 'cos' | 'minpair' | 'maxpair' | 'minall' | 'maxall' | `cossense${number}`;

export function cosine(a: Float32Array, aOff: number, b: Float32Array, bOff: number, dim: number): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < dim; i++) {
    const x = a[aOff + i];
    const y = b[bOff + i];
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  // torch's cosine_similarity clamps the norms with eps = 1e-8; a zero vector gives 0 there too.
  return dot / (Math.max(Math.sqrt(na), 1e-8) * Math.max(Math.sqrt(nb), 1e-8));
}

/** Parses a method name: cos, minpair (Sim_min), maxpair, minall, maxall, cossense<ℓ> (0-based sense). */
export function parseMethod(name: string): SimilarityMethod {
  const m = name.toLowerCase();
  if (m === 'cos' || m === 'minpair' || m === 'maxpair' || m === 'minall' || m === 'maxall') return m;
  const sense = /^cossense(\d+)$/.exec(m);
  if (sense) return `cossense${Number(sense[1])}`;
  throw new Error(`unknown similarity method "${name}" (cos, minpair, maxpair, minall, maxall, cossense<ℓ>)`);
}

export function similarity(method: SimilarityMethod, u: WordVector, v: WordVector): number {
  if (u.rows !== v.rows || u.dim !== v.dim) throw new Error(`similarity: shapes differ (${u.rows}×${u.dim} vs ${v.rows}×${v.dim})`);
  const { rows: k, dim: d } = u;
  if (method === 'cos') return cosine(u.data, 0, v.data, 0, k * d);
  if (method.startsWith('cossense')) {
    const l = Number(method.slice('cossense'.length));
    if (l >= k) throw new Error(`${method}: the vectors have only ${k} senses (0-based index)`);
    return cosine(u.data, l * d, v.data, l * d, d);
  }
  if (method === 'minpair' || method === 'maxpair') {
    let best = method === 'minpair' ? Infinity : -Infinity;
    for (let l = 0; l < k; l++) {
      const c = cosine(u.data, l * d, v.data, l * d, d);
      best = method === 'minpair' ? Math.min(best, c) : Math.max(best, c);
    }
    return best;
  }
  // minall / maxall: every (ℓ, m) sense pair
  let best = method === 'minall' ? Infinity : -Infinity;
  for (let l = 0; l < k; l++) {
    for (let m = 0; m < k; m++) {
      const c = cosine(u.data, l * d, v.data, m * d, d);
      best = method === 'minall' ? Math.min(best, c) : Math.max(best, c);
    }
  }
  return best;
}
