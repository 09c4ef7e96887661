/**
 * Lloyd's k-means with random-point initialisation and several restarts (best objective kept), the
 * configuration MAUVE runs through faiss. Deterministic for a seed. Iterations stop early once no
 * assignment changes: a fixed point that further Lloyd steps would not move.
 */
import { Rng, deriveSeed } from '../util/rng';

export interface KMeansOptions {
  k: number;
  /** Restarts from fresh random initialisations; the lowest objective wins. */
  restarts: number;
  maxIterations: number;
  seed: number;
}

export interface KMeansResult {
  centroids: Float64Array;
  labels: Int32Array;
  /** Sum of squared distances of every point to its centroid. */
  objective: number;
  iterations: number;
  restart: number;
}

export function kmeans(data: Float64Array, n: number, d: number, options: KMeansOptions): KMeansResult {
  const { k, restarts, maxIterations, seed } = options;
  if (!Number.isInteger(k) || k < 1) throw new Error(`kmeans: k must be a positive integer, got ${k}`);
  if (k > n) throw new Error(`kmeans: k = ${k} exceeds the number of points ${n}`);
  if (restarts < 1) throw new Error('kmeans: restarts must be ≥ 1');
  let best: KMeansResult | undefined;
  for (let r = 0; r < restarts; r++) {
    const run = lloyd(data, n, d, k, maxIterations, new Rng(deriveSeed(seed, 'kmeans', r)));
    if (!best || run.objective < best.objective) best = { ...run, restart: r };
  }
  return best!;
}

function lloyd(data: Float64Array, n: number, d: number, k: number, maxIterations: number, rng: Rng) {
  const centroids = new Float64Array(k * d);
  const init = rng.sampleWithoutReplacement(n, k);
  for (let c = 0; c < k; c++) centroids.set(data.subarray(init[c] * d, init[c] * d + d), c * d);

  const pointNorms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += data[i * d + j] * data[i * d + j];
    pointNorms[i] = s;
  }
  const labels = new Int32Array(n).fill(-1);
  const counts = new Int32Array(k);
  const centroidNorms = new Float64Array(k);
  let objective = Infinity;
  let iterations = 0;
  for (let it = 0; it < maxIterations; it++) {
    iterations = it + 1;
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += centroids[c * d + j] * centroids[c * d + j];
      centroidNorms[c] = s;
    }
    let changed = 0;
    objective = 0;
    for (let i = 0; i < n; i++) {
      const row = i * d;
      let bestC = 0;
      let bestDist = Infinity;
      for (let c = 0; c < k; c++) {
        const base = c * d;
        let dot = 0;
        for (let j = 0; j < d; j++) dot += data[row + j] * centroids[base + j];
        const dist = centroidNorms[c] - 2 * dot;
        if (dist < bestDist) {
          bestDist = dist;
          bestC = c;
        }
      }
      objective += Math.max(0, bestDist + pointNorms[i]);
      if (labels[i] !== bestC) {
        labels[i] = bestC;
        changed++;
      }
    }
    if (changed === 0 && it > 0) break;

    centroids.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const c = labels[i];
      counts[c]++;
      const base = c * d;
      for (let j = 0; j < d; j++) centroids[base + j] += data[i * d + j];
    }
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) continue;
      const inv = 1 / counts[c];
      for (let j = 0; j < d; j++) centroids[c * d + j] *= inv;
    }
    splitEmptyClusters(centroids, counts, d, k);
  }
  return { centroids, labels, objective, iterations };
}

/**
 * An empty cluster takes half of the currently largest one: both copies of that centroid are nudged in
 * opposite directions so the next assignment step separates them (the faiss strategy, made deterministic).
 */
function splitEmptyClusters(centroids: Float64Array, counts: Int32Array, d: number, k: number): void {
  const nudge = 1 / 1024;
  for (let c = 0; c < k; c++) {
    if (counts[c] !== 0) continue;
    let largest = 0;
    for (let o = 1; o < k; o++) if (counts[o] > counts[largest]) largest = o;
    for (let j = 0; j < d; j++) {
      const v = centroids[largest * d + j];
      centroids[c * d + j] = j % 2 === 0 ? v * (1 + nudge) : v * (1 - nudge);
      centroids[largest * d + j] = j % 2 === 0 ? v * (1 - nudge) : v * (1 + nudge);
    }
    const half = counts[largest] >> 1;
    counts[c] = half;
    counts[largest] -= half;
  }
}
