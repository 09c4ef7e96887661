/**
 * PPLM on the native engine (PAPER.md §6.4; C++ in native/src/pplm/): a session decodes `rows` GPT-2
 * sequences in lockstep over two key/value caches — the clean cache of the unperturbed model and the past
 * PPLM carries and perturbs — and returns the exact gradient of a caller's loss with respect to a
 * perturbation of the first P cached positions of every layer. The loss stays with the caller: it receives
 * logits and hands back dLoss/dLogits.
 *
 * Layout of a perturbation and of its gradient: [rows][nLayer][2 (key, value)][P][nEmbd], heads side by side.
 * The session borrows the model's weights (no copy) and runs its calls in the model's call queue.
 */
import { addon, type RawModel } from './binding';
import type { NativeModel } from './index';

interface RawPplmSession {
  reset(): void;
  lengths(): { clean: number; past: number };
  cleanStep(tokens: Int32Array): Promise<Float32Array>;
  perturbedStep(tokens: Int32Array, delta: Float32Array | null, positions: number, commit: boolean): Promise<Float32Array>;
  jointStep(tokens: Int32Array, commitPast: boolean): Promise<Float32Array>;
  backward(dLogits: Float32Array, positions: number): Promise<Float32Array>;
  close(): void;
}

type PplmCtor = new (model: RawModel, rows: number, capacity: number) => RawPplmSession;

function pplmCtor(): PplmCtor {
  const ctor = (addon() as unknown as { PplmSession?: PplmCtor }).PplmSession;
  if (!ctor) throw new Error('native engine: this build has no PplmSession (rebuild with `npm run build:native`)');
  return ctor;
}

export class PplmSession {
  private constructor(
    private readonly model: NativeModel,
    private readonly raw: RawPplmSession,
    readonly rows: number,
    readonly capacity: number,
  ) {}

  /** A session of `rows` sequences of at most `capacity` positions on a CPU GPT-2 model. */
  static async open(model: NativeModel, rows: number, capacity: number): Promise<PplmSession> {
    if (model.config.arch !== 'gpt2') throw new Error(`pplm: needs a GPT-2 (Transformer) model, got ${model.config.arch}`);
    if (model.device !== 'cpu') throw new Error(`pplm: the native PPLM session runs on the CPU engine (model is on ${model.device})`);
    if (!Number.isInteger(rows) || rows < 1) throw new Error(`pplm: rows must be a positive integer, got ${rows}`);
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > model.config.nPositions) {
      throw new Error(`pplm: capacity must be in 1..${model.config.nPositions} (n_positions), got ${capacity}`);
    }
    const raw = await model.exclusive((m) => new (pplmCtor())(m, rows, capacity));
    return new PplmSession(model, raw, rows, capacity);
  }

  get layers(): number {
    return this.model.config.nLayer;
  }
  get width(): number {
    return this.model.config.nEmbd;
  }
  get vocabSize(): number {
    return this.model.config.vocabSize;
  }

  /** Positions in the clean and in the carried (perturbed) cache. */
  lengths(): { clean: number; past: number } {
    return this.raw.lengths();
  }

  reset(): Promise<void> {
    return this.model.exclusive(() => this.raw.reset());
  }

  /** The unperturbed model: appends one token per row to the clean cache; next-token logits [rows][V]. */
  async cleanStep(tokens: Int32Array): Promise<Float32Array> {
    this.checkTokens(tokens);
    return this.model.exclusive(() => this.raw.cleanStep(tokens));
  }

  /**
   * One token per row attending to past + delta (delta over the first `positions` cached positions, or null);
   * logits [rows][V]. `commit` folds delta into the past and appends the tokens' keys/values.
   */
  async perturbedStep(tokens: Int32Array, delta: Float32Array | null, positions: number, commit: boolean): Promise<Float32Array> {
    this.checkTokens(tokens);
    if (delta && delta.length !== this.deltaSize(positions)) {
      throw new Error(`pplm: delta holds ${delta.length} values, expected rows*layers*2*${positions}*d = ${this.deltaSize(positions)}`);
    }
    return this.model.exclusive(() => this.raw.perturbedStep(tokens, delta, positions, commit));
  }

  /**
   * cleanStep and an undisturbed perturbedStep(tokens, null, 0, commitPast) in one pass over the weights (both
   * caches must have the same length). Logits [rows][V] of each.
   */
  async jointStep(tokens: Int32Array, commitPast: boolean): Promise<{ past: Float32Array; clean: Float32Array }> {
    this.checkTokens(tokens);
    const both = await this.model.exclusive(() => this.raw.jointStep(tokens, commitPast));
    const n = this.rows * this.vocabSize;
    return { past: both.subarray(0, n), clean: both.subarray(n) };
  }

  /** dLoss/dDelta over the first `positions` cached positions of the last perturbed step, given dLoss/dLogits [rows][V]. */
  async backward(dLogits: Float32Array, positions: number): Promise<Float32Array> {
    if (dLogits.length !== this.rows * this.vocabSize) throw new Error(`pplm: dLogits holds ${dLogits.length} values, expected rows*V = ${this.rows * this.vocabSize}`);
    return this.model.exclusive(() => this.raw.backward(dLogits, positions));
  }

  /** Frees the session's caches now (they can be large: rows × 4 × layers × capacity × d floats). */
  close(): Promise<void> {
    return this.model.exclusive(() => this.raw.close());
  }

  /** Values in a perturbation (or its gradient) over `positions` cached positions. */
  deltaSize(positions: number): number {
    return this.rows * this.layers * 2 * positions * this.width;
  }

  private checkTokens(tokens: Int32Array): void {
    if (tokens.length !== this.rows) throw new Error(`pplm: expected one token per row (${this.rows}), got ${tokens.length}`);
  }
}
