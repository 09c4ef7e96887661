/**
 * Knowledge editing by sense-vector projection (PAPER.md §6.7): for a target word's senses C ∈ R^{k×d},
 * remove the component along E_r (the word to remove) and give E_a (the word to add) the logit
 * contribution E_r had:
 *   C̃_ℓ = C_ℓ − (C_ℓ·E_r/‖E_r‖²)·E_r + (C_ℓ·E_r/‖E_a‖²)·E_a
 * Applied wherever the target token occurs (`senseReplace`), α unchanged.
 */

export function projectSenses(senses: Float32Array, k: number, d: number, removeRow: Float32Array, addRow: Float32Array): Float32Array {
  if (senses.length !== k * d) throw new Error(`edit: senses have ${senses.length} values, expected ${k}×${d}`);
  if (removeRow.length !== d || addRow.length !== d) throw new Error(`edit: embedding rows must have ${d} values`);
  let rr = 0;
  let aa = 0;
  for (let t = 0; t < d; t++) {
    rr += removeRow[t] * removeRow[t];
    aa += addRow[t] * addRow[t];
  }
  if (rr === 0 || aa === 0) throw new Error('edit: the remove/add embedding rows must be non-zero');
  const out = new Float32Array(k * d);
  for (let l = 0; l < k; l++) {
    let cr = 0;
    for (let t = 0; t < d; t++) cr += senses[l * d + t] * removeRow[t];
    for (let t = 0; t < d; t++) {
      out[l * d + t] = senses[l * d + t] - (cr / rr) * removeRow[t] + (cr / aa) * addRow[t];
    }
  }
  return out;
}

/** Single token of " " + word, with a clear error otherwise. */
export function singleToken(word: string, encode: (text: string) => number[], role: string): number {
  const ids = encode(' ' + word);
  if (ids.length !== 1) {
    throw new Error(`edit: the ${role} word "${word}" is ${ids.length} tokens for this tokenizer (needs exactly 1: pick another word)`);
  }
  return ids[0];
}
