/**
 * Train/validation document split, as the paper made it (PAPER.md §5): Hugging Face
 * `train_test_split(test_size=ratio, seed=seed, shuffle=True)`, i.e. p = numpy
 * `default_rng(seed).permutation(N)`, validation = p[:n_val] in that order, n_val = ceil(ratio·N).
 * Defaults: ratio 0.0005, seed 2357 (8,013,769 OpenWebText documents → 4,007).
 *
 * Differences, on purpose: training documents keep corpus order (the paper's train split is in
 * permutation order; we stream it instead of holding the corpus in memory), and n_val is kept in
 * [1, N − 1] so tiny corpora always get a validation document and a training set.
 */
import { numpyPermutation } from './numpy-permutation';

export const DEFAULT_VAL_RATIO = 0.0005;
export const DEFAULT_SPLIT_SEED = 2357;

export function validationCount(total: number, ratio: number): number {
  if (!(ratio >= 0 && ratio < 1)) throw new Error(`validation ratio must be in [0, 1), got ${ratio}`);
  if (total < 2 || ratio === 0) return 0;
  return Math.min(total - 1, Math.max(1, Math.ceil(ratio * total - 1e-9)));
}

/** Indices of the validation documents, in validation order. */
export function validationIndices(total: number, ratio = DEFAULT_VAL_RATIO, seed = DEFAULT_SPLIT_SEED): number[] {
  const nVal = validationCount(total, ratio);
  if (nVal === 0) return [];
  return Array.from(numpyPermutation(total, seed).subarray(0, nVal));
}
