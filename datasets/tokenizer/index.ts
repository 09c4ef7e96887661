/**
 * Tokenizers: `loadTokenizer('gpt2')` is the exact GPT-2 BPE; `loadTokenizer(dir)` loads a trained
 * byte-level BPE artifact (a directory with tokenizer.json).
 */
import * as fs from 'node:fs';
import { createGpt2Tokenizer } from './gpt2';
import { loadTokenizerArtifact, TOKENIZER_FILE } from './tokenizer-json';
import type { Tokenizer } from './types';

export type { Tokenizer } from './types';
export { EOS_TEXT } from './types';
export { BytePairEncoder, type BpeModel } from './bpe';
export { GPT2_EOS_ID, GPT2_VOCAB_SIZE, createGpt2Tokenizer, loadGpt2Model, renderVocabBpe } from './gpt2';
export { pretokenize } from './pretokenize';
export { renderTokenizerJson, parseTokenizerJson, loadTokenizerArtifact, writeTokenizerArtifact, TOKENIZER_FILE, TOKENIZER_META_FILE } from './tokenizer-json';
export { trainBpe, trainTokenizer, PieceCounter, type TrainOptions, type TrainResult } from './train';
export { RobertaTokenizer, loadRobertaTokenizer, parseVocabMerges, ROBERTA_SPECIALS } from './roberta';

let gpt2: Tokenizer | null = null;

/** Synchronous form of loadTokenizer (the work is local file reads). */
export function loadTokenizerSync(spec: string): Tokenizer {
  if (spec === 'gpt2') return (gpt2 ??= createGpt2Tokenizer());
  if (!fs.existsSync(spec) || !fs.statSync(spec).isDirectory()) {
    throw new Error(`tokenizer "${spec}": expected "gpt2" or a tokenizer artifact directory containing ${TOKENIZER_FILE}`);
  }
  return loadTokenizerArtifact(spec);
}

export async function loadTokenizer(spec: string): Promise<Tokenizer> {
  return loadTokenizerSync(spec);
}
