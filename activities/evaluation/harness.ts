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
 * Beyond the harness: max_length is min(512, the model's context), and a continuation longer than that (only
 * possible with short-context tiny models) is scored in consecutive chunks, each with all the context that
 * fits; for continuations that fit, the result is exactly the harness's.
 */
import type { EvalModel } from './types';

/** Model context of the paper's models (PAPER.md §6.1: max_length = 512). */
export const HARNESS_MAX_LENGTH = 512;

/** The harness's max_length for a model: 512, or the model's own context when that is shorter (tiny models). */
export function maxLengthFor(model: EvalModel): number {
  return Math.min(HARNESS_MAX_LENGTH, model.config.nPositions);
}

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
    throw new Error(`loglikelihood: continuation of ${continuation.length} tokens exceeds max length ${maxLength} (loglikelihoodMany scores such requests in chunks)`);
  }
  const whole = [...context, ...continuation];
  return whole.slice(Math.max(0, whole.length - (maxLength + 1)), whole.length - 1);
}

/** LL(context, continuation) on token ids. `context` must be non-empty (use [eos] for ""). */
export async function loglikelihoodTokens(
  model: EvalModel,
  context: readonly number[],
  continuation: readonly number[],
  maxLength = maxLengthFor(model),
): Promise<LoglikelihoodResult> {
  if (context.length === 0) throw new Error('loglikelihood: empty context (the harness uses [eos] for an empty string)');
  const input = harnessInput(context, continuation, maxLength);
  const vocab = model.config.realVocabSize;
  const rows = await lastRowsLogProbs(model, Int32Array.from(input), continuation.length);
  let ll = 0;
  let greedy = true;
  for (let j = 0; j < continuation.length; j++) {
    const target = continuation[j];
    if (target < 0 || target >= vocab) throw new Error(`continuation token ${target} is outside the real vocabulary [0, ${vocab})`);
    const base = j * vocab;
    ll += rows[base + target];
    if (greedy && argmaxRow(rows, base, vocab) !== target) greedy = false;
  }
  return { ll, greedy, tokens: continuation.length };
}

/**
 * Log-softmax over the first realVocabSize columns of the last `count` positions of `input`:
 * Float32Array [count][realVocabSize]. With the native engine's `forward` only those rows are normalised
 * (the others are never looked at); otherwise the model's `logProbs` is used and sliced.
 */
export async function lastRowsLogProbs(model: EvalModel, input: Int32Array, count: number): Promise<Float32Array> {
  const R = model.config.realVocabSize;
  const n = input.length;
  if (typeof model.forward === 'function') {
    const V = model.config.vocabSize;
    const { logits } = await model.forward(input, { batch: 1, seq: n, logits: true });
    if (!logits || logits.length !== n * V) throw new Error(`forward returned ${logits?.length ?? 0} logits, expected ${n}×${V}`);
    const out = new Float32Array(count * R);
    for (let j = 0; j < count; j++) {
      const base = (n - count + j) * V;
      let max = -Infinity;
      for (let i = 0; i < R; i++) if (logits[base + i] > max) max = logits[base + i];
      let sum = 0;
      for (let i = 0; i < R; i++) sum += Math.exp(logits[base + i] - max);
      const lse = max + Math.log(sum);
      for (let i = 0; i < R; i++) out[j * R + i] = logits[base + i] - lse;
    }
    return out;
  }
  const all = await model.logProbs(input);
  if (all.length !== n * R) throw new Error(`logProbs returned ${all.length} values, expected ${n}×${R}`);
  return all.subarray((n - count) * R);
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

export interface LoglikelihoodRequest {
  context: readonly number[];
  continuation: readonly number[];
}

/** Logits held at once by a batched forward: bounds memory (64M floats = 256 MiB). */
const LOGIT_BUDGET = 64 * 1024 * 1024;
/** Sequences per forward: the engine sizes its activation buffers by batch, so keep it modest. */
const MAX_BATCH = 32;

/**
 * LL of many requests, batched through the native `forward` when the model has it (like the harness, which
 * sorts requests by length and batches them; the results do not depend on batching). Inputs of a batch are
 * right-padded to the longest with token 0: under causal attention the padding only follows a request's
 * own positions, so it cannot change them. Results come back in request order.
 */
export async function loglikelihoodMany(
  model: EvalModel,
  requests: readonly LoglikelihoodRequest[],
  opts: { maxLength?: number; signal?: AbortSignal; onProgress?(done: number, total: number): void } = {},
): Promise<LoglikelihoodResult[]> {
  const maxLength = opts.maxLength ?? maxLengthFor(model);
  if (requests.some((r) => r.continuation.length > maxLength)) {
    // Continuations longer than the model's context (only with short-context tiny models): score them in
    // chunks of ≤ maxLength tokens, each chunk's context being everything before it, and sum.
    const parts = requests.map((r) => splitLongRequest(r, maxLength));
    const flat = await loglikelihoodMany(model, parts.flat(), { ...opts, maxLength, onProgress: undefined });
    let at = 0;
    const merged = parts.map((p) => {
      const chunk = flat.slice(at, (at += p.length));
      return { ll: chunk.reduce((s, c) => s + c.ll, 0), greedy: chunk.every((c) => c.greedy), tokens: chunk.reduce((s, c) => s + c.tokens, 0) };
    });
    opts.onProgress?.(requests.length, requests.length);
    return merged;
  }
  const results: LoglikelihoodResult[] = new Array(requests.length);
  if (typeof model.forward !== 'function') {
    for (let i = 0; i < requests.length; i++) {
      if (opts.signal?.aborted) throw new Error('cancelled');
      results[i] = await loglikelihoodTokens(model, requests[i].context, requests[i].continuation, maxLength);
      opts.onProgress?.(i + 1, requests.length);
    }
    return results;
  }
  const inputs = requests.map((r) => {
    if (r.context.length === 0) throw new Error('loglikelihood: empty context (the harness uses [eos] for an empty string)');
    return harnessInput(r.context, r.continuation, maxLength);
  });
  const order = inputs.map((_, i) => i).sort((a, b) => inputs[b].length - inputs[a].length || a - b);
  const V = model.config.vocabSize;
  const R = model.config.realVocabSize;
  let done = 0;
  for (let start = 0; start < order.length; ) {
    if (opts.signal?.aborted) throw new Error('cancelled');
    const seq = inputs[order[start]].length; // longest of this batch (sorted descending)
    const batch = Math.max(1, Math.min(order.length - start, MAX_BATCH, Math.floor(LOGIT_BUDGET / (seq * V))));
    const ids = order.slice(start, start + batch);
    const tokens = new Int32Array(batch * seq);
    ids.forEach((id, b) => tokens.set(inputs[id], b * seq));
    const { logits } = await model.forward(tokens, { batch, seq, logits: true });
    if (!logits || logits.length !== batch * seq * V) throw new Error(`forward returned ${logits?.length ?? 0} logits, expected ${batch}×${seq}×${V}`);
    ids.forEach((id, b) => {
      const cont = requests[id].continuation;
      const n = inputs[id].length;
      let ll = 0;
      let greedy = true;
      for (let j = 0; j < cont.length; j++) {
        const target = cont[j];
        if (target < 0 || target >= R) throw new Error(`continuation token ${target} is outside the real vocabulary [0, ${R})`);
        const base = (b * seq + n - cont.length + j) * V;
        let max = -Infinity;
        let arg = 0;
        for (let i = 0; i < R; i++) {
          if (logits[base + i] > max) {
            max = logits[base + i];
            arg = i;
          }
        }
        let sum = 0;
        for (let i = 0; i < R; i++) sum += Math.exp(logits[base + i] - max);
        ll += logits[base + target] - max - Math.log(sum);
        if (arg !== target) greedy = false;
      }
      results[id] = { ll, greedy, tokens: cont.length };
    });
    start += batch;
    done += batch;
    opts.onProgress?.(done, requests.length);
  }
  return results;
}

/** Splits a continuation longer than maxLength into chunks; identical to the request when it fits. */
export function splitLongRequest(r: LoglikelihoodRequest, maxLength: number): LoglikelihoodRequest[] {
  if (r.continuation.length <= maxLength) return [r];
  const out: LoglikelihoodRequest[] = [];
  for (let start = 0; start < r.continuation.length; start += maxLength) {
    out.push({ context: [...r.context, ...r.continuation.slice(0, start)], continuation: r.continuation.slice(start, start + maxLength) });
  }
  return out;
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

/** Σ log p of every token of `tokens` under rolling windows (the harness's loglikelihood_rolling), one window at a time. */
export async function rollingLoglikelihood(
  model: EvalModel,
  tokens: readonly number[],
  eosId: number,
  maxSeqLen = maxLengthFor(model),
): Promise<number> {
  let total = 0;
  for (const w of rollingWindows(tokens, eosId, maxSeqLen)) {
    total += (await loglikelihoodTokens(model, w.context, w.continuation, maxSeqLen)).ll;
  }
  return total;
}
