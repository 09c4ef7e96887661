/**
 * The engine's counter-based random numbers (native/src/rng.h) in TypeScript: every draw is a pure function
 * of (seed, stream, index), so sampling and data order are reproducible and resumable from a step number.
 */
export function mix32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

export function hash32(key: number, index: number): number {
  return mix32((key ^ mix32((index + 0x9e3779b9) >>> 0)) >>> 0);
}

export function streamKey(seed: number, stream: number): number {
  return mix32((Math.imul(seed >>> 0, 0x85ebca6b) ^ mix32((stream ^ 0xc2b2ae35) >>> 0)) >>> 0);
}

/** The keep threshold of attention dropout with probability p: 16-bit draws at or above it are kept (rng.h). */
export function keepThreshold16(p: number): number {
  return Math.ceil(Math.fround(p) * 65536);
}

/** Attention dropout's draw, identical to the C++ keep16: element index takes one half of hash32(key, index >> 1). */
export function keep16(key: number, index: number, threshold: number): boolean {
  const h = hash32(key, index >>> 1);
  return (index & 1 ? h >>> 16 : h & 0xffff) >= threshold;
}

/** Uniform in [0, 1) with 24 bits, identical to the C++ uniform01. */
export function uniform01(key: number, index: number): number {
  return (hash32(key, index) >>> 8) / 16777216;
}
