/**
 * Readers for the four word-similarity datasets of PAPER.md §6.2. Each line is split on the dataset's
 * delimiter and every field is whitespace-stripped (this also removes RG-65's CR and trailing spaces);
 * blank lines are skipped; duplicates are kept (WordSim-353 has "money,cash" twice).
 */
export interface WordPair {
  word1: string;
  word2: string;
  gold: number;
}

export interface LexsimDatasetSpec {
  /** Short id used on the command line and in result tables. */
  id: LexsimDatasetId;
  /** Column name of Table 4. */
  label: string;
  /** File name inside the dataset's mirror directory. */
  file: string;
  /** Dataset name in the datasets registry (datasets/registry.ts). */
  registryName: string;
  /** Directory of the file in the data mirror (shared/data layout). */
  mirrorDir: string;
  delimiter: string;
  skipHeader: boolean;
  columns: [number, number, number];
  expectedRows: number;
}

export type LexsimDatasetId = 'simlex999' | 'simverb3500' | 'rg65' | 'ws353';

export const LEXSIM_DATASETS: Record<LexsimDatasetId, LexsimDatasetSpec> = {
  simlex999: { id: 'simlex999', label: 'SL999', file: 'SimLex-999.txt', registryName: 'simlex999', mirrorDir: 'simlex-999', delimiter: '\t', skipHeader: true, columns: [0, 1, 3], expectedRows: 999 },
  simverb3500: { id: 'simverb3500', label: 'SV3500', file: 'SimVerb-3500.txt', registryName: 'simverb3500', mirrorDir: 'simverb-3500', delimiter: '\t', skipHeader: false, columns: [0, 1, 3], expectedRows: 3500 },
  rg65: { id: 'rg65', label: 'RG65', file: 'RG65.csv', registryName: 'rg65', mirrorDir: 'rg-65', delimiter: ';', skipHeader: false, columns: [0, 1, 2], expectedRows: 65 },
  ws353: { id: 'ws353', label: 'WS353', file: 'WS353.csv', registryName: 'ws353', mirrorDir: 'wordsim-353', delimiter: ',', skipHeader: true, columns: [0, 1, 2], expectedRows: 353 },
};

export function isLexsimDatasetId(s: string): s is LexsimDatasetId {
  return Object.prototype.hasOwnProperty.call(LEXSIM_DATASETS, s);
}

export function parseWordPairs(body: string, spec: LexsimDatasetSpec, where = spec.file): WordPair[] {
  const lines = body.split('\n');
  const pairs: WordPair[] = [];
  let first = true;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    if (first && spec.skipHeader) {
      first = false;
      continue;
    }
    first = false;
    const fields = lines[i].split(spec.delimiter).map((f) => f.trim());
    const [c1, c2, cg] = spec.columns;
    if (fields.length <= Math.max(c1, c2, cg)) {
      throw new Error(`${where}:${i + 1}: expected at least ${Math.max(c1, c2, cg) + 1} fields separated by ${JSON.stringify(spec.delimiter)}, got ${fields.length}`);
    }
    const gold = Number(fields[cg]);
    if (fields[cg] === '' || !Number.isFinite(gold)) throw new Error(`${where}:${i + 1}: score ${JSON.stringify(fields[cg])} is not a number`);
    if (fields[c1] === '' || fields[c2] === '') throw new Error(`${where}:${i + 1}: empty word`);
    pairs.push({ word1: fields[c1], word2: fields[c2], gold });
  }
  return pairs;
}
