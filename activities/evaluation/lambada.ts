/**
 * LAMBADA, OpenAI version (PAPER.md §6.1): 5,153 test passages, one JSON object `{"text": ...}` per line.
 * Harness split: context = text.rsplit(" ", 1)[0], continuation = " " + text.rsplit(" ", 1)[1] (the last
 * word with its leading space; it may be several BPE tokens). Per passage (ll, greedy) = LL(context,
 * continuation). PPL = exp(−mean ll) is per word, not per token; ACC = mean(greedy).
 */
import { loglikelihoodMany, maxLengthFor } from './harness';
import { checkAborted, type EvalModel, type EvalTokenizer, type RunHooks } from './types';

export interface LambadaDoc {
  context: string;
  continuation: string;
}

/** Python's `text.rsplit(" ", 1)`: split at the last space; a text without a space is an error. */
export function splitLambada(text: string): LambadaDoc {
  const at = text.lastIndexOf(' ');
  if (at < 0) throw new Error(`LAMBADA passage has no space to split the last word off: ${JSON.stringify(text.slice(0, 60))}`);
  return { context: text.slice(0, at), continuation: ' ' + text.slice(at + 1) };
}

/** Parses the JSON-lines file; `where` names the file in errors. */
export function parseLambada(body: string, where = 'lambada'): LambadaDoc[] {
  const docs: LambadaDoc[] = [];
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      throw new Error(`${where}:${i + 1}: not JSON (${(err as Error).message})`);
    }
    const text = (record as { text?: unknown }).text;
    if (typeof text !== 'string') throw new Error(`${where}:${i + 1}: missing string field "text"`);
    docs.push(splitLambada(text));
  }
  return docs;
}

export interface LambadaResult {
  task: 'lambada';
  ppl: number;
  acc: number;
  n: number;
  /** Mean number of BPE tokens of the target word. */
  meanTargetTokens: number;
  /** Tokens scored (for throughput). */
  tokens: number;
}

export async function evaluateLambada(
  model: EvalModel,
  tokenizer: EvalTokenizer,
  docs: readonly LambadaDoc[],
  hooks?: RunHooks,
): Promise<LambadaResult> {
  if (docs.length === 0) throw new Error('LAMBADA: no passages to evaluate');
  let targetTokens = 0;
  let inputTokens = 0;
  const maxLength = maxLengthFor(model);
  const requests = docs.map(({ context, continuation }) => {
    const ctx = context === '' ? [tokenizer.eosId] : tokenizer.encode(context);
    const cont = tokenizer.encode(continuation);
    targetTokens += cont.length;
    inputTokens += Math.min(ctx.length + cont.length - 1, maxLength);
    return { context: ctx, continuation: cont };
  });
  checkAborted(hooks);
  const results = await loglikelihoodMany(model, requests, { maxLength, signal: hooks?.signal, onProgress: hooks?.onProgress });
  const sumLl = results.reduce((s, r) => s + r.ll, 0);
  const hits = results.filter((r) => r.greedy).length;
  return {
    task: 'lambada',
    ppl: Math.exp(-sumLl / docs.length),
    acc: hits / docs.length,
    n: docs.length,
    meanTargetTokens: targetTokens / docs.length,
    tokens: inputTokens,
  };
}
