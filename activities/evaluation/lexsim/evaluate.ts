/**
 * One lexical-similarity run: a dataset, a vector kind, a subword rule and one or more similarity methods →
 * Spearman's ρ between gold scores and predicted similarities. Pairs with a word the model cannot look up
 * are left out and counted (`oov`); multi-subword words are counted too, never hidden.
 */
import type { LanguageModel } from '../../../native/types';
import type { EvalTokenizer } from '../types';
import type { WordPair } from './datasets';
import { parseMethod, similarity, type SimilarityMethod } from './similarity';
import { spearman } from './spearman';
import { wordTokens, wordVectors, type SubwordRule, type VectorKind } from './vectors';

export interface LexsimScore {
  method: SimilarityMethod;
  spearman: number;
}

export interface LexsimResult {
  task: 'lexsim';
  vectors: VectorKind;
  subwords: SubwordRule;
  scores: LexsimScore[];
  /** Pairs scored. */
  n: number;
  /** Pairs in the dataset. */
  pairs: number;
  /** Pairs left out because a word has unknown ids. */
  oov: number;
  /** Distinct words, and how many of them split into several subwords. */
  words: number;
  multiSubwordWords: number;
  /** Pairs with at least one multi-subword word. */
  multiSubwordPairs: number;
}

/** Method names to run for a vector kind when none are given. */
export function defaultMethods(kind: VectorKind, numSenses: number): SimilarityMethod[] {
  if (kind === 'embedding') return ['cos'];
  const perSense = Array.from({ length: numSenses }, (_, l) => `cossense${l}` as SimilarityMethod);
  return ['cos', 'minpair', 'maxpair', 'minall', 'maxall', ...perSense];
}

export async function evaluateLexsim(
  model: LanguageModel,
  tokenizer: EvalTokenizer,
  pairs: readonly WordPair[],
  opts: { vectors: VectorKind; subwords: SubwordRule; methods?: string[] },
): Promise<LexsimResult> {
  if (pairs.length === 0) throw new Error('lexsim: the dataset has no pairs');
  const methods = (opts.methods?.length ? opts.methods.map(parseMethod) : defaultMethods(opts.vectors, model.config.numSenses ?? 1));
  if (opts.vectors === 'embedding') {
    const bad = methods.find((m) => m !== 'cos');
    if (bad) throw new Error(`method "${bad}" needs sense vectors; embedding rows support only "cos"`);
  }
  const vocab = model.config.realVocabSize;
  const tokens = new Map<string, ReturnType<typeof wordTokens>>();
  for (const p of pairs) for (const w of [p.word1, p.word2]) if (!tokens.has(w)) tokens.set(w, wordTokens(tokenizer, w, vocab));
  const vectors = await wordVectors(model, [...tokens.values()], opts.vectors, opts.subwords);
  const gold: number[] = [];
  const predicted: number[][] = methods.map(() => []);
  let oov = 0;
  let multiSubwordPairs = 0;
  for (const p of pairs) {
    const a = tokens.get(p.word1)!;
    const b = tokens.get(p.word2)!;
    if (a.ids.length > 1 || b.ids.length > 1) multiSubwordPairs++;
    if (a.unknown || b.unknown) {
      oov++;
      continue;
    }
    gold.push(p.gold);
    const u = vectors.get(p.word1)!;
    const v = vectors.get(p.word2)!;
    methods.forEach((m, i) => predicted[i].push(similarity(m, u, v)));
  }
  const multiSubwordWords = [...tokens.values()].filter((t) => t.ids.length > 1).length;
  return {
    task: 'lexsim',
    vectors: opts.vectors,
    subwords: opts.subwords,
    scores: methods.map((method, i) => ({ method, spearman: spearman(gold, predicted[i]) })),
    n: gold.length,
    pairs: pairs.length,
    oov,
    words: tokens.size,
    multiSubwordWords,
    multiSubwordPairs,
  };
}
