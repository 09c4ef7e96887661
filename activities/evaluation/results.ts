/**
 * Evaluation results as one long-form Parquet table per eval artifact (`results.parquet`): one row per
 * (model, task, subtask, metric[, variant]). Columns:
 *   model, profile, task, subtask ('' when none), metric, variant ('' when none), value, n (items scored),
 *   table, row, column ('' when the row does not belong to a paper table), details (JSON, '' when none).
 * `table`/`row`/`column` place a value in a paper table: the report renders every distinct `table` as a pivot
 * (rows × columns) beside the paper's numbers for that table, so any activity can add rows for its own
 * paper table (e.g. "Table 5") by filling these three columns.
 */
import * as fs from 'fs';
import * as path from 'path';

/** parquetjs takes ~0.3 s to load: load it on first use, not when the activity registry is imported. */
function parquet(): typeof import('@dsnp/parquetjs') {
  return require('@dsnp/parquetjs') as typeof import('@dsnp/parquetjs');
}

export interface ResultRow {
  model: string;
  profile: string;
  task: string;
  subtask: string;
  metric: string;
  variant: string;
  value: number;
  n: number;
  table: string;
  row: string;
  column: string;
  details: string;
}

export const RESULTS_FILE = 'results.parquet';

const SCHEMA_FIELDS = {
  model: { type: 'UTF8' },
  profile: { type: 'UTF8' },
  task: { type: 'UTF8' },
  subtask: { type: 'UTF8' },
  metric: { type: 'UTF8' },
  variant: { type: 'UTF8' },
  value: { type: 'DOUBLE' },
  n: { type: 'INT64' },
  table: { type: 'UTF8' },
  row: { type: 'UTF8' },
  column: { type: 'UTF8' },
  details: { type: 'UTF8' },
} as const;

/** Fills the optional columns with ''. */
export function resultRow(r: Partial<ResultRow> & Pick<ResultRow, 'model' | 'task' | 'metric' | 'value' | 'n'>): ResultRow {
  return {
    profile: '',
    subtask: '',
    variant: '',
    table: '',
    row: '',
    column: '',
    details: '',
    ...r,
  };
}

/** Writes rows atomically (temp file, fsync, rename). */
export async function writeResults(file: string, rows: readonly ResultRow[]): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const { ParquetSchema, ParquetWriter } = parquet();
  const writer = await ParquetWriter.openFile(new ParquetSchema(SCHEMA_FIELDS), tmp);
  for (const r of rows) {
    // NaN is a legitimate result (e.g. Spearman of a constant vector); Parquet DOUBLE stores it as is.
    await writer.appendRow({ ...r, n: BigInt(Math.round(r.n)) });
  }
  await writer.close();
  const fd = fs.openSync(tmp, 'r');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

const STRING_COLUMNS = ['model', 'profile', 'task', 'subtask', 'metric', 'variant', 'table', 'row', 'column', 'details'] as const;

/** Reads a results table; columns missing from older files read as ''. */
export async function readResults(file: string): Promise<ResultRow[]> {
  const { ParquetReader } = parquet();
  let reader: Awaited<ReturnType<typeof ParquetReader.openFile>>;
  try {
    reader = await ParquetReader.openFile(file);
  } catch (err) {
    throw new Error(`${file}: not a readable Parquet file (${(err as Error).message})`);
  }
  try {
    const fields = reader.getSchema().fields;
    for (const required of ['model', 'task', 'metric', 'value']) {
      if (!(required in fields)) throw new Error(`${file}: results table has no column "${required}"`);
    }
    const cursor = reader.getCursor();
    const rows: ResultRow[] = [];
    for (let rec = (await cursor.next()) as Record<string, unknown> | null; rec; rec = (await cursor.next()) as Record<string, unknown> | null) {
      const row = {} as Record<string, unknown>;
      for (const c of STRING_COLUMNS) row[c] = rec[c] === undefined || rec[c] === null ? '' : String(rec[c]);
      row.value = Number(rec.value);
      row.n = rec.n === undefined || rec.n === null ? 0 : Number(rec.n);
      rows.push(row as unknown as ResultRow);
    }
    return rows;
  } finally {
    await reader.close();
  }
}
