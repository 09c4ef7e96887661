/**
 * Corpus sources by name: 'brown', 'nlp-corpus', 'openwebtext', or a local path (file or directory
 * of .txt/.jsonl/.parquet). Several sources are read one after the other as one corpus.
 * A prepared corpus artifact holds `train.parquet` and `val.parquet` (one string column `text`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeParquetTable } from '../parquet-table';
import { brownCorpus } from './brown';
import { localCorpus, readParquetDocuments } from './local';
import { nlpCorpus } from './nlp-corpus';
import { openWebTextCorpus } from './openwebtext';
import { validationIndices } from './split';
import type { Corpus } from './types';

export type { Corpus } from './types';
export { DEFAULT_SPLIT_SEED, DEFAULT_VAL_RATIO, validationIndices, validationCount } from './split';

export interface OpenCorpusOptions {
  cacheDir: string;
  mirror?: string;
  textField?: string;
  sentencesPerDocument?: number;
  /** openwebtext: a local copy instead of downloading */
  openwebtextDir?: string;
  maxShards?: number;
}

export async function openCorpus(source: string, options: OpenCorpusOptions): Promise<Corpus> {
  switch (source) {
    case 'brown': return brownCorpus();
    case 'nlp-corpus': return nlpCorpus(options.sentencesPerDocument);
    case 'openwebtext': return openWebTextCorpus({ localDir: options.openwebtextDir, cacheDir: options.cacheDir, mirror: options.mirror, maxShards: options.maxShards });
    default:
      if (fs.existsSync(source)) return localCorpus(source, { textField: options.textField });
      throw new Error(`corpus source "${source}" is neither brown, nlp-corpus, openwebtext nor an existing path`);
  }
}

export function concatCorpora(parts: Corpus[]): Corpus {
  return {
    name: parts.map((p) => p.name).join('+'),
    async *documents(signal?: AbortSignal) {
      for (const p of parts) yield* p.documents(signal);
    },
    describe: () => ({ parts: parts.map((p) => p.describe()) }),
  };
}

export interface SplitSummary { documents: number; train: number; val: number; emptyDropped: number; trainCharacters: number; valCharacters: number }

/**
 * Reads the corpus twice (count, then write) and writes train.parquet / val.parquet into `dir`.
 * Empty documents are dropped before the split (they would only add a bare EOS).
 */
export async function writeSplitCorpus(corpus: Corpus, dir: string, ratio: number, seed: number, signal?: AbortSignal, onProgress?: (done: number, total: number) => void): Promise<SplitSummary> {
  let total = 0;
  let empty = 0;
  for await (const doc of corpus.documents(signal)) {
    if (doc.length === 0) empty++;
    else total++;
  }
  const valOrder = validationIndices(total, ratio, seed);
  const valRank = new Map(valOrder.map((docIndex, rank) => [docIndex, rank]));
  const valDocs: string[] = new Array(valOrder.length);
  const summary: SplitSummary = { documents: total, train: 0, val: valOrder.length, emptyDropped: empty, trainCharacters: 0, valCharacters: 0 };
  async function* trainRows() {
    let i = 0;
    for await (const doc of corpus.documents(signal)) {
      if (doc.length === 0) continue;
      const rank = valRank.get(i);
      if (rank !== undefined) {
        valDocs[rank] = doc;
        summary.valCharacters += doc.length;
      } else {
        summary.train++;
        summary.trainCharacters += doc.length;
        yield { text: doc };
      }
      i++;
      if (onProgress && i % 1000 === 0) onProgress(i, total);
    }
  }
  fs.mkdirSync(dir, { recursive: true });
  await writeParquetTable(path.join(dir, 'train.parquet'), { text: { type: 'UTF8' } }, trainRows(), 1024);
  await writeParquetTable(path.join(dir, 'val.parquet'), { text: { type: 'UTF8' } }, valDocs.map((text) => ({ text })), 1024);
  return summary;
}

/** Documents of one split of a prepared corpus artifact. */
export function splitDocuments(corpusDir: string, split: 'train' | 'val'): AsyncIterable<string> {
  const file = path.join(corpusDir, `${split}.parquet`);
  if (!fs.existsSync(file)) throw new Error(`corpus artifact ${corpusDir}: ${split}.parquet is missing`);
  return readParquetDocuments(file, 'text');
}
