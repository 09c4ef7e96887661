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

function formatCount(v: number): string {
  if (Math.abs(v) >= 1e9) return `${(v / 1e9).toFixed(2)}B`;
  if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return String(Math.round(v));
}

export function formatValue(layout: TableLayout | undefined, column: string, value: number | null): string {
  if (value === null) return '–';
  if (Number.isNaN(value)) return 'NaN';
  if (layout?.counts?.includes(column)) return formatCount(value);
  const listed = layout?.columns.includes(column) ?? false;
  const v = value * (layout?.scale?.[column] ?? (listed ? 1 : (layout?.defaultScale ?? 1)));
  const digits = layout?.digits?.[column] ?? (listed ? undefined : layout?.defaultDigits);
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
  // our rows: one per (row label, profile); models share a row unless they fill the same cell
  const ours: Array<{ label: string; profile: string; models: string[]; values: Map<string, number> }> = [];
  for (const r of rows) {
    let target = ours.find((o) => o.label === r.row && o.profile === r.profile && (o.models.includes(r.model) || !o.values.has(r.column)));
    if (target && !target.models.includes(r.model)) {
      // a model joins a shared row only when none of its cells are taken there
      const mine = rows.filter((x) => x.row === r.row && x.profile === r.profile && x.model === r.model).map((x) => x.column);
      if (mine.some((c) => target!.values.has(c))) target = undefined;
    }
    if (!target) {
      target = { label: r.row, profile: r.profile, models: [], values: new Map() };
      ours.push(target);
    }
    if (!target.models.includes(r.model)) target.models.push(r.model);
    target.values.set(r.column, r.value);
  }
  const paperLabels = [...new Set(paper.map((c) => c.row))];
  const display: DisplayRow[] = [];
  const emitOurs = (label: string) => {
    for (const o of ours) {
      if (o.label !== label) continue;
      display.push({ label, source: 'ours', profile: o.profile, model: o.models.join(', '), cells: columns.map((c) => cell(layout, c, o.values.has(c) ? o.values.get(c)! : null)) });
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
  const extra = [...new Set(ours.map((o) => o.label))].filter((l) => !paperLabels.includes(l));
  for (const label of extra) emitOurs(label);
  return { name, title: layout?.title ?? name, caption: layout?.caption ?? '', columns, rows: display };
}

function cell(layout: TableLayout | undefined, column: string, value: number | null): Cell {
  return { value, text: formatValue(layout, column, value) };
}
