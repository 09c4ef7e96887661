/**
 * Word → vector (PAPER.md §6.2). ids = encode(" " + word): a leading space, no lower-casing, no filtering.
 * Multi-subword words are averaged over their subwords ("mean", the paper's rule for every model but GPT-J)
 * or represented by the first subword ("first", GPT-J's rule).
 * - "embedding": rows of the output matrix (tied E, i.e. lm_head.weight);
 * - "senses": the Backpack sense network run on each subword id alone (no context, no α) → k×d per subword.
 */
import type { LanguageModel } from '../../../native/types';
import type { EvalTokenizer } from '../types';
import type { WordVector } from './similarity';

export type VectorKind = 'senses' | 'embedding';
export type SubwordRule = 'mean' | 'first';

export interface WordTokens {
  word: string;
  ids: number[];
  /** An empty encoding, the tokenizer's unknown piece, or ids the model cannot look up (≥ its real vocabulary). */
  unknown: boolean;
}

export function wordTokens(tokenizer: EvalTokenizer, word: string, realVocabSize: number): WordTokens {
  const ids = tokenizer.encode(' ' + word);
  const unknown = ids.length === 0 || ids.some((id) => id < 0 || id >= realVocabSize || id === tokenizer.unkId);
  return { word, ids, unknown };
}

/** Builds vectors for many words at once (one senseVectors call for all distinct subword ids). */
export async function wordVectors(
  model: LanguageModel,
  words: readonly WordTokens[],
  kind: VectorKind,
  rule: SubwordRule,
): Promise<Map<string, WordVector>> {
  const d = model.config.nEmbd;
  const distinct = new Set<number>();
  for (const w of words) if (!w.unknown) for (const id of rule === 'first' ? w.ids.slice(0, 1) : w.ids) distinct.add(id);
  const idList = [...distinct];
  const index = new Map(idList.map((id, i) => [id, i]));
  let rows: number;
  let table: Float32Array;
  if (kind === 'embedding') {
    rows = 1;
    const E = model.outputEmbeddings();
    if (E.length !== model.config.vocabSize * d) throw new Error(`outputEmbeddings has ${E.length} values, expected ${model.config.vocabSize}×${d}`);
    table = new Float32Array(idList.length * d);
    idList.forEach((id, i) => table.set(E.subarray(id * d, (id + 1) * d), i * d));
  } else {
    if (typeof model.senseVectors !== 'function' || !model.config.numSenses) {
      throw new Error(`--vectors senses needs a Backpack model; this checkpoint is "${model.config.arch}"`);
    }
    rows = model.config.numSenses;
    table = idList.length ? await model.senseVectors(Int32Array.from(idList)) : new Float32Array(0);
    if (table.length !== idList.length * rows * d) throw new Error(`senseVectors returned ${table.length} values, expected ${idList.length}×${rows}×${d}`);
  }
  const size = rows * d;
  const out = new Map<string, WordVector>();
  for (const w of words) {
    if (w.unknown || out.has(w.word)) continue;
    const use = rule === 'first' ? w.ids.slice(0, 1) : w.ids;
    const v = new Float64Array(size);
    for (const id of use) {
      const off = index.get(id)! * size;
      for (let i = 0; i < size; i++) v[i] += table[off + i];
    }
    const data = new Float32Array(size);
    for (let i = 0; i < size; i++) data[i] = v[i] / use.length;
    out.set(w.word, { data, rows, dim: d });
  }
  return out;
}
