/**
 * numpy's `np.random.default_rng(seed).permutation(n)`, bit for bit: SeedSequence → PCG64 (XSL-RR)
 * → Generator.shuffle (Fisher–Yates from the end with masked rejection sampling). Hugging Face
 * `train_test_split(test_size, seed, shuffle=True)` takes test = permutation[:ceil(test_size·n)] and
 * train = the rest (PAPER.md §5), so this reproduces the authors' OpenWebText validation split.
 * Checked against numpy 2.x in the tests.
 */

const MASK128 = (1n << 128n) - 1n;

/** SeedSequence(entropy).generate_state(nWords, uint64) with the default pool size 4. */
export function seedSequenceState(entropy: number, nWords64: number): bigint[] {
  if (!Number.isInteger(entropy) || entropy < 0 || entropy > 0xffffffff) throw new Error(`seed must be a 32-bit unsigned integer, got ${entropy}`);
  const INIT_A = 0x43b0d7e5;
  const MULT_A = 0x931e8875;
  const INIT_B = 0x8b51f9dd;
  const MULT_B = 0x58f38ded;
  const MIX_MULT_L = 0xca01f9dd;
  const MIX_MULT_R = 0x4973f715;
  let hashConst = INIT_A;
  const hashmix = (value: number): number => {
    value = (value ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    value = Math.imul(value, hashConst) >>> 0;
    return (value ^ (value >>> 16)) >>> 0;
  };
  const mix = (x: number, y: number): number => {
    let r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    r = (r ^ (r >>> 16)) >>> 0;
    return r;
  };
  const entropyWords = [entropy >>> 0];
  const pool = [0, 0, 0, 0];
  for (let i = 0; i < pool.length; i++) pool[i] = hashmix(i < entropyWords.length ? entropyWords[i] : 0);
  for (let src = 0; src < pool.length; src++) {
    for (let dst = 0; dst < pool.length; dst++) if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
  }
  for (let src = pool.length; src < entropyWords.length; src++) {
    for (let dst = 0; dst < pool.length; dst++) pool[dst] = mix(pool[dst], hashmix(entropyWords[src]));
  }
  let h = INIT_B;
  const words32: number[] = [];
  for (let i = 0; i < nWords64 * 2; i++) {
    let v = (pool[i % pool.length] ^ h) >>> 0;
    h = Math.imul(h, MULT_B) >>> 0;
    v = Math.imul(v, h) >>> 0;
    words32.push((v ^ (v >>> 16)) >>> 0);
  }
  const out: bigint[] = [];
  for (let i = 0; i < nWords64; i++) out.push(BigInt(words32[2 * i]) | (BigInt(words32[2 * i + 1]) << 32n));
  return out;
}

function toLimbs(x: bigint): Float64Array {
  const limbs = new Float64Array(8);
  for (let i = 0; i < 8; i++) limbs[i] = Number((x >> BigInt(16 * i)) & 0xffffn);
  return limbs;
}

/**
 * PCG64 (128-bit LCG, XSL-RR output) as seeded by numpy from a SeedSequence. The state lives in
 * eight 16-bit limbs so the multiply stays in exact double arithmetic (BigInt is ~20× slower, and a
 * permutation of OpenWebText needs 8 million draws).
 */
export class Pcg64 {
  private static readonly MULT = (0x2360ed051fc65da4n << 64n) | 0x4385df649fccf645n;
  private readonly s: Float64Array;
  private readonly m = toLimbs(Pcg64.MULT);
  private readonly inc: Float64Array;
  private readonly next = new Float64Array(8);
  private spare = -1;

  constructor(seed: number) {
    const [s0, s1, i0, i1] = seedSequenceState(seed, 4);
    const initState = (s0 << 64n) | s1;
    const inc = ((((i0 << 64n) | i1) << 1n) | 1n) & MASK128;
    const step = (x: bigint) => (x * Pcg64.MULT + inc) & MASK128;
    this.s = toLimbs(step((step(0n) + initState) & MASK128));
    this.inc = toLimbs(inc);
  }

  /** state = state · MULT + inc (mod 2^128), schoolbook on 16-bit limbs. */
  private step(): void {
    const s = this.s;
    const m = this.m;
    const out = this.next;
    let carry = 0;
    for (let k = 0; k < 8; k++) {
      let t = carry + this.inc[k];
      for (let i = 0; i <= k; i++) t += s[i] * m[k - i];
      const limb = t % 65536;
      out[k] = limb;
      carry = (t - limb) / 65536;
    }
    s.set(out);
  }

  private lo = 0;
  private hi = 0;

  /** Advances and leaves the next 64-bit output in (lo, hi) 32-bit halves. */
  private output(): void {
    this.step();
    const s = this.s;
    const xl = ((s[0] ^ s[4]) | ((s[1] ^ s[5]) << 16)) >>> 0;
    const xh = ((s[2] ^ s[6]) | ((s[3] ^ s[7]) << 16)) >>> 0;
    const rot = s[7] >>> 10;
    if (rot === 0) {
      this.lo = xl;
      this.hi = xh;
    } else if (rot < 32) {
      this.lo = ((xl >>> rot) | (xh << (32 - rot))) >>> 0;
      this.hi = ((xh >>> rot) | (xl << (32 - rot))) >>> 0;
    } else if (rot === 32) {
      this.lo = xh;
      this.hi = xl;
    } else {
      const r = rot - 32;
      this.lo = ((xh >>> r) | (xl << (32 - r))) >>> 0;
      this.hi = ((xl >>> r) | (xh << (32 - r))) >>> 0;
    }
  }

  next64(): bigint {
    this.output();
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** numpy hands out the two halves of a 64-bit draw, low half first. */
  next32(): number {
    if (this.spare >= 0) {
      const v = this.spare;
      this.spare = -1;
      return v;
    }
    this.output();
    this.spare = this.hi;
    return this.lo;
  }
}

/** Uniform integer in [0, max] as numpy's random_interval draws it (masked rejection). */
function randomInterval(rng: Pcg64, max: number): number {
  if (max === 0) return 0;
  if (max > 0xffffffff) throw new Error('permutations above 2^32 elements are not supported');
  let mask = max;
  mask |= mask >>> 1;
  mask |= mask >>> 2;
  mask |= mask >>> 4;
  mask |= mask >>> 8;
  mask |= mask >>> 16;
  mask >>>= 0;
  for (;;) {
    const v = (rng.next32() & mask) >>> 0;
    if (v <= max) return v;
  }
}

/** np.random.default_rng(seed).permutation(n). */
export function numpyPermutation(n: number, seed: number): Uint32Array {
  const arr = new Uint32Array(n);
  for (let i = 0; i < n; i++) arr[i] = i;
  const rng = new Pcg64(seed);
  for (let i = n - 1; i >= 1; i--) {
    const j = randomInterval(rng, i);
    const t = arr[i];
    arr[i] = arr[j];
    arr[j] = t;
  }
  return arr;
}
