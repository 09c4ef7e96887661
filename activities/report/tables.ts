/**
 * Pivots result rows into display tables: every distinct `table` value becomes one table with the
 * paper's rows (when the paper has that table) and ours interleaved, our rows labelled by profile.
 * Row order: each paper row followed by our rows with the same label, then our rows the paper lacks.
 */
import type { ResultRow } from '../evaluation/results';
import { PAPER_CELLS, TABLE_LAYOUTS, type TableLayout } from './paper';

export interface Cell {
  /** Raw stored value (natural units), null when absent. */
  value: number | null;
  /** Display text (scaled, rounded). */
  text: string;
}

export interface DisplayRow {
  label: string;
  source: 'paper' | 'ours';
  /** '' for paper rows. */
  profile: string;
  model: string;
  cells: Cell[];
}

export interface DisplayTable {
  name: string;
  title: string;
  caption: string;
  columns: string[];
  rows: DisplayRow[];
}

const KNOWN_ORDER = ['Table 2', 'Table 4', 'Table 8', 'Table 5', 'Table 7', 'Table 12'];

export function formatValue(layout: TableLayout | undefined, column: string, value: number | null): string {
  if (value === null) return '–';
  if (Number.isNaN(value)) return 'NaN';
  const v = value * (layout?.scale?.[column] ?? 1);
  const digits = layout?.digits?.[column];
  if (digits !== undefined) return v.toFixed(digits);
  return Math.abs(v) >= 100 ? v.toFixed(1) : Number(v.toPrecision(4)).toString();
}

export function buildTables(results: readonly ResultRow[]): DisplayTable[] {
  const names = [...new Set(results.filter((r) => r.table !== '').map((r) => r.table))];
  names.sort((a, b) => {
    const ia = KNOWN_ORDER.indexOf(a);
    const ib = KNOWN_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  return names.map((name) => buildTable(name, results.filter((r) => r.table === name)));
}

function buildTable(name: string, rows: readonly ResultRow[]): DisplayTable {
  const layout = TABLE_LAYOUTS[name];
  const paper = PAPER_CELLS.filter((c) => c.table === name);
  const columns = [...(layout?.columns ?? [])];
  for (const r of rows) if (!columns.includes(r.column)) columns.push(r.column);
  // our rows: one per (row label, profile, model)
  const ours = new Map<string, { label: string; profile: string; model: string; values: Map<string, number> }>();
  for (const r of rows) {
    const key = JSON.stringify([r.row, r.profile, r.model]);
    if (!ours.has(key)) ours.set(key, { label: r.row, profile: r.profile, model: r.model, values: new Map() });
    ours.get(key)!.values.set(r.column, r.value);
  }
  const paperLabels = [...new Set(paper.map((c) => c.row))];
  const display: DisplayRow[] = [];
  const emitOurs = (label: string) => {
    for (const o of ours.values()) {
      if (o.label !== label) continue;
      display.push({ label, source: 'ours', profile: o.profile, model: o.model, cells: columns.map((c) => cell(layout, c, o.values.has(c) ? o.values.get(c)! : null)) });
    }
  };
  for (const label of paperLabels) {
    display.push({
      label,
      source: 'paper',
      profile: '',
      model: '',
      cells: columns.map((c) => cell(layout, c, paper.find((p) => p.row === label && p.column === c)?.value ?? null)),
    });
    emitOurs(label);
  }
  const extra = [...new Set([...ours.values()].map((o) => o.label))].filter((l) => !paperLabels.includes(l));
  for (const label of extra) emitOurs(label);
  return { name, title: layout?.title ?? name, caption: layout?.caption ?? '', columns, rows: display };
}

function cell(layout: TableLayout | undefined, column: string, value: number | null): Cell {
  return { value, text: formatValue(layout, column, value) };
}
