/**
 * The paper's published numbers (arXiv v1, PAPER.md §7), in the same (table, row, column) cells our result
 * rows use, so the report can put each of our numbers beside the paper's.
 */
export interface PaperCell {
  table: string;
  /** The paper's row label; `model` names the model when the row label does not. */
  row: string;
  column: string;
  value: number;
}

export interface TableLayout {
  title: string;
  caption: string;
  columns: string[];
  /** Display scale per column (e.g. accuracies stored as fractions, shown ×100). */
  scale?: Record<string, number>;
  digits?: Record<string, number>;
  /** Lower is better for these columns (shown with ↓). */
  lowerIsBetter?: string[];
  /** Columns holding counts, shown as 74.3M / 41.2k. */
  counts?: string[];
  /** Scale and digits for columns not listed above (tables whose columns are models). */
  defaultScale?: number;
  defaultDigits?: number;
}

export const TABLE_LAYOUTS: Record<string, TableLayout> = {
  'Table 2': {
    title: 'Table 2 — language-modelling performance',
    caption: 'OWT validation PPL, LAMBADA (OpenAI) PPL and accuracy, WikiText-2 word PPL, BLiMP mean accuracy over 67 paradigms.',
    columns: ['OWT PPL', 'LAMBADA PPL', 'LAMBADA ACC', 'Wikitext PPL', 'BLiMP'],
    scale: { 'LAMBADA ACC': 100, BLiMP: 100 },
    digits: { 'OWT PPL': 1, 'LAMBADA PPL': 1, 'LAMBADA ACC': 1, 'Wikitext PPL': 1, BLiMP: 1 },
    lowerIsBetter: ['OWT PPL', 'LAMBADA PPL', 'Wikitext PPL'],
  },
  'Table 4': {
    title: 'Table 4 — lexical similarity (Spearman ρ)',
    caption: 'Word → vector with a leading space, subwords averaged; Sim_min = min over senses of per-sense cosine, Sim<ℓ> = cosine of sense ℓ (0-based).',
    columns: ['SL999', 'SV3500', 'RG65', 'WS353'],
    digits: { SL999: 3, SV3500: 3, RG65: 3, WS353: 3 },
  },
  'Table 8': {
    title: 'Table 8 — number of senses (Backpack-Mini shapes, shrunk sense MLPs)',
    caption: 'Total and contextual (Transformer + α layer) parameters computed from the config; OWT validation perplexity.',
    columns: ['total params', 'contextual params', 'OWT PPL'],
    counts: ['total params', 'contextual params'],
    digits: { 'OWT PPL': 1 },
    lowerIsBetter: ['OWT PPL'],
  },
  'BLiMP by paradigm': {
    title: 'BLiMP accuracy by paradigm (%)',
    caption: 'Per-paradigm accuracy; Table 2 reports the mean over the 67 paradigms.',
    columns: [],
    defaultScale: 100,
    defaultDigits: 1,
  },
  'Lexical-similarity coverage': {
    title: 'Lexical-similarity coverage',
    caption: 'Pairs left out because a word has unknown ids (OOV), and words the tokenizer splits into several subwords (averaged).',
    columns: ['OOV pairs', 'multi-subword words'],
    digits: { 'OOV pairs': 0, 'multi-subword words': 0 },
  },
  'Table 5': { title: 'Table 5 — pronoun gender bias (bias ratio, ideal 1)', caption: '', columns: ['ratio', 'reduction'], scale: { reduction: 100 }, lowerIsBetter: ['ratio'] },
  'Table 7': { title: 'Table 7 — forward-pass time (s, batch 32 × 512)', caption: '', columns: ['Backpack', 'Transformer'], lowerIsBetter: ['Backpack', 'Transformer'] },
  'Table 12': {
    title: 'Table 12 — topic control',
    caption: 'Mean over topics; MAUVE against OWT validation.',
    columns: ['Sem Acc', 'Toks-in-vocab', 'MAUVE'],
    scale: { 'Sem Acc': 100, 'Toks-in-vocab': 100 },
    digits: { 'Sem Acc': 1, 'Toks-in-vocab': 1, MAUVE: 2 },
  },
};

function cells(table: string, columns: string[], rows: Array<[string, ...Array<number | null>]>): PaperCell[] {
  const out: PaperCell[] = [];
  for (const [row, ...values] of rows) values.forEach((v, i) => v !== null && out.push({ table, row, column: columns[i], value: v }));
  return out;
}

export const PAPER_CELLS: PaperCell[] = [
  ...cells('Table 2', TABLE_LAYOUTS['Table 2'].columns, [
    ['Backpack-Micro', 31.5, 110, 0.247, 71.5, 0.756],
    ['Transformer-Micro', 34.4, 201, 0.213, 79.5, 0.778],
    ['Backpack-Mini', 23.5, 42.7, 0.316, 49.0, 0.762],
    ['Transformer-Mini', 24.5, 58.8, 0.297, 52.8, 0.804],
    ['Backpack-Small', 20.1, 26.5, 0.375, 40.9, 0.763],
    ['Transformer-Small', 20.2, 32.7, 0.349, 42.2, 0.819],
  ]),
  ...cells('Table 4', TABLE_LAYOUTS['Table 4'].columns, [
    ['word2vec', 0.442, 0.367, 0.679, 0.684],
    ['GloVe', 0.371, 0.227, 0.687, 0.607],
    ['GPT2-1.5B (embeddings)', 0.523, 0.418, 0.67, 0.706],
    ['GPT-J-6B (embeddings)', 0.492, 0.374, 0.766, 0.673],
    ['Transformer-Small (embeddings)', 0.478, 0.363, 0.634, 0.681],
    ['Sim12 (Backpack-Small, sense 12)', 0.522, 0.471, 0.754, 0.749],
    ['Sim14 (Backpack-Small, sense 14)', 0.5, 0.502, 0.591, 0.655],
    ['Sim_min (Backpack-Small)', 0.54, 0.471, 0.653, 0.607],
    ['SOTA (single)', 0.554, 0.473, 0.835, 0.764],
    ['SOTA (multi)', 0.605, 0.528, null, 0.807],
  ]),
  ...cells('Table 8', TABLE_LAYOUTS['Table 8'].columns, [
    ['1', 74.3e6, 72.7e6, 38.5],
    ['4', 75.6e6, 72.7e6, 29.3],
    ['16', 80.5e6, 72.7e6, 26.0],
    ['64', 100.2e6, 72.7e6, 24.0],
  ]),
  ...cells('Table 5', ['ratio', 'reduction'], [
    ['Transformer Unmodified', 7.02, null],
    ['Transformer Project-Nullspace', 6.72, 0.05],
    ['Transformer Optimize-Nullspace', 7.02, 0],
    ['Backpack Unmodified', 4.34, null],
    ['Backpack Remove-Sense10', 2.88, 0.44],
    ['Backpack Optimize-Sense10', 2.16, 0.65],
  ]),
  ...cells('Table 7', ['Backpack', 'Transformer'], [
    ['Micro', 0.093, 0.065],
    ['Mini', 0.21, 0.15],
    ['Small', 0.36, 0.26],
  ]),
  ...cells('Table 12', ['Sem Acc', 'Toks-in-vocab', 'MAUVE'], [
    ['Transformer unchanged', 0.068, 0.0, 0.95],
    ['PPLM-.01', 0.084, 0.001, 0.94],
    ['PPLM-.04', 0.239, 0.026, 0.81],
    ['PPLM-.05', 0.303, 0.055, 0.62],
    ['PPLM-.06', 0.377, 0.123, 0.41],
    ['PPLM-.07', 0.408, 0.188, 0.25],
    ['Backpack unchanged (strength 0)', 0.074, 0.0, 0.92],
    ['Backpack +1', 0.121, 0.002, 0.91],
    ['Backpack +2', 0.243, 0.015, 0.9],
    ['Backpack +3', 0.353, 0.035, 0.83],
  ]),
];
