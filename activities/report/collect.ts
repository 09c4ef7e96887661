/**
 * Gathers what the report shows from upstream artifacts: every Parquet file is either an evaluation
 * results table (columns model, task, metric, value — evaluation/results.ts) or a training-metrics table
 * (a `step` column plus numeric columns, or long form step/metric/value).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { InputArtifact } from '../../pipelines/activity';
import { modelLabelFrom } from '../evaluation/placement';
import { readResults, type ResultRow } from '../evaluation/results';

export interface TrainingCurve {
  /** Model label (from the producing step's matrix). */
  model: string;
  metric: string;
  points: Array<[number, number]>;
  source: string;
}

export interface Collected {
  results: ResultRow[];
  curves: TrainingCurve[];
  /** Files read, for the report's provenance list. */
  files: string[];
}

function parquetFiles(dir: string, depth = 3): string[] {
  if (depth < 0 || !fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && !e.name.startsWith('.')) out.push(...parquetFiles(p, depth - 1));
    else if (e.isFile() && e.name.endsWith('.parquet')) out.push(p);
  }
  return out;
}

async function readColumns(file: string): Promise<{ fields: string[]; rows: Record<string, unknown>[] }> {
  const { ParquetReader } = require('@dsnp/parquetjs') as typeof import('@dsnp/parquetjs'); // loaded on first use
  const reader = await ParquetReader.openFile(file);
  try {
    const fields = Object.keys(reader.getSchema().fields);
    const cursor = reader.getCursor();
    const rows: Record<string, unknown>[] = [];
    for (let r = (await cursor.next()) as Record<string, unknown> | null; r; r = (await cursor.next()) as Record<string, unknown> | null) rows.push(r);
    return { fields, rows };
  } finally {
    await reader.close();
  }
}

const num = (v: unknown) => (typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : NaN);

export function curvesFromTable(fields: string[], rows: Record<string, unknown>[], model: string, source: string): TrainingCurve[] {
  const byMetric = new Map<string, Array<[number, number]>>();
  const add = (metric: string, x: number, y: number) => {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    if (!byMetric.has(metric)) byMetric.set(metric, []);
    byMetric.get(metric)!.push([x, y]);
  };
  if (fields.includes('metric') && fields.includes('value')) {
    for (const r of rows) add(String(r.metric), num(r.step), num(r.value));
  } else {
    const metrics = fields.filter((f) => f !== 'step' && rows.some((r) => typeof r[f] === 'number' || typeof r[f] === 'bigint'));
    for (const r of rows) for (const f of metrics) add(f, num(r.step), num(r[f]));
  }
  return [...byMetric].map(([metric, points]) => ({ model, metric, points, source }));
}

export async function collectInputs(inputs: Record<string, InputArtifact[]>): Promise<Collected> {
  const results: ResultRow[] = [];
  const curves: TrainingCurve[] = [];
  const files: string[] = [];
  for (const step of Object.keys(inputs).sort()) {
    for (const input of inputs[step]) {
      for (const file of parquetFiles(input.dir)) {
        const { fields, rows } = await readColumns(file).catch((err: Error) => {
          throw new Error(`${file}: not a readable Parquet file (${err.message})`);
        });
        if (['model', 'task', 'metric', 'value'].every((c) => fields.includes(c))) {
          results.push(...(await readResults(file)));
          files.push(file);
        } else if (fields.includes('step')) {
          const label = modelLabelFrom(input.matrix, undefined, input.item || input.step);
          curves.push(...curvesFromTable(fields, rows, label, file));
          files.push(file);
        }
      }
    }
  }
  return { results, curves, files };
}
