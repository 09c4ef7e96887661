/**
 * Per-sample and per-run scores of topic-controlled text (PAPER.md §6.3 "Scoring"): semantic success
 * (P(correct label) > 0.5), above_30, Toks-in-vocab, mean NLL under a scoring model, repetition
 * (mean NLL < 1) and distinct word types. Every string is scored including its `<|endoftext|>` prefix.
 */
import type { TopicClassifier } from './classifier';
import { labelIndex } from './classifier';
import { wordTokenize } from './words';

/** Mean next-token NLL of one text under a scoring model (undefined: not scored). */
export type NllScorer = (text: string) => Promise<number>;

export interface SampleScore {
  index: number;
  probability: number;
  success: boolean;
  above30: boolean;
  words: number;
  bagWords: number;
  nll: number | null;
}

export interface RunScore {
  samples: number;
  semanticSuccess: number;
  above30: number;
  toksInVocab: number;
  meanNll: number | null;
  repetition: number | null;
  distinctWords: number;
  classifier: string;
}

export async function scoreSamples(
  texts: string[],
  label: string,
  bag: string[],
  classifier: TopicClassifier,
  nll?: NllScorer,
): Promise<{ samples: SampleScore[]; run: RunScore }> {
  if (texts.length === 0) throw new Error('scoreSamples: no texts');
  const li = labelIndex(classifier, label);
  const probs = await classifier.predict(texts);
  const L = classifier.labels.length;
  const bagSet = new Set(bag);
  const types = new Set<string>();
  let totalWords = 0;
  let totalBag = 0;
  const samples: SampleScore[] = [];
  for (let i = 0; i < texts.length; i++) {
    const words = wordTokenize(texts[i]);
    let inBag = 0;
    for (const w of words) {
      types.add(w);
      if (bagSet.has(w)) inBag++;
    }
    totalWords += words.length;
    totalBag += inBag;
    const p = probs[i * L + li];
    samples.push({
      index: i,
      probability: p,
      success: p > 0.5,
      above30: p > 0.3,
      words: words.length,
      bagWords: inBag,
      nll: nll ? await nll(texts[i]) : null,
    });
  }
  const mean = (f: (s: SampleScore) => number) => samples.reduce((s, x) => s + f(x), 0) / samples.length;
  const nlls = samples.map((s) => s.nll).filter((x): x is number => x !== null);
  return {
    samples,
    run: {
      samples: samples.length,
      semanticSuccess: mean((s) => (s.success ? 1 : 0)),
      above30: mean((s) => (s.above30 ? 1 : 0)),
      toksInVocab: totalWords ? totalBag / totalWords : 0,
      meanNll: nlls.length ? nlls.reduce((a, b) => a + b, 0) / nlls.length : null,
      repetition: nlls.length ? nlls.filter((x) => x < 1).length / nlls.length : null,
      distinctWords: types.size,
      classifier: classifier.id,
    },
  };
}

/** Mean NLL of tokens[1..] given their prefixes, from per-position log-probabilities [n][vocab]. */
export function meanNllFromLogProbs(tokens: ArrayLike<number>, logProbs: Float32Array, vocab: number): number {
  const n = tokens.length;
  if (n < 2) throw new Error('mean NLL needs at least two tokens');
  let s = 0;
  for (let i = 1; i < n; i++) {
    const t = tokens[i];
    if (t >= vocab) throw new Error(`token ${t} at position ${i} is outside the scorer's vocabulary (${vocab})`);
    s -= logProbs[(i - 1) * vocab + t];
  }
  return s / (n - 1);
}
