/**
 * Byte-level BPE trainer (GPT-2 style): pre-tokenise with GPT-2's rules, count distinct pieces, then
 * repeatedly merge the most frequent adjacent pair. Pair counts are updated incrementally — only the
 * words containing the merged pair are touched — and the best pair comes from a max-heap with lazy
 * invalidation, so training cost grows with the number of distinct words, not the corpus size.
 *
 * Ties are broken by the smaller (left id, right id), so training is deterministic. Ids: 0..255 are
 * the bytes in byte order, merge r creates id 256 + r, `<|endoftext|>` is the last id.
 */
import { BytePairEncoder, type BpeModel } from './bpe';
import { pieceEnd } from './pretokenize';
import { EOS_TEXT } from './types';

export interface TrainOptions {
  /** Total vocabulary including the 256 byte tokens and `<|endoftext|>`. */
  vocabSize: number;
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
  /** Called now and then with merges done so far. */
  onProgress?: (mergesDone: number, mergesWanted: number) => void;
  signal?: AbortSignal;
}

export interface TrainResult {
  model: BpeModel;
  /** Distinct pre-tokens and their total count, for the summary. */
  distinctPieces: number;
  totalPieces: number;
  /** Merges learned (fewer than asked when pairs ran out). */
  merges: number;
}

/** Counts pre-tokens across documents; literal `<|endoftext|>` strings are skipped. */
export class PieceCounter {
  readonly counts = new Map<string, number>();
  total = 0;

  add(text: string): void {
    let from = 0;
    for (;;) {
      const at = text.indexOf(EOS_TEXT, from);
      const end = at < 0 ? text.length : at;
      const segment = from === 0 && end === text.length ? text : text.slice(from, end);
      for (let i = 0; i < segment.length; ) {
        const e = pieceEnd(segment, i);
        const piece = segment.slice(i, e);
        this.counts.set(piece, (this.counts.get(piece) ?? 0) + 1);
        this.total++;
        i = e;
      }
      if (at < 0) break;
      from = at + EOS_TEXT.length;
    }
  }
}

const MAX_VOCAB = 2 ** 20;

/** Max-heap of [count, key] with ties on the smaller key first. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i];
    const cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]; this.counts[i] = this.counts[j]; this.counts[j] = c;
    const k = this.keys[i]; this.keys[i] = this.keys[j]; this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let c = this.counts.length - 1;
    while (c > 0) {
      const p = (c - 1) >> 1;
      if (!this.above(c, p)) break;
      this.swap(c, p);
      c = p;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastC = this.counts.pop()!;
    const lastK = this.keys.pop()!;
    if (this.counts.length > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let c = 0;
      for (;;) {
        const l = 2 * c + 1;
        if (l >= this.counts.length) break;
        const r = l + 1;
        const m = r < this.counts.length && this.above(r, l) ? r : l;
        if (!this.above(m, c)) break;
        this.swap(m, c);
        c = m;
      }
    }
    return top;
  }
}

export function trainBpe(pieces: PieceCounter, options: TrainOptions): TrainResult {
  const { vocabSize } = options;
  const minFrequency = options.minFrequency ?? 2;
  if (!Number.isInteger(vocabSize) || vocabSize < 257 || vocabSize >= MAX_VOCAB) {
    throw new Error(`vocabSize must be an integer in 257..${MAX_VOCAB - 1}, got ${vocabSize}`);
  }
  // Pair keys a·shift + b stay small integers (V8 Smis, fast Map keys) for vocabularies ≤ 32,768.
  const PAIR_SHIFT = vocabSize <= 32768 ? 32768 : MAX_VOCAB;
  const pairKey = (a: number, b: number) => a * PAIR_SHIFT + b;
  const wanted = vocabSize - 257;
  const tokens: Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
  const merges: number[] = [];

  // Words as arrays of ids, with their counts.
  const enc = new TextEncoder();
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [piece, count] of pieces.counts) {
    const bytes = enc.encode(piece);
    if (bytes.length < 2) continue;
    words.push(Array.from(bytes));
    freq.push(count);
  }

  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const addPair = (key: number, w: number, delta: number) => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + delta);
    if (delta > 0) {
      let s = where.get(key);
      if (!s) where.set(key, (s = new Set()));
      s.add(w);
    }
  };
  for (let w = 0; w < words.length; w++) {
    const word = words[w];
    for (let k = 0; k + 1 < word.length; k++) addPair(pairKey(word[k], word[k + 1]), w, freq[w]);
  }
  const heap = new PairHeap();
  for (const [key, count] of pairCount) heap.push(count, key);

  while (merges.length / 3 < wanted && heap.size > 0) {
    if (options.signal?.aborted) throw new Error('training cancelled');
    const [count, key] = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (current !== count) {
      if (current > 0) heap.push(current, key);
      continue;
    }
    if (count < minFrequency) break;
    const a = Math.floor(key / PAIR_SHIFT);
    const b = key - a * PAIR_SHIFT;
    const id = tokens.length;
    const joined = new Uint8Array(tokens[a].length + tokens[b].length);
    joined.set(tokens[a]);
    joined.set(tokens[b], tokens[a].length);
    tokens.push(joined);
    merges.push(a, b, id);

    const touched = new Set<number>();
    for (const w of where.get(key) ?? []) {
      const word = words[w];
      const f = freq[w];
      let changed = false;
      const out: number[] = [];
      for (let k = 0; k < word.length; k++) {
        if (k + 1 < word.length && word[k] === a && word[k + 1] === b) {
          out.push(id);
          k++;
          changed = true;
        } else {
          out.push(word[k]);
        }
      }
      if (!changed) continue;
      // Remove the old word's pairs, add the new word's pairs.
      for (let k = 0; k + 1 < word.length; k++) {
        const pk = pairKey(word[k], word[k + 1]);
        addPair(pk, w, -f);
        touched.add(pk);
      }
      for (let k = 0; k + 1 < out.length; k++) {
        const pk = pairKey(out[k], out[k + 1]);
        addPair(pk, w, f);
        touched.add(pk);
      }
      words[w] = out;
    }
    where.delete(key);
    pairCount.delete(key);
    for (const pk of touched) {
      const c = pairCount.get(pk) ?? 0;
      if (c > 0) heap.push(c, pk);
      else {
        pairCount.delete(pk);
        where.delete(pk);
      }
    }
    const done = merges.length / 3;
    if (options.onProgress && done % 256 === 0) options.onProgress(done, wanted);
  }
  const mergeCount = merges.length / 3;
  return {
    model: { tokens, merges: Uint32Array.from(merges), eosId: tokens.length },
    distinctPieces: pieces.counts.size,
    totalPieces: pieces.total,
    merges: mergeCount,
  };
}

/** Convenience: train from an iterable of documents and return a ready tokenizer. */
export function trainTokenizer(name: string, documents: Iterable<string>, options: TrainOptions): { tokenizer: BytePairEncoder; result: TrainResult } {
  const counter = new PieceCounter();
  for (const doc of documents) counter.add(doc);
  const result = trainBpe(counter, options);
  return { tokenizer: new BytePairEncoder(name, result.model), result };
}
