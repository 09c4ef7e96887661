/**
 * The `report` activity (PAPER.md §8 step 18): reads every results table and training-metrics table among
 * its inputs and writes report.md (+ plots/*.svg), a self-contained report.html and all-results.parquet
 * (the union of the inputs' result rows).
 */
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { defineActivity, type AnyActivity } from '../pipelines/activity';
import { writeResults } from './evaluation/results';
import { collectInputs } from './report/collect';
import { buildPlots, renderHtml, renderMarkdown, type ReportContent } from './report/render';
import { buildTables } from './report/tables';

export const REPORT_HTML = 'report.html';
export const REPORT_MD = 'report.md';

export const reportActivity = defineActivity({
  name: 'report',
  version: '4',
  description: "Aggregate result and training-metric tables into the paper's tables and plots (Markdown + HTML).",
  params: z
    .object({
      title: z.string().default('Backpack Language Models — reproduction report'),
      /** Free-text notes appended to the report (e.g. what the profile scales down). */
      notes: z.array(z.string()).default([]),
    })
    .strict(),
  resources: { cpus: 1, memoryMb: 1024 },
  async run(params, ctx) {
    const collected = await collectInputs(ctx.inputs);
    const tables = buildTables(collected.results);
    const plots = buildPlots(collected.curves, collected.results);
    const profiles = [...new Set(collected.results.map((r) => r.profile).filter(Boolean))].sort();
    const notes = [...params.notes];
    const wikitext = collected.results.filter((r) => r.task === 'wikitext' && r.details !== '');
    if (wikitext.some((r) => JSON.parse(r.details).canonical === false)) {
      notes.push('Wikitext PPL was computed on a non-canonical copy of wiki.test.raw (CRLF, blank lines removed): page splits and word counts differ from the harness; treat those numbers as a smoke test.');
    }
    const content: ReportContent = {
      title: params.title,
      generatedAt: new Date().toISOString(),
      profiles,
      tables,
      plots,
      notes: [...notes, `${collected.files.length} input tables, ${collected.results.length} result rows, ${collected.curves.length} training curves.`],
    };
    fs.mkdirSync(path.join(ctx.outDir, 'plots'), { recursive: true });
    for (const p of plots) fs.writeFileSync(path.join(ctx.outDir, 'plots', `${p.id}.svg`), p.svg);
    fs.writeFileSync(path.join(ctx.outDir, REPORT_MD), renderMarkdown(content, (p) => `plots/${p.id}.svg`));
    fs.writeFileSync(path.join(ctx.outDir, REPORT_HTML), renderHtml(content));
    await writeResults(path.join(ctx.outDir, 'all-results.parquet'), collected.results);
    return { tables: tables.map((t) => t.name), plots: plots.map((p) => p.id), rows: collected.results.length, html: REPORT_HTML, markdown: REPORT_MD };
  },
});

export const reportActivities: AnyActivity[] = [reportActivity];
