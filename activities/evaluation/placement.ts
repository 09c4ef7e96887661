/**
 * Puts evaluation rows into the paper's tables (the `table`, `row`, `column` columns of results.ts):
 * - main models → Table 2 (row = model label: OWT PPL, LAMBADA PPL/ACC, Wikitext PPL, BLiMP);
 * - sense-count ablation → Table 8 (row = k: OWT PPL and the parameter counts of PAPER.md §3.2);
 * - lexical similarity → Table 4 (row = similarity label, column = dataset);
 * - BLiMP paradigms → "BLiMP by paradigm" (row = paradigm, column = model).
 * Values stay in their natural units (accuracies as fractions); the report scales for display.
 */
import type { ModelConfig } from '../../native/types';
import { LEXSIM_DATASETS, isLexsimDatasetId } from './lexsim/datasets';
import type { TaskRow } from './tasks';

export type ModelGroup = 'main' | 'ablation' | 'external';

const TABLE2_COLUMNS: Record<string, string> = {
  'owt_val/ppl': 'OWT PPL',
  'lambada/ppl': 'LAMBADA PPL',
  'lambada/acc': 'LAMBADA ACC',
  'wikitext/word_perplexity': 'Wikitext PPL',
  'blimp/acc': 'BLiMP',
};

/** Table 4 row label for a similarity variant "<vectors>/<method>/<subwords>". */
export function table4RowLabel(variant: string, arch: ModelConfig['arch'], modelLabel: string): string {
  const [vectors, method] = variant.split('/');
  if (vectors === 'embedding') return `${modelLabel} (embeddings)`;
  const sense = /^cossense(\d+)$/.exec(method);
  if (sense) return `Sim${sense[1]} (${modelLabel}, sense ${sense[1]})`;
  const names: Record<string, string> = { minpair: 'Sim_min', maxpair: 'Sim_max', minall: 'MinAll', maxall: 'MaxAll', cos: 'Cos (all senses)' };
  return `${names[method] ?? method} (${modelLabel}${arch === 'backpack' ? '' : `, ${arch}`})`;
}

/** Parameter counts of PAPER.md §3.2 from a config (unique tensors, tied output embedding). */
export function parameterCounts(c: ModelConfig): { total: number; contextual: number } {
  const d = c.nEmbd;
  const transformer = c.vocabSize * d + c.nPositions * d + 2 * d + c.nLayer * (12 * d * d + 13 * d);
  if (c.arch !== 'backpack') return { total: transformer, contextual: transformer };
  const k = c.numSenses ?? 16;
  const h = c.shrinkSenseMlp ? d : Math.round((c.senseIntermediateScale ?? 4) * d);
  const alpha = 2 * d * d + 2 * d;
  const senseNet = 6 * d + (2 * d * h + h + d) + (d * h + h + h * k * d + k * d);
  return { total: transformer + alpha + senseNet, contextual: transformer + alpha };
}

export function placeRows(rows: TaskRow[], ctx: { modelLabel: string; group: ModelGroup; config: ModelConfig }): TaskRow[] {
  const out: TaskRow[] = [];
  for (const r of rows) {
    const key = `${r.task}/${r.metric}`;
    if (r.task === 'blimp' && r.subtask !== '') {
      out.push({ ...r, table: 'BLiMP by paradigm', row: r.subtask, column: ctx.modelLabel });
    } else if (r.task === 'lexsim' && r.metric !== 'spearman' && isLexsimDatasetId(r.subtask)) {
      // coverage, reported beside Table 4 (never hidden): OOV pairs and multi-subword words
      const column = r.metric === 'oov_pairs' ? 'OOV pairs' : r.metric === 'multi_subword_words' ? 'multi-subword words' : r.metric;
      out.push({ ...r, table: 'Lexical-similarity coverage', row: `${ctx.modelLabel} · ${LEXSIM_DATASETS[r.subtask].label}`, column });
    } else if (r.task === 'lexsim' && r.metric === 'spearman' && isLexsimDatasetId(r.subtask)) {
      out.push({ ...r, table: 'Table 4', row: table4RowLabel(r.variant, ctx.config.arch, ctx.modelLabel), column: LEXSIM_DATASETS[r.subtask].label });
    } else if (ctx.group === 'ablation' && key === 'owt_val/ppl') {
      out.push({ ...r, table: 'Table 8', row: String(ctx.config.numSenses ?? 1), column: 'OWT PPL' });
    } else if (ctx.group === 'main' && TABLE2_COLUMNS[key] && r.subtask === '') {
      out.push({ ...r, table: 'Table 2', row: ctx.modelLabel, column: TABLE2_COLUMNS[key] });
    } else {
      out.push(r);
    }
  }
  if (ctx.group === 'ablation' && rows.some((r) => r.task === 'owt_val')) {
    const counts = parameterCounts(ctx.config);
    const k = String(ctx.config.numSenses ?? 1);
    out.push({ ...rows[0], task: 'params', subtask: '', metric: 'total', variant: '', value: counts.total, n: 1, details: '', table: 'Table 8', row: k, column: 'total params' });
    out.push({ ...rows[0], task: 'params', subtask: '', metric: 'contextual', variant: '', value: counts.contextual, n: 1, details: '', table: 'Table 8', row: k, column: 'contextual params' });
  }
  return out;
}

/** "Backpack-Micro" from arch/size matrix values (or the config when there is no size). */
/** The name of a matrix value: object values ({id, label?, ...}) name themselves by label, else id. */
export function matrixValueName(v: unknown): unknown {
  return v !== null && typeof v === 'object' ? ((v as { label?: unknown }).label ?? (v as { id?: unknown }).id) : v;
}

export function modelLabelFrom(matrix: Record<string, unknown>, arch0: string | undefined, fallback: string): string {
  matrix = Object.fromEntries(Object.entries(matrix).map(([k, v]) => [k, matrixValueName(v)]));
  if (typeof matrix.model === 'string' && matrix.arch === undefined && matrix.size === undefined && matrix.senses === undefined) return matrix.model;
  const arch = String(matrix.arch ?? arch0 ?? '');
  const archLabel = /backpack/i.test(arch) ? 'Backpack' : /gpt2|transformer/i.test(arch) ? 'Transformer' : arch;
  const size = matrix.size ?? matrix.shape;
  const senses = matrix.senses ?? matrix.k ?? matrix.num_senses;
  if (size === undefined && senses === undefined) return fallback;
  const cap = (s: unknown) => String(s).charAt(0).toUpperCase() + String(s).slice(1);
  return [`${archLabel}${size !== undefined ? '-' + cap(size) : ''}`, senses !== undefined ? `k=${senses}` : ''].filter(Boolean).join(' ');
}
