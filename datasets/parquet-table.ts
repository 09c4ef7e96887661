/** Writing small tables as Parquet, atomically (temp file + fsync + rename). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ParquetSchema, ParquetWriter, ParquetReader } from '@dsnp/parquetjs';

export type ColumnType = 'UTF8' | 'DOUBLE' | 'INT64' | 'INT32' | 'BOOLEAN';
export type TableSchema = Record<string, { type: ColumnType; optional?: boolean; repeated?: boolean }>;

export async function writeParquetTable(file: string, schema: TableSchema, rows: Iterable<Record<string, unknown>> | AsyncIterable<Record<string, unknown>>, rowGroupSize = 4096): Promise<number> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const writer = await ParquetWriter.openFile(new ParquetSchema(schema as never), tmp);
  writer.setRowGroupSize(rowGroupSize);
  let n = 0;
  try {
    for await (const row of rows as AsyncIterable<Record<string, unknown>>) {
      await writer.appendRow(row);
      n++;
    }
    await writer.close();
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  const fd = fs.openSync(tmp, 'r+');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  return n;
}

/** Reads every row of a (small) Parquet file. */
export async function readParquetRows(file: string): Promise<Record<string, unknown>[]> {
  const reader = await ParquetReader.openFile(file);
  try {
    const cursor = reader.getCursor();
    const rows: Record<string, unknown>[] = [];
    for (let r = await cursor.next(); r; r = await cursor.next()) rows.push(r as Record<string, unknown>);
    return rows;
  } finally {
    await reader.close();
  }
}
