/**
 * Texts for MAUVE: featurization with a language model (final hidden state at the last token, as
 * mauve-text does with gpt2-large), the reference sets, and the equalisation of |P| and |Q|.
 */
import { throwIfAborted } from '../../../pipelines/activity';
import type { ControlModel } from '../model';
import { PythonRandom } from '../util/rng';
import type { FeatureMatrix } from './mauve';

export interface FeaturizerTokenizer {
  encode(text: string): number[];
}

/** Features = hidden state at the last token of encode(text)[:maxTextLength] (clipped to the context). */
export async function featurizeTexts(
  model: ControlModel,
  tokenizer: FeaturizerTokenizer,
  texts: string[],
  maxTextLength: number,
  opts: { signal?: AbortSignal; onProgress?: (fraction: number) => void } = {},
): Promise<FeatureMatrix> {
  const d = model.config.nEmbd;
  const limit = Math.min(maxTextLength, model.config.nPositions);
  const data = new Float64Array(texts.length * d);
  for (let i = 0; i < texts.length; i++) {
    if (opts.signal) throwIfAborted(opts.signal);
    const tokens = tokenizer.encode(texts[i]).slice(0, limit);
    if (tokens.length === 0) throw new Error(`featurize: text ${i} encodes to no tokens`);
    const out = await model.forward(Int32Array.from(tokens), { batch: 1, seq: tokens.length, hidden: true });
    if (!out.hidden) throw new Error('featurize: the model returned no hidden states');
    const last = (tokens.length - 1) * d;
    for (let t = 0; t < d; t++) data[i * d + t] = out.hidden[last + t];
    if (i % 64 === 0) opts.onProgress?.(i / texts.length);
  }
  return { rows: texts.length, dim: d, data };
}

/** Reads the authors' val-100len.json (a JSON list of strings). */
export function parseReferenceList(json: string, source: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (e) {
    throw new Error(`${source}: invalid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(parsed) || parsed.some((s) => typeof s !== 'string')) throw new Error(`${source}: expected a JSON list of strings`);
  return parsed as string[];
}

/**
 * References from a token stream in which every document ends with EOS: for each document (in
 * order) decode(EOS + its first prefixTokens − 1 tokens), like the OWT validation prefixes of §6.5.
 */
export function referencesFromStream(
  stream: ArrayLike<number>,
  eosId: number,
  decode: (ids: number[]) => string,
  opts: { prefixTokens: number; max?: number },
): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < stream.length && (opts.max === undefined || out.length < opts.max); i++) {
    if (stream[i] !== eosId) continue;
    if (i > start) {
      const ids = [eosId];
      for (let j = start; j < i && ids.length < opts.prefixTokens; j++) ids.push(stream[j]);
      out.push(decode(ids));
    }
    start = i + 1;
  }
  return out;
}

/**
 * Equalise |P| and |Q| as the authors' script does: shuffle the larger list with Python's
 * random.seed(0); random.shuffle and keep the first min(|P|, |Q|) ('python-mt'), or keep both ('none').
 */
export function equalise<T>(p: T[], q: T[], mode: 'python-mt' | 'none', seed = 0): { p: T[]; q: T[] } {
  if (mode === 'none' || p.length === q.length) return { p, q };
  if (p.length > q.length) return { p: new PythonRandom(seed).shuffle(p.slice()).slice(0, q.length), q };
  return { p, q: new PythonRandom(seed).shuffle(q.slice()).slice(0, p.length) };
}
