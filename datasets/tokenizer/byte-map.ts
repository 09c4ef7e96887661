/**
 * GPT-2's reversible byte ↔ printable-character map (PAPER.md §9.9). Vocabulary files store tokens as
 * strings of these characters so every byte sequence is representable as visible text: printable bytes
 * keep their own code point and the other 68 bytes move, in increasing order, to U+0100 + n.
 */

function isKeptByte(b: number): boolean {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/** byte (0..255) → the character standing for it. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const out: string[] = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = isKeptByte(b) ? String.fromCharCode(b) : String.fromCharCode(256 + shifted++);
  }
  return out;
})();

/** character code → byte, for the 256 characters of the map (others → -1). */
const CHAR_TO_BYTE: Map<number, number> = new Map(BYTE_TO_CHAR.map((ch, b) => [ch.charCodeAt(0), b]));

/** Bytes → mapped string (e.g. " the" → "Ġthe"). */
export function bytesToMapped(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

/** Mapped string → bytes; throws on a character outside the map (a corrupt vocabulary file). */
export function mappedToBytes(mapped: string, where = 'token'): Uint8Array {
  const out = new Uint8Array(mapped.length);
  for (let i = 0; i < mapped.length; i++) {
    const b = CHAR_TO_BYTE.get(mapped.charCodeAt(i));
    if (b === undefined) {
      throw new Error(`${where}: character U+${mapped.charCodeAt(i).toString(16).padStart(4, '0')} in "${mapped}" is not part of the byte-level alphabet`);
    }
    out[i] = b;
  }
  return out;
}
