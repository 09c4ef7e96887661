/**
 * Annealed sense reweighting during generation (PAPER.md §6.3 step 3). For the current sequence
 * x_0..x_{n−1}, every position j and sense ℓ:
 *   a_{ℓ,j} = Σ_{i<n} ReLU((E·C(x_j)_ℓ)[x_i])        how much the sequence already says what the sense says
 *   b_{ℓ,j} = σ(−f·a_{ℓ,j} + 6) · (1 + j/100)
 *   w_{ℓ,j} = δ[x_j, ℓ]·b_{ℓ,j} + (1 − b_{ℓ,j})       (D4 code; paper variant: (1 − a_{ℓ,j}))
 * with f = max δ / 7.5 (D3 code; paper variant: 7.5 / max δ).
 */

export type AnnealingScaleMode = 'code' | 'paper';
export type AnnealingMixMode = 'code' | 'paper';

export interface AnnealingOptions {
  scaleMode: AnnealingScaleMode;
  mixMode: AnnealingMixMode;
}

export const ANNEALING_DEFAULTS: AnnealingOptions = { scaleMode: 'code', mixMode: 'code' };

export function annealingScale(maxDelta: number, mode: AnnealingScaleMode): number {
  if (!(maxDelta > 0)) throw new Error(`annealing: max δ must be positive, got ${maxDelta}`);
  return mode === 'code' ? maxDelta / 7.5 : 7.5 / maxDelta;
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export interface AnnealingTerms {
  /** [n][k] */
  a: Float64Array;
  b: Float64Array;
  w: Float32Array;
}

/**
 * Weights for one sequence. `senseVectorsOf(pos)` gives C(x_pos) as [k][d]; `embeddings` is E [V][d];
 * `delta` is [V][k]. Returns a, b and w as [n][k] (position-major, the senseScale layout).
 */
export function annealingWeights(
  tokens: ArrayLike<number>,
  senseVectorsOf: (tokenId: number) => Float32Array,
  embeddings: Float32Array,
  dim: number,
  senses: number,
  delta: Float32Array,
  maxDelta: number,
  options: AnnealingOptions = ANNEALING_DEFAULTS,
): AnnealingTerms {
  const n = tokens.length;
  const f = annealingScale(maxDelta, options.scaleMode);
  const a = new Float64Array(n * senses);
  const b = new Float64Array(n * senses);
  const w = new Float32Array(n * senses);
  for (let j = 0; j < n; j++) {
    const xj = tokens[j];
    const c = senseVectorsOf(xj);
    for (let l = 0; l < senses; l++) {
      const base = l * dim;
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const eRow = tokens[i] * dim;
        let dot = 0;
        for (let t = 0; t < dim; t++) dot += embeddings[eRow + t] * c[base + t];
        if (dot > 0) sum += dot;
      }
      const idx = j * senses + l;
      a[idx] = sum;
      b[idx] = sigmoid(-f * sum + 6) * (1 + j / 100);
      const mix = options.mixMode === 'code' ? 1 - b[idx] : 1 - a[idx];
      w[idx] = delta[xj * senses + l] * b[idx] + mix;
    }
  }
  return { a, b, w };
}

/**
 * Incremental annealing for one growing sequence: a_{ℓ,j} only gains the term of each new token, and a new
 * position j needs one pass over the sequence, so a step costs O(n·k·d) instead of O(n²·k·d). Gives the
 * same a, b, w as `annealingWeights` on the whole sequence.
 */
export class AnnealingState {
  private readonly tokens: number[] = [];
  private a = new Float64Array(0);
  private readonly f: number;

  constructor(
    private readonly senseVectorsOf: (tokenId: number) => Float32Array,
    private readonly embeddings: Float32Array,
    private readonly dim: number,
    private readonly senses: number,
    private readonly delta: Float32Array,
    maxDelta: number,
    private readonly options: AnnealingOptions = ANNEALING_DEFAULTS,
  ) {
    this.f = annealingScale(maxDelta, options.scaleMode);
  }

  private projection(senseOwner: number, l: number, tokenAt: number): number {
    const c = this.senseVectorsOf(senseOwner);
    const eRow = tokenAt * this.dim;
    const base = l * this.dim;
    let dot = 0;
    for (let t = 0; t < this.dim; t++) dot += this.embeddings[eRow + t] * c[base + t];
    return dot > 0 ? dot : 0;
  }

  /** Brings the state to `sequence`, which must extend the tokens seen so far. */
  syncTo(sequence: ArrayLike<number>): void {
    for (let i = 0; i < this.tokens.length; i++) {
      if (sequence[i] !== this.tokens[i]) throw new Error('AnnealingState: the sequence does not extend the previous one');
    }
    const k = this.senses;
    for (let n = this.tokens.length; n < sequence.length; n++) {
      const x = sequence[n];
      const grown = new Float64Array((n + 1) * k);
      grown.set(this.a);
      // Existing positions gain ReLU(Λ(x_j)[x_new]).
      for (let j = 0; j < n; j++) for (let l = 0; l < k; l++) grown[j * k + l] += this.projection(this.tokens[j], l, x);
      this.tokens.push(x);
      // The new position sums over the whole (extended) sequence.
      for (let l = 0; l < k; l++) {
        let s = 0;
        for (let i = 0; i <= n; i++) s += this.projection(x, l, this.tokens[i]);
        grown[n * k + l] = s;
      }
      this.a = grown;
    }
  }

  /** w as [n][k] for the current sequence. */
  weights(): Float32Array {
    const k = this.senses;
    const n = this.tokens.length;
    const w = new Float32Array(n * k);
    for (let j = 0; j < n; j++) {
      for (let l = 0; l < k; l++) {
        const a = this.a[j * k + l];
        const b = sigmoid(-this.f * a + 6) * (1 + j / 100);
        const mix = this.options.mixMode === 'code' ? 1 - b : 1 - a;
        w[j * k + l] = this.delta[this.tokens[j] * k + l] * b + mix;
      }
    }
    return w;
  }
}
