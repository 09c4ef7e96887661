/**
 * Deterministic train/validation document split (PAPER.md §5 defaults: ratio 0.0005, seed 2357).
 *
 * Rule: with N documents, n_val = ceil(ratio · N) (at least 1 when N ≥ 2 and ratio > 0, and at most
 * N − 1). The validation documents are the first n_val positions of a seeded Fisher–Yates shuffle of
 * 0..N−1 (swap position i with a uniform j in [i, N), i = 0, 1, ...), driven by xoshiro128** seeded
 * through SplitMix32 from `seed`; bounded draws use rejection sampling (no modulo bias). Validation
 * documents keep that shuffled order; training documents keep corpus order. Only n_val swaps are made
 * (a sparse map), so the split costs O(n_val) even for millions of documents.
 *
 * This is our own generator, not numpy's PCG64: the counts match the paper (N = 8,013,769 → 4,007),
 * the chosen documents do not.
 */

export const DEFAULT_VAL_RATIO = 0.0005;
export const DEFAULT_SPLIT_SEED = 2357;

/** xoshiro128** with SplitMix32 seeding: small, fast, well-tested 32-bit generator. */
export class Xoshiro128 {
  private s = new Uint32Array(4);

  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform integer in [0, bound), bound ≤ 2^32. */
  below(bound: number): number {
    if (bound <= 1) return 0;
    const limit = 4294967296 - (4294967296 % bound);
    for (;;) {
      const v = this.nextUint32();
      if (v < limit) return v % bound;
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export function validationCount(total: number, ratio: number): number {
  if (!(ratio >= 0 && ratio < 1)) throw new Error(`validation ratio must be in [0, 1), got ${ratio}`);
  if (total < 2 || ratio === 0) return 0;
  return Math.min(total - 1, Math.max(1, Math.ceil(ratio * total - 1e-9)));
}

/** Indices of the validation documents, in validation order. */
export function validationIndices(total: number, ratio = DEFAULT_VAL_RATIO, seed = DEFAULT_SPLIT_SEED): number[] {
  const nVal = validationCount(total, ratio);
  const rng = new Xoshiro128(seed);
  const swapped = new Map<number, number>();
  const at = (i: number) => swapped.get(i) ?? i;
  const out: number[] = [];
  for (let i = 0; i < nVal; i++) {
    const j = i + rng.below(total - i);
    const vi = at(i);
    const vj = at(j);
    swapped.set(i, vj);
    swapped.set(j, vi);
    out.push(vj);
  }
  return out;
}
