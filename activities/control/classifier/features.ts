/**
 * Hashed bag-of-n-grams features for the trained topic classifier: lower-cased words (our word
 * tokenizer), word unigrams and bigrams, and character 3-grams inside words, hashed (FNV-1a) into a
 * fixed number of buckets with log(1 + count) weights and unit L2 norm.
 */
import { wordTokenize } from './words';

export interface FeatureConfig {
  buckets: number;
  wordNgrams: number;
  charNgrams: number;
}

export const FEATURE_DEFAULTS: FeatureConfig = { buckets: 1 << 16, wordNgrams: 2, charNgrams: 3 };

export interface SparseVector {
  index: Int32Array;
  value: Float32Array;
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

export function hashedFeatures(text: string, config: FeatureConfig): SparseVector {
  const words = wordTokenize(text.replace(/<\|endoftext\|>/g, ' '))
    .map((w) => w.toLowerCase())
    .filter((w) => /[\p{L}\p{N}#@]/u.test(w));
  const counts = new Map<number, number>();
  const add = (key: string) => {
    const b = fnv1a(key) % config.buckets;
    counts.set(b, (counts.get(b) ?? 0) + 1);
  };
  for (let n = 1; n <= config.wordNgrams; n++) {
    for (let i = 0; i + n <= words.length; i++) add(`w${n}:${words.slice(i, i + n).join(' ')}`);
  }
  if (config.charNgrams > 0) {
    for (const w of words) {
      const padded = `<${w}>`;
      for (let i = 0; i + config.charNgrams <= padded.length; i++) add(`c:${padded.slice(i, i + config.charNgrams)}`);
    }
  }
  const index = Int32Array.from([...counts.keys()].sort((a, b) => a - b));
  const value = new Float32Array(index.length);
  let norm = 0;
  index.forEach((b, i) => {
    value[i] = Math.log1p(counts.get(b)!);
    norm += value[i] * value[i];
  });
  if (norm > 0) {
    const inv = 1 / Math.sqrt(norm);
    for (let i = 0; i < value.length; i++) value[i] *= inv;
  }
  return { index, value };
}
