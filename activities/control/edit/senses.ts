/**
 * Qualitative sense inspection (PAPER.md §6.8): for a word's first token v and each sense ℓ, the
 * vocabulary projection E·C(v)_ℓ and its top/bottom tokens; "sense arithmetic" sums ±C of several words.
 */

export interface SenseListing {
  sense: number;
  top: Array<{ id: number; score: number }>;
  bottom: Array<{ id: number; score: number }>;
}

/** Top and bottom `count` rows of E·vector over the first `rows` rows of E (padding excluded by the caller). */
export function projectionExtremes(embeddings: Float32Array, rows: number, d: number, vector: Float32Array, count: number) {
  const scores = new Float64Array(rows);
  for (let u = 0; u < rows; u++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += embeddings[u * d + t] * vector[t];
    scores[u] = s;
  }
  const order = Array.from({ length: rows }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  const pick = (ids: number[]) => ids.map((id) => ({ id, score: scores[id] }));
  return { top: pick(order.slice(0, count)), bottom: pick(order.slice(-count).reverse()) };
}

/** Listings for every sense of a (signed) sum of words' sense vectors ([n][k][d] in `vectors`). */
export function senseListings(
  embeddings: Float32Array,
  rows: number,
  d: number,
  k: number,
  vectors: Float32Array,
  signs: number[],
  count: number,
): SenseListing[] {
  if (vectors.length !== signs.length * k * d) throw new Error('senseListings: vectors and signs disagree');
  const listings: SenseListing[] = [];
  for (let l = 0; l < k; l++) {
    const sum = new Float32Array(d);
    signs.forEach((sign, w) => {
      for (let t = 0; t < d; t++) sum[t] += sign * vectors[(w * k + l) * d + t];
    });
    listings.push({ sense: l, ...projectionExtremes(embeddings, rows, d, sum, count) });
  }
  return listings;
}

/** Parses "+science-art" / "science" into words and signs (a bare word is +). */
export function parseSenseExpression(expr: string): { words: string[]; signs: number[] } {
  const parts = expr.trim().match(/[+-]?[^+-]+/g);
  if (!parts) throw new Error(`cannot parse sense expression "${expr}"`);
  const words: string[] = [];
  const signs: number[] = [];
  for (const part of parts) {
    const sign = part.startsWith('-') ? -1 : 1;
    const word = part.replace(/^[+-]/, '').trim();
    if (!word) throw new Error(`empty word in sense expression "${expr}"`);
    words.push(word);
    signs.push(sign);
  }
  return { words, signs };
}
