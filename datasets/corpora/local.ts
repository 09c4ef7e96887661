/**
 * Local corpora: a file or a directory of `.txt` (one document per file), `.jsonl` (one JSON object per
 * line, text in `textField`) and `.parquet` files (a string column `textField`). Directory entries are
 * read in name order. Text must be UTF-8: a bad byte is an error naming the file and offset.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ParquetReader } from '@dsnp/parquetjs';
import type { Corpus } from './types';
import { decodeUtf8Strict } from './utf8';

export interface LocalCorpusOptions {
  /** Field / column holding the text (default "text"). */
  textField?: string;
}

const KINDS = ['.txt', '.jsonl', '.parquet'] as const;

function listFiles(p: string): string[] {
  if (!fs.existsSync(p)) throw new Error(`corpus path ${p} does not exist`);
  if (fs.statSync(p).isFile()) return [p];
  const files = fs
    .readdirSync(p)
    .filter((f) => KINDS.some((k) => f.endsWith(k)))
    .sort()
    .map((f) => path.join(p, f));
  if (files.length === 0) throw new Error(`corpus directory ${p} has no .txt, .jsonl or .parquet files`);
  return files;
}

export async function* readJsonlDocuments(file: string, textField: string): AsyncIterable<string> {
  const text = decodeUtf8Strict(fs.readFileSync(file), file);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    const value = (row as Record<string, unknown>)?.[textField];
    if (typeof value !== 'string') throw new Error(`${file}:${i + 1}: field "${textField}" is missing or not a string`);
    yield value;
  }
}

export async function* readParquetDocuments(file: string, textField: string): AsyncIterable<string> {
  let reader: Awaited<ReturnType<typeof ParquetReader.openFile>>;
  try {
    reader = await ParquetReader.openFile(file);
  } catch (e) {
    throw new Error(`${file}: not a readable Parquet file (${(e as Error).message})`);
  }
  try {
    const fields = reader.getSchema().fields;
    const field = fields[textField];
    if (!field) {
      throw new Error(`${file}: Parquet schema has no column "${textField}" (columns: ${Object.keys(fields).join(', ') || 'none'})`);
    }
    if (field.primitiveType !== 'BYTE_ARRAY') {
      throw new Error(`${file}: column "${textField}" has type ${field.primitiveType}${field.originalType ? `/${field.originalType}` : ''}, expected a UTF-8 string`);
    }
    const cursor = reader.getCursor([[textField]]);
    for (let row = await cursor.next(); row; row = await cursor.next()) {
      const value = (row as Record<string, unknown>)[textField];
      if (value === null || value === undefined) continue;
      yield Buffer.isBuffer(value) ? decodeUtf8Strict(value, file) : String(value);
    }
  } finally {
    await reader.close();
  }
}

export function localCorpus(p: string, options: LocalCorpusOptions = {}): Corpus {
  const textField = options.textField ?? 'text';
  const files = listFiles(p);
  return {
    name: path.basename(p),
    async *documents(signal?: AbortSignal) {
      for (const file of files) {
        if (signal?.aborted) throw new Error('cancelled');
        if (file.endsWith('.jsonl')) yield* readJsonlDocuments(file, textField);
        else if (file.endsWith('.parquet')) yield* readParquetDocuments(file, textField);
        else yield decodeUtf8Strict(fs.readFileSync(file), file);
      }
    },
    describe: () => ({ source: 'local', path: path.resolve(p), files: files.length, textField }),
  };
}
