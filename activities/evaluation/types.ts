/**
 * The narrow views of a tokenizer and a model that the evaluations need. They are structural, so the
 * real tokenizer (datasets/tokenizer) and the native model (native/index.ts) fit them, and tests can
 * pass small TypeScript models whose probabilities are known in closed form.
 */
import type { LanguageModel } from '../../native/types';

/** What an evaluation needs from a tokenizer (a subset of the project's Tokenizer interface). */
export interface EvalTokenizer {
  name: string;
  /** Real vocabulary size (models pad theirs to a multiple of 8). */
  vocabSize: number;
  eosId: number;
  /** Encodes text; a literal `<|endoftext|>` becomes eosId (harness behaviour, PAPER.md §9.9). */
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
  /** Id of an "unknown" piece, for tokenizers that have one (byte-level BPE has none). */
  unkId?: number;
}

/** Optional batched forward of the native engine: logits over all padded rows [b][s][vocabSize], or the loss. */
export interface ForwardWithLoss {
  forward(
    tokens: Int32Array,
    opts: { batch: number; seq: number; logits?: boolean; targets?: Int32Array },
  ): Promise<{ logits?: Float32Array; loss?: number; perTokenLoss?: Float32Array }>;
}

export type EvalModel = LanguageModel & Partial<ForwardWithLoss>;

/** Progress/cancellation hooks shared by every task runner (activities pass ctx pieces, the CLI a printer). */
export interface RunHooks {
  signal?: AbortSignal;
  /** Called with (done, total) now and then. */
  onProgress?(done: number, total: number): void;
}

export function checkAborted(hooks: RunHooks | undefined): void {
  if (hooks?.signal?.aborted) throw new Error(`cancelled: ${String(hooks.signal.reason ?? 'aborted')}`);
}
