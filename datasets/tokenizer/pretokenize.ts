/**
 * GPT-2 pre-tokenisation (PAPER.md §9.9) as a hand-written scanner with the exact semantics of
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * A scanner avoids the regex engine's per-match allocations and is several times faster.
 *
 * `\s` is the Unicode White_Space property, as in the Rust regex engine behind tiktoken (and Python's
 * `regex` used by the original encoder). JavaScript's `\s` differs on two code points (it includes
 * U+FEFF and excludes U+0085), which is why JS-regex tokenizers can disagree with GPT-2 on those.
 */

export const enum CharClass {
  Other = 0,
  Letter = 1,
  Number = 2,
  Space = 3,
}

const LETTER = /^\p{L}$/u;
const NUMBER = /^\p{N}$/u;

/** Class of every BMP code unit, filled lazily (0xff = not computed yet). */
const bmpClass = new Uint8Array(65536).fill(0xff);
const astralClass = new Map<number, CharClass>();

function isWhiteSpace(cp: number): boolean {
  return (
    (cp >= 9 && cp <= 13) || cp === 32 || cp === 0x85 || cp === 0xa0 || cp === 0x1680 ||
    (cp >= 0x2000 && cp <= 0x200a) || cp === 0x2028 || cp === 0x2029 || cp === 0x202f ||
    cp === 0x205f || cp === 0x3000
  );
}

function computeClass(cp: number): CharClass {
  if (isWhiteSpace(cp)) return CharClass.Space;
  // Lone surrogates are neither letters nor numbers.
  if (cp >= 0xd800 && cp <= 0xdfff) return CharClass.Other;
  const s = String.fromCodePoint(cp);
  if (LETTER.test(s)) return CharClass.Letter;
  if (NUMBER.test(s)) return CharClass.Number;
  return CharClass.Other;
}

for (let c = 0; c < 128; c++) bmpClass[c] = computeClass(c);

function classOfCodePoint(cp: number): CharClass {
  if (cp < 65536) {
    let k = bmpClass[cp];
    if (k === 0xff) k = bmpClass[cp] = computeClass(cp);
    return k as CharClass;
  }
  let k = astralClass.get(cp);
  if (k === undefined) {
    k = computeClass(cp);
    astralClass.set(cp, k);
  }
  return k;
}

/** Class of the character starting at `i` (surrogate pairs are one character). */
function classAt(text: string, i: number, n: number): CharClass {
  const c = text.charCodeAt(i);
  if (c < 128) return bmpClass[c] as CharClass;
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return classOfCodePoint(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
  }
  return classOfCodePoint(c);
}

/** UTF-16 width of the character starting at `i`. */
function widthAt(text: string, i: number, n: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return 2;
  }
  return 1;
}

/** End of the run of characters of class `k` starting at `i`. */
function runEnd(text: string, i: number, k: CharClass, n: number): number {
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c < 128) {
      if (bmpClass[c] !== k) return i;
      i++;
    } else {
      if (classAt(text, i, n) !== k) return i;
      i += widthAt(text, i, n);
    }
  }
  return i;
}

/** Length of the contraction ('s 't 're 've 'm 'll 'd) at `i`, or 0. Case-sensitive, like GPT-2. */
function contractionLength(text: string, i: number, n: number): number {
  const a = i + 1 < n ? text.charCodeAt(i + 1) : -1;
  if (a === 115 /* s */ || a === 116 /* t */ || a === 109 /* m */ || a === 100 /* d */) return 2;
  const b = i + 2 < n ? text.charCodeAt(i + 2) : -1;
  if ((a === 114 /* r */ || a === 118 /* v */) && b === 101 /* e */) return 3;
  if (a === 108 /* l */ && b === 108 /* l */) return 3;
  return 0;
}

/**
 * End index of the pre-token that starts at `i` (i < n), treating `n` as the end of the text. Calling it
 * repeatedly from 0 walks the same pieces the GPT-2 regex would find.
 */
export function pieceEnd(text: string, i: number, n: number = text.length): number {
  const c = text.charCodeAt(i);
  if (c === 39 /* ' */) {
    const len = contractionLength(text, i, n);
    if (len > 0) return i + len;
    return runEnd(text, i, CharClass.Other, n);
  }
  const k = classAt(text, i, n);
  if (k !== CharClass.Space) return runEnd(text, i + widthAt(text, i, n), k, n);
  // A single space glues onto the run that follows it.
  if (c === 32 && i + 1 < n) {
    const next = classAt(text, i + 1, n);
    if (next !== CharClass.Space) return runEnd(text, i + 1 + widthAt(text, i + 1, n), next, n);
  }
  // Whitespace: all of it at the end of the text, else all but the last character (which then
  // leads the next piece), else the single character.
  const j = runEnd(text, i + 1, CharClass.Space, n);
  if (j === n) return j;
  if (j - i >= 2) return j - 1;
  return j;
}

/** All pre-tokens of `text` (convenience for tests and the trainer; the encoder walks pieceEnd). */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; ) {
    const e = pieceEnd(text, i);
    out.push(text.slice(i, e));
    i = e;
  }
  return out;
}
