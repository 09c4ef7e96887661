/**
 * The log-likelihood primitive of EleutherAI's lm-evaluation-harness (v0.3-era task code, the version the
 * paper's authors forked; PAPER.md §6.1), and its rolling-window variant used for perplexity tasks.
 *
 * Conventions, exactly as the harness does them:
 * - context tokens = encode(context), or [eos] when the context is the empty string;
 * - continuation tokens = encode(continuation), encoded SEPARATELY from the context and then appended
 *   (so " word" after a context is tokenized on its own, leading space included);
 * - model input = (context + continuation)[-(maxLength + 1):][:-1], i.e. keep the last maxLength + 1 tokens
 *   and drop the final one (it is only ever a target);
 * - the log-softmax rows at the last |continuation| input positions score the continuation;
 *   LL = Σ log p(continuation token), greedy = every continuation token is the row's argmax (first index
 *   on ties, like torch.argmax).
 * The model's `logProbs` already slices the logits to the real vocabulary (the authors' fork slices to the
 * first 50,257 columns before the log-softmax).
 */
import type { EvalModel } from './types';

/** Model context of the paper's models (PAPER.md §6.1: max_length = 512). */
export const HARNESS_MAX_LENGTH = 512;

export interface LoglikelihoodResult {
  /** Σ log p over the continuation tokens (natural log). */
  ll: number;
  /** Greedy decoding would have produced exactly the continuation. */
  greedy: boolean;
  /** Number of continuation tokens scored. */
  tokens: number;
}

/** The input the model sees for one (context, continuation) request. */
export function harnessInput(context: readonly number[], continuation: readonly number[], maxLength = HARNESS_MAX_LENGTH): number[] {
  if (continuation.length === 0) throw new Error('loglikelihood: empty continuation');
  if (continuation.length > maxLength) {
    throw new Error(`loglikelihood: continuation of ${continuation.length} tokens exceeds max length ${maxLength}`);
  }
  const whole = [...context, ...continuation];
  return whole.slice(Math.max(0, whole.length - (maxLength + 1)), whole.length - 1);
}

/** LL(context, continuation) on token ids. `context` must be non-empty (use [eos] for ""). */
export async function loglikelihoodTokens(
  model: EvalModel,
  context: readonly number[],
  continuation: readonly number[],
  maxLength = HARNESS_MAX_LENGTH,
): Promise<LoglikelihoodResult> {
  if (context.length === 0) throw new Error('loglikelihood: empty context (the harness uses [eos] for an empty string)');
  const input = harnessInput(context, continuation, maxLength);
  const vocab = model.config.realVocabSize;
  const rows = await model.logProbs(Int32Array.from(input));
  if (rows.length !== input.length * vocab) {
    throw new Error(`logProbs returned ${rows.length} values, expected ${input.length}×${vocab}`);
  }
  let ll = 0;
  let greedy = true;
  const first = input.length - continuation.length;
  for (let j = 0; j < continuation.length; j++) {
    const target = continuation[j];
    if (target < 0 || target >= vocab) throw new Error(`continuation token ${target} is outside the real vocabulary [0, ${vocab})`);
    const base = (first + j) * vocab;
    ll += rows[base + target];
    if (greedy && argmaxRow(rows, base, vocab) !== target) greedy = false;
  }
  return { ll, greedy, tokens: continuation.length };
}

function argmaxRow(rows: Float32Array, base: number, width: number): number {
  let best = 0;
  let bestValue = rows[base];
  for (let i = 1; i < width; i++) {
    const v = rows[base + i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** One disjoint rolling window: score `continuation` given `context` with the LL primitive. */
export interface RollingWindow {
  context: number[];
  continuation: number[];
}

/**
 * The harness's `get_rolling_token_windows(tokens, prefix=eos, max_seq_len, context_len=1)` followed by
 * `make_disjoint_window`. The first window predicts tokens[0 : min(L, n)] from [eos] + tokens[: min(L, n) − 1];
 * each later window predicts the next ≤ L tokens tokens[a : e] from the full-length input tokens[e − L − 1 : e − 1],
 * scoring only its last e − a positions. Every token is predicted exactly once.
 */
export function rollingWindows(tokens: readonly number[], eosId: number, maxSeqLen = HARNESS_MAX_LENGTH): RollingWindow[] {
  const n = tokens.length;
  const windows: RollingWindow[] = [];
  if (n === 0) return windows;
  const predLen = maxSeqLen; // max_seq_len − context_len + 1 with context_len = 1
  const firstLen = Math.min(maxSeqLen, n);
  windows.push({ context: [eosId], continuation: tokens.slice(0, firstLen) });
  let predicted = firstLen;
  while (predicted < n) {
    const windowPredLen = Math.min(n - predicted, predLen);
    const end = predicted + windowPredLen;
    const input = tokens.slice(Math.max(0, end - maxSeqLen - 1), end - 1);
    const continuation = tokens.slice(end - windowPredLen, end);
    // make_disjoint_window: the context is the input minus the part that overlaps the continuation.
    windows.push({ context: input.slice(0, input.length - (continuation.length - 1)), continuation });
    predicted += windowPredLen;
  }
  return windows;
}

/** Σ log p of every token of `tokens` under rolling windows (the harness's loglikelihood_rolling). */
export async function rollingLoglikelihood(
  model: EvalModel,
  tokens: readonly number[],
  eosId: number,
  maxSeqLen = HARNESS_MAX_LENGTH,
): Promise<number> {
  let total = 0;
  for (const w of rollingWindows(tokens, eosId, maxSeqLen)) {
    total += (await loglikelihoodTokens(model, w.context, w.continuation, maxSeqLen)).ll;
  }
  return total;
}
