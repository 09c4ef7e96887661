/**
 * Held-out perplexity over a token stream (PAPER.md §5, §6.1 "OWT validation perplexity"): the stream is cut
 * into non-overlapping windows, input = t[L·w : L·w + L], target = t[L·w + 1 : L·w + L + 1], the tail that
 * does not fill a window is dropped and windows cross document boundaries (no reset at EOS).
 * PPL = exp(mean NLL over all predicted tokens). Unlike the harness tasks, the softmax runs over ALL padded
 * vocabulary rows (the training objective): with the native engine this is its `forward` loss; a model
 * without `forward` is scored with `logProbs`, which is the same only when it has no padding rows.
 */
import { checkAborted, type EvalModel, type RunHooks } from './types';

export interface WindowPerplexityResult {
  task: 'owt_val';
  ppl: number;
  /** Mean NLL per token (nats). */
  loss: number;
  /** Windows scored. */
  n: number;
  tokens: number;
  /** Whether the softmax covered every padded row (native forward) or only the real vocabulary. */
  softmaxRows: 'all' | 'real';
}

export function countWindows(streamLength: number, windowLength: number): number {
  return streamLength <= 1 ? 0 : Math.floor((streamLength - 1) / windowLength);
}

export async function evaluateWindowPerplexity(
  model: EvalModel,
  stream: ArrayLike<number>,
  opts: { windowLength?: number; batch?: number; limit?: number } = {},
  hooks?: RunHooks,
): Promise<WindowPerplexityResult> {
  const L = opts.windowLength ?? Math.min(512, model.config.nPositions);
  if (L > model.config.nPositions) throw new Error(`window length ${L} exceeds the model's ${model.config.nPositions} positions`);
  let windows = countWindows(stream.length, L);
  if (opts.limit !== undefined) windows = Math.min(windows, opts.limit);
  if (windows === 0) throw new Error(`token stream of ${stream.length} tokens holds no ${L}-token window`);
  const batch = Math.max(1, opts.batch ?? 8);
  let sumNll = 0;
  const useForward = typeof model.forward === 'function';
  for (let w0 = 0; w0 < windows; w0 += batch) {
    checkAborted(hooks);
    const b = Math.min(batch, windows - w0);
    const inputs = new Int32Array(b * L);
    const targets = new Int32Array(b * L);
    for (let i = 0; i < b; i++) {
      const start = (w0 + i) * L;
      for (let j = 0; j < L; j++) {
        inputs[i * L + j] = stream[start + j];
        targets[i * L + j] = stream[start + j + 1];
      }
    }
    if (useForward) {
      const out = await model.forward!(inputs, { batch: b, seq: L, logits: false, targets });
      if (out.perTokenLoss) {
        for (let i = 0; i < out.perTokenLoss.length; i++) sumNll += out.perTokenLoss[i];
      } else if (out.loss !== undefined) {
        sumNll += out.loss * b * L; // the loss is a mean over the b·L targets
      } else {
        throw new Error('model.forward returned neither loss nor perTokenLoss');
      }
    } else {
      const V = model.config.realVocabSize;
      for (let i = 0; i < b; i++) {
        const rows = await model.logProbs(inputs.subarray(i * L, (i + 1) * L));
        for (let j = 0; j < L; j++) sumNll -= rows[j * V + targets[i * L + j]];
      }
    }
    hooks?.onProgress?.(w0 + b, windows);
  }
  const tokens = windows * L;
  return { task: 'owt_val', ppl: Math.exp(sumNll / tokens), loss: sumNll / tokens, n: windows, tokens, softmaxRows: useForward ? 'all' : 'real' };
}
