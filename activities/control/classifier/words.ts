/**
 * A rule-based English word tokenizer: our documented stand-in for the Stanza tokenizer the paper's
 * scoring used for Toks-in-vocab and distinct-word counts (PAPER.md §6.3). It splits on whitespace,
 * separates punctuation runs, splits clitics ("n't", "'s", "'re", "'ve", "'ll", "'d", "'m") like
 * Stanza/PTB, and keeps `<|endoftext|>` as one token. Words are case-preserving.
 */

const SPECIAL = '<|endoftext|>';
const CLITIC = /^(.+?)(n't|'s|'re|'ve|'ll|'d|'m|’s|’re|’ve|’ll|’d|’m|n’t)$/i;

/** Splits one whitespace-free chunk into word and punctuation tokens. */
function splitChunk(chunk: string, out: string[]): void {
  // Letters/digits (with inner apostrophes, hyphens, periods in numbers) vs. single punctuation marks.
  const pieces = chunk.match(/[\p{L}\p{M}\p{N}]+(?:['’\-.,][\p{L}\p{M}\p{N}]+)*|[^\s\p{L}\p{M}\p{N}]/gu) ?? [];
  for (const piece of pieces) {
    const m = CLITIC.exec(piece);
    if (m && /[\p{L}]/u.test(m[1])) {
      out.push(m[1], m[2]);
    } else {
      out.push(piece);
    }
  }
}

export function wordTokenize(text: string): string[] {
  const out: string[] = [];
  const parts = text.split(SPECIAL);
  parts.forEach((part, i) => {
    if (i > 0) out.push(SPECIAL);
    for (const chunk of part.split(/\s+/)) if (chunk.length > 0) splitChunk(chunk, out);
  });
  return out;
}
