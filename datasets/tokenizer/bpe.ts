/**
 * Byte-level BPE: the shared engine behind the exact GPT-2 tokenizer and trained tokenizers.
 *
 * Model = token byte strings (id → bytes) + an ordered merge list (left id, right id → merged id; the
 * list position is the merge's rank). Encoding a pre-token starts from its UTF-8 bytes and repeatedly
 * applies the lowest-ranked merge among adjacent pairs, exactly as GPT-2's encoder does.
 *
 * Speed: pre-tokens repeat heavily in natural text, so each distinct piece is encoded once and cached;
 * merge lookups use an open-addressing table on typed arrays (no per-lookup allocation).
 */
import { pieceEnd } from './pretokenize';
import { EOS_TEXT, type Tokenizer } from './types';

export interface BpeModel {
  /** Bytes of each ordinary token, by id. */
  tokens: Uint8Array[];
  /** Merges in rank order: merges[3r], merges[3r+1] → merges[3r+2]. */
  merges: Uint32Array;
  /** Id of `<|endoftext|>` (appended after the ordinary tokens). */
  eosId: number;
}

const EMPTY = -1;
const CACHE_LIMIT = 250_000;

/** Open-addressing hash map (left, right) → rank. */
class PairTable {
  private readonly mask: number;
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly rank: Int32Array;

  constructor(merges: Uint32Array) {
    const count = merges.length / 3;
    let cap = 1;
    while (cap < count * 2 + 2) cap <<= 1;
    this.mask = cap - 1;
    this.left = new Int32Array(cap).fill(EMPTY);
    this.right = new Int32Array(cap);
    this.rank = new Int32Array(cap);
    for (let r = 0; r < count; r++) {
      const a = merges[3 * r];
      const b = merges[3 * r + 1];
      let h = this.hash(a, b);
      while (this.left[h] !== EMPTY) {
        if (this.left[h] === a && this.right[h] === b) throw new Error(`merge list: pair (${a}, ${b}) appears twice`);
        h = (h + 1) & this.mask;
      }
      this.left[h] = a;
      this.right[h] = b;
      this.rank[h] = r;
    }
  }

  private hash(a: number, b: number): number {
    return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca6b)) >>> 15 & this.mask;
  }

  /** Rank of merging (a, b), or -1. */
  get(a: number, b: number): number {
    let h = this.hash(a, b);
    for (;;) {
      const l = this.left[h];
      if (l === EMPTY) return -1;
      if (l === a && this.right[h] === b) return this.rank[h];
      h = (h + 1) & this.mask;
    }
  }
}

/**
 * Cache of pre-token → ids keyed by the characters of the text itself: a lookup hashes and compares
 * the region in place, so the common case (a piece seen before) allocates nothing.
 */
class PieceCache {
  private keys: (string | undefined)[];
  private hashes: Int32Array;
  private values: (number | number[])[];
  private mask: number;
  private count = 0;

  constructor(private readonly limit: number, capacity = 1 << 14) {
    this.keys = new Array(capacity);
    this.hashes = new Int32Array(capacity);
    this.values = new Array(capacity);
    this.mask = capacity - 1;
  }

  get(text: string, start: number, end: number, h: number): number | number[] | undefined {
    const len = end - start;
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const key = this.keys[slot];
      if (key === undefined) return undefined;
      if (this.hashes[slot] === h && key.length === len) {
        let k = 0;
        while (k < len && key.charCodeAt(k) === text.charCodeAt(start + k)) k++;
        if (k === len) return this.values[slot];
      }
    }
  }

  set(piece: string, h: number, value: number | number[]): void {
    if (this.count >= this.limit) this.reset(this.keys.length);
    else if ((this.count + 1) * 2 > this.keys.length) this.grow();
    this.insert(piece, h, value);
  }

  private insert(piece: string, h: number, value: number | number[]): void {
    let slot = h & this.mask;
    while (this.keys[slot] !== undefined) slot = (slot + 1) & this.mask;
    this.keys[slot] = piece;
    this.hashes[slot] = h;
    this.values[slot] = value;
    this.count++;
  }

  private reset(capacity: number): void {
    this.keys = new Array(capacity);
    this.hashes = new Int32Array(capacity);
    this.values = new Array(capacity);
    this.mask = capacity - 1;
    this.count = 0;
  }

  private grow(): void {
    const { keys, hashes, values } = this;
    this.reset(keys.length * 2);
    for (let i = 0; i < keys.length; i++) if (keys[i] !== undefined) this.insert(keys[i]!, hashes[i], values[i]);
  }
}

export class BytePairEncoder implements Tokenizer {
  readonly vocabSize: number;
  readonly eosId: number;
  private readonly tokens: Uint8Array[];
  private readonly merges: Uint32Array;
  private readonly pairs: PairTable;
  private readonly byteToId = new Int32Array(256).fill(-1);
  /** Pieces whose whole text is one token (the common case for frequent words). */
  private readonly wholeToken = new Map<string, number>();
  private readonly cache = new PieceCache(CACHE_LIMIT);
  private readonly utf8 = new TextEncoder();
  private readonly utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private scratchBytes = new Uint8Array(1024);
  private scratchIds = new Int32Array(1024);
  private readonly eosBytes: Uint8Array;

  /**
   * `wholeTokenShortcut` (default true) maps a pre-token straight to the token spelling it, as tiktoken does;
   * exact for GPT-2's vocabulary. Hugging Face's BPE always applies the merges, which differs for vocabularies
   * holding tokens their own merges do not build: pass false to match it on any vocabulary.
   */
  constructor(readonly name: string, model: BpeModel, options: { wholeTokenShortcut?: boolean } = {}) {
    this.tokens = model.tokens;
    this.merges = model.merges;
    this.eosId = model.eosId;
    this.vocabSize = Math.max(model.tokens.length, model.eosId + 1);
    this.pairs = new PairTable(model.merges);
    this.eosBytes = this.utf8.encode(EOS_TEXT);
    const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    model.tokens.forEach((bytes, id) => {
      if (bytes.length === 1 && this.byteToId[bytes[0]] === -1) this.byteToId[bytes[0]] = id;
      if (options.wholeTokenShortcut === false) return;
      try {
        const text = strict.decode(bytes);
        if (!this.wholeToken.has(text)) this.wholeToken.set(text, id);
      } catch {
        // not valid UTF-8 on its own: only reachable through merges
      }
    });
    for (let b = 0; b < 256; b++) {
      if (this.byteToId[b] === -1) throw new Error(`${name}: no token for byte ${b}; a byte-level vocabulary needs all 256`);
    }
  }

  /** The raw merge list (rank order) — for writing artifacts. */
  get mergeList(): Uint32Array {
    return this.merges;
  }

  tokenBytes(id: number): Uint8Array {
    if (id === this.eosId) return this.eosBytes;
    const t = this.tokens[id];
    if (t === undefined) throw new RangeError(`${this.name}: token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    return t;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    let from = 0;
    for (;;) {
      const at = text.indexOf(EOS_TEXT, from);
      if (at < 0) break;
      this.encodeSegment(text, from, at, out);
      out.push(this.eosId);
      from = at + EOS_TEXT.length;
    }
    this.encodeSegment(text, from, text.length, out);
    return out;
  }

  encodeOrdinary(text: string): number[] {
    const out: number[] = [];
    this.encodeSegment(text, 0, text.length, out);
    return out;
  }

  /** Appends the ids of text[from, to) (no special tokens) to `out`. */
  encodeSegment(text: string, from: number, to: number, out: number[]): void {
    const cache = this.cache;
    for (let i = from; i < to; ) {
      const e = pieceEnd(text, i, to);
      let h = 0x811c9dc5 | 0;
      for (let k = i; k < e; k++) h = Math.imul(h ^ text.charCodeAt(k), 0x01000193);
      let ids = cache.get(text, i, e, h);
      if (ids === undefined) {
        const piece = text.slice(i, e);
        ids = this.encodePiece(piece);
        cache.set(piece, h, ids);
      }
      i = e;
      if (typeof ids === 'number') out.push(ids);
      else for (let k = 0; k < ids.length; k++) out.push(ids[k]);
    }
  }

  /** BPE of one pre-token; a single id is returned as a number to save an allocation. */
  private encodePiece(piece: string): number | number[] {
    const whole = this.wholeToken.get(piece);
    if (whole !== undefined) return whole;
    if (piece.length * 3 > this.scratchBytes.length) {
      this.scratchBytes = new Uint8Array(piece.length * 3 + 16);
      this.scratchIds = new Int32Array(piece.length * 3 + 16);
    }
    const nBytes = this.utf8.encodeInto(piece, this.scratchBytes).written;
    const ids = this.scratchIds;
    for (let k = 0; k < nBytes; k++) ids[k] = this.byteToId[this.scratchBytes[k]];
    const n = nBytes > 64 ? this.mergeLong(ids, nBytes) : this.mergeShort(ids, nBytes);
    if (n === 1) return ids[0];
    return Array.from(ids.subarray(0, n));
  }

  /** Quadratic merge loop: fastest for the short pieces that make up almost all text. */
  private mergeShort(ids: Int32Array, n: number): number {
    const pairs = this.pairs;
    const merges = this.merges;
    while (n > 1) {
      let best = -1;
      let at = -1;
      for (let k = 0; k + 1 < n; k++) {
        const r = pairs.get(ids[k], ids[k + 1]);
        if (r >= 0 && (best < 0 || r < best)) {
          best = r;
          at = k;
        }
      }
      if (best < 0) break;
      ids[at] = merges[3 * best + 2];
      for (let k = at + 1; k + 1 < n; k++) ids[k] = ids[k + 1];
      n--;
    }
    return n;
  }

  /**
   * Merge loop for long pieces (long runs of symbols or letters): a min-heap of candidate pairs over
   * a linked list of parts, O(n log n) instead of O(n²). Stale heap entries are skipped on pop.
   */
  private mergeLong(ids: Int32Array, n: number): number {
    const pairs = this.pairs;
    const merges = this.merges;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let k = 0; k < n; k++) {
      next[k] = k + 1 < n ? k + 1 : -1;
      prev[k] = k - 1;
    }
    // Heap of (rank, position) packed into one float64: rank * 2^21 + position keeps rank order and,
    // among equal ranks, the leftmost position first — the order GPT-2's loop merges in.
    const heap: number[] = [];
    const SHIFT = 2 ** 21;
    if (n >= SHIFT) throw new Error('pre-token too long for the merge heap');
    const push = (v: number) => {
      heap.push(v);
      let c = heap.length - 1;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (heap[p] <= heap[c]) break;
        const t = heap[p]; heap[p] = heap[c]; heap[c] = t;
        c = p;
      }
    };
    const pop = (): number => {
      const top = heap[0];
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        let c = 0;
        for (;;) {
          const l = 2 * c + 1;
          if (l >= heap.length) break;
          const r = l + 1;
          const m = r < heap.length && heap[r] < heap[l] ? r : l;
          if (heap[c] <= heap[m]) break;
          const t = heap[m]; heap[m] = heap[c]; heap[c] = t;
          c = m;
        }
      }
      return top;
    };
    const consider = (k: number) => {
      const j = next[k];
      if (j < 0) return;
      const r = pairs.get(ids[k], ids[j]);
      if (r >= 0) push(r * SHIFT + k);
    };
    for (let k = 0; k + 1 < n; k++) consider(k);
    let count = n;
    while (heap.length > 0) {
      const v = pop();
      const r = Math.floor(v / SHIFT);
      const k = v - r * SHIFT;
      const j = next[k];
      if (!alive[k] || j < 0 || pairs.get(ids[k], ids[j]) !== r) continue;
      ids[k] = merges[3 * r + 2];
      alive[j] = 0;
      next[k] = next[j];
      if (next[j] >= 0) prev[next[j]] = k;
      count--;
      if (prev[k] >= 0) consider(prev[k]);
      consider(k);
    }
    let w = 0;
    for (let k = 0; k >= 0; k = next[k]) ids[w++] = ids[k];
    return count;
  }

  decode(ids: ArrayLike<number>): string {
    let total = 0;
    for (let k = 0; k < ids.length; k++) total += this.tokenBytes(ids[k]).length;
    const buf = new Uint8Array(total);
    let o = 0;
    for (let k = 0; k < ids.length; k++) {
      const t = this.tokenBytes(ids[k]);
      buf.set(t, o);
      o += t.length;
    }
    return this.utf8Decoder.decode(buf);
  }

  decodePiece(id: number): string {
    return this.utf8Decoder.decode(this.tokenBytes(id));
  }
}
