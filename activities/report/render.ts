/**
 * Renders the report as Markdown (tables + links to SVG files) and as one self-contained HTML page
 * (inline CSS and SVG, no scripts, no external requests). Table cells carry their raw values in
 * data attributes so a test can check the page against the Parquet data.
 */
import type { ResultRow } from '../evaluation/results';
import type { TrainingCurve } from './collect';
import { PAPER_CELLS } from './paper';
import { escapeXml, lineChart, type Series } from './svg';
import type { DisplayTable } from './tables';

export interface Plot {
  id: string;
  title: string;
  svg: string;
}

export interface ReportContent {
  title: string;
  generatedAt: string;
  profiles: string[];
  tables: DisplayTable[];
  plots: Plot[];
  notes: string[];
}

const LOSSY = /loss|ppl|perplexity/i;
// loss_scale (fp16 training's dynamic loss scale) names a loss but is a training control, not a curve to compare
const NOT_A_LOSS = /loss_scale/i;

export function buildPlots(curves: readonly TrainingCurve[], results: readonly ResultRow[]): Plot[] {
  const plots: Plot[] = [];
  const metrics = [...new Set(curves.map((c) => c.metric))].filter((m) => LOSSY.test(m) && !NOT_A_LOSS.test(m)).sort();
  for (const metric of metrics.slice(0, 6)) {
    const series: Series[] = curves.filter((c) => c.metric === metric).map((c) => ({ name: c.model, points: c.points }));
    plots.push({ id: `training-${metric.replace(/[^a-z0-9]+/gi, '-')}`, title: `Training: ${metric}`, svg: lineChart({ title: `Training curves — ${metric}`, xLabel: 'optimizer step', yLabel: metric, series }) });
  }
  const ablation = results.filter((r) => r.table === 'Table 8' && r.column === 'OWT PPL');
  if (ablation.length > 0) {
    const series: Series[] = [];
    for (const profile of [...new Set(ablation.map((r) => r.profile))]) {
      series.push({ name: `ours (${profile || 'unlabelled'})`, points: ablation.filter((r) => r.profile === profile).map((r) => [Number(r.row), r.value]) });
    }
    series.push({ name: 'paper', dashed: true, points: PAPER_CELLS.filter((c) => c.table === 'Table 8' && c.column === 'OWT PPL').map((c) => [Number(c.row), c.value]) });
    // ours (tiny profile) and the paper's can be an order of magnitude apart: use a log axis then
    const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => y > 0);
    const logY = ys.length > 0 && Math.max(...ys) / Math.min(...ys) > 10;
    plots.push({ id: 'ablation-senses', title: 'Sense-count ablation', svg: lineChart({ title: 'OWT validation PPL vs number of senses k', xLabel: 'senses k (log scale)', yLabel: logY ? 'perplexity (log scale)' : 'perplexity', series, logX: true, logY }) });
  }
  return plots;
}

function sourceLabel(r: DisplayTable['rows'][number], t: DisplayTable): string {
  if (r.source === 'paper') return 'paper (arXiv v1)';
  // name the model(s) unless the row label or the column headers already do
  const models = r.model.split(', ').filter((m) => m && m !== r.label && !t.columns.includes(m));
  return `ours · ${r.profile || 'unlabelled'}${models.length ? ` · ${models.join(', ')}` : ''}`;
}

export function renderMarkdown(c: ReportContent, plotFile: (p: Plot) => string): string {
  const md: string[] = [`# ${c.title}`, '', `Generated ${c.generatedAt}. Profiles: ${c.profiles.join(', ') || '–'}. Paper numbers are arXiv v1 (PAPER.md §7); ours are labelled by profile.`, ''];
  for (const t of c.tables) {
    md.push(`## ${t.title}`, '');
    if (t.caption) md.push(t.caption, '');
    md.push(`| row | source | ${t.columns.join(' | ')} |`, `|---|---|${t.columns.map(() => '---:').join('|')}|`);
    for (const r of t.rows) {
      const cells = r.cells.map((x) => (r.source === 'ours' && x.value !== null ? `**${x.text}**` : x.text));
      md.push(`| ${r.label.replace(/\|/g, '\\|')} | ${sourceLabel(r, t)} | ${cells.join(' | ')} |`);
    }
    md.push('');
  }
  if (c.plots.length) {
    md.push('## Plots', '');
    for (const p of c.plots) md.push(`![${p.title}](${plotFile(p)})`, '');
  }
  if (c.notes.length) md.push('## Notes', '', ...c.notes.map((n) => `- ${n}`), '');
  return md.join('\n');
}

const CSS = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.paper{color:#555;background:#f6f6f6}
tr.ours td.num{font-weight:600}caption{caption-side:bottom;font-size:.85em;color:#555;text-align:left}
figure{margin:1em 0}`;

export function renderHtml(c: ReportContent): string {
  const h: string[] = [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeXml(c.title)}</title>`,
    `<style>${CSS}</style></head><body>`,
    `<h1>${escapeXml(c.title)}</h1>`,
    `<p>Generated ${escapeXml(c.generatedAt)}. Profiles: ${escapeXml(c.profiles.join(', ') || '–')}. Paper numbers are arXiv v1; ours are labelled by profile.</p>`,
  ];
  for (const t of c.tables) {
    h.push(`<h2>${escapeXml(t.title)}</h2>`);
    h.push(`<table data-table="${escapeXml(t.name)}">`);
    if (t.caption) h.push(`<caption>${escapeXml(t.caption)}</caption>`);
    h.push(`<thead><tr><th>row</th><th>source</th>${t.columns.map((col) => `<th>${escapeXml(col)}</th>`).join('')}</tr></thead><tbody>`);
    for (const r of t.rows) {
      const attrs = `class="${r.source}" data-source="${r.source}" data-row="${escapeXml(r.label)}" data-profile="${escapeXml(r.profile)}" data-model="${escapeXml(r.model)}"`;
      const cells = r.cells
        .map((x, i) => `<td class="num" data-column="${escapeXml(t.columns[i])}"${x.value === null ? '' : ` data-value="${x.value}"`}>${escapeXml(x.text)}</td>`)
        .join('');
      h.push(`<tr ${attrs}><td>${escapeXml(r.label)}</td><td>${escapeXml(sourceLabel(r, t))}</td>${cells}</tr>`);
    }
    h.push('</tbody></table>');
  }
  if (c.plots.length) {
    h.push('<h2>Plots</h2>');
    for (const p of c.plots) h.push(`<figure id="${escapeXml(p.id)}">${p.svg}<figcaption>${escapeXml(p.title)}</figcaption></figure>`);
  }
  if (c.notes.length) h.push('<h2>Notes</h2><ul>', ...c.notes.map((n) => `<li>${escapeXml(n)}</li>`), '</ul>');
  h.push('</body></html>');
  return h.join('\n');
}
