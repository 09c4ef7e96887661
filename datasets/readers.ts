/**
 * Typed readers for the registry's datasets (formats as PAPER.md §6.2 describes them) and their
 * conversion to Parquet tables. Readers take the paths `fetchDataset` returned.
 */
import * as fs from 'node:fs';
import { decodeUtf8Strict } from './corpora/utf8';
import { ESTIMATION_PROMPTS, EVALUATION_PROMPTS, PROFESSIONS_40 } from './gender';
import { writeParquetTable, type TableSchema } from './parquet-table';
import { BLIMP_UIDS, TOPICS, type FetchedDataset } from './registry';

export interface WordPair { word1: string; word2: string; score: number }
export interface BlimpPair { uid: string; pairId: number; sentenceGood: string; sentenceBad: string; field: string; linguisticsTerm: string }
export interface TweetTopicRow { split: string; id: string; text: string; labels: string[] }

function readText(file: string): string {
  return decodeUtf8Strict(fs.readFileSync(file), file);
}

function lines(file: string): string[] {
  return readText(file).split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
}

function pairsFrom(file: string, delimiter: string | RegExp, skipHeader: boolean, cols: [number, number, number]): WordPair[] {
  const rows = lines(file).slice(skipHeader ? 1 : 0);
  return rows.map((line, i) => {
    const f = line.split(delimiter).map((s) => s.trim());
    const score = Number(f[cols[2]]);
    if (f.length <= Math.max(...cols) || !Number.isFinite(score)) throw new Error(`${file}:${i + 1 + (skipHeader ? 1 : 0)}: expected a word pair and a number, got "${line}"`);
    return { word1: f[cols[0]], word2: f[cols[1]], score };
  });
}

/** Word-similarity datasets (simlex999, simverb3500, rg65, ws353) as rows of (word1, word2, score). */
export function readWordPairs(ds: FetchedDataset): WordPair[] {
  switch (ds.name) {
    case 'simlex999': return pairsFrom(ds.files['SimLex-999.txt'], '\t', true, [0, 1, 3]);
    case 'simverb3500': return pairsFrom(ds.files['SimVerb-3500.txt'], '\t', false, [0, 1, 3]);
    case 'rg65': return pairsFrom(ds.files['RG65.csv'], ';', false, [0, 1, 2]);
    case 'ws353': return pairsFrom(ds.files['WS353.csv'], ',', true, [0, 1, 2]);
    default: throw new Error(`${ds.name} is not a word-similarity dataset`);
  }
}

export function readLambada(ds: FetchedDataset): string[] {
  const file = ds.files['lambada_test.jsonl'];
  return lines(file).map((l, i) => {
    const row = JSON.parse(l);
    if (typeof row?.text !== 'string') throw new Error(`${file}:${i + 1}: no "text" string`);
    return row.text as string;
  });
}

/** The raw test file as one string (page splitting is the evaluation's job, PAPER.md §6.1). */
export function readWikitextRaw(ds: FetchedDataset): string {
  return readText(ds.files['wiki.test.raw']);
}

export function readOwtVal100len(ds: FetchedDataset): string[] {
  const file = ds.files['val-100len.json'];
  const list: unknown = JSON.parse(readText(file));
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) throw new Error(`${file}: expected a JSON list of strings`);
  return list as string[];
}

export function readTopicBags(ds: FetchedDataset): { topic: string; words: string[] }[] {
  return TOPICS.map(({ topic }) => ({ topic, words: lines(ds.files[`${topic}.txt`]).map((w) => w.trim()) }));
}

export function readTweetTopic(ds: FetchedDataset): TweetTopicRow[] {
  const out: TweetTopicRow[] = [];
  for (const [name, file] of Object.entries(ds.files)) {
    const split = name.replace(/^en_/, '').replace(/\.jsonl$/, '');
    lines(file).forEach((l, i) => {
      const row = JSON.parse(l);
      if (typeof row?.text !== 'string' || !Array.isArray(row.topics)) throw new Error(`${file}:${i + 1}: expected "text" and "topics"`);
      out.push({ split, id: String(row.id), text: row.text, labels: row.topics.map(String) });
    });
  }
  return out;
}

export function readBlimp(ds: FetchedDataset, uids: readonly string[] = BLIMP_UIDS): BlimpPair[] {
  const out: BlimpPair[] = [];
  for (const uid of uids) {
    const file = ds.files[`${uid}.jsonl`];
    if (!file) throw new Error(`blimp: no file for paradigm ${uid}`);
    lines(file).forEach((l, i) => {
      const r = JSON.parse(l);
      if (typeof r.sentence_good !== 'string' || typeof r.sentence_bad !== 'string') throw new Error(`${file}:${i + 1}: missing sentence_good/sentence_bad`);
      out.push({ uid, pairId: Number(r.pairID), sentenceGood: r.sentence_good, sentenceBad: r.sentence_bad, field: String(r.field), linguisticsTerm: String(r.linguistics_term) });
    });
  }
  return out;
}

/** The dataset as one Parquet table (`table.parquet` in the data.fetch artifact); returns row count. */
export async function writeDatasetTable(ds: FetchedDataset, file: string): Promise<number> {
  const S = (type: TableSchema[string]['type'], extra: Partial<TableSchema[string]> = {}) => ({ type, ...extra });
  switch (ds.name) {
    case 'simlex999': case 'simverb3500': case 'rg65': case 'ws353':
      return writeParquetTable(file, { word1: S('UTF8'), word2: S('UTF8'), score: S('DOUBLE') }, readWordPairs(ds) as unknown as Record<string, unknown>[]);
    case 'lambada_openai':
      return writeParquetTable(file, { text: S('UTF8') }, readLambada(ds).map((text) => ({ text })));
    case 'wikitext2_raw_test':
      return writeParquetTable(file, { line_number: S('INT64'), text: S('UTF8') }, readWikitextRaw(ds).split('\n').map((text, i) => ({ line_number: i + 1, text: text.replace(/\r$/, '') })));
    case 'owt_val_100len':
      return writeParquetTable(file, { text: S('UTF8') }, readOwtVal100len(ds).map((text) => ({ text })));
    case 'topic_bags':
      return writeParquetTable(file, { topic: S('UTF8'), word: S('UTF8') }, readTopicBags(ds).flatMap(({ topic, words }) => words.map((word) => ({ topic, word }))));
    case 'gender_bias':
      return writeParquetTable(file, { kind: S('UTF8'), position: S('INT32'), text: S('UTF8') }, [
        ...PROFESSIONS_40.map((text, position) => ({ kind: 'profession', position, text })),
        ...ESTIMATION_PROMPTS.map((text, position) => ({ kind: 'estimation_prompt', position, text })),
        ...EVALUATION_PROMPTS.map((text, position) => ({ kind: 'evaluation_prompt', position, text })),
      ]);
    case 'debiaswe': {
      const professions = JSON.parse(readText(ds.files['professions.json'])) as [string, number, number][];
      return writeParquetTable(file, { word: S('UTF8'), definitional: S('DOUBLE'), stereotypical: S('DOUBLE') }, professions.map(([word, definitional, stereotypical]) => ({ word, definitional, stereotypical })));
    }
    case 'tweet_topic':
      return writeParquetTable(file, { split: S('UTF8'), id: S('UTF8'), text: S('UTF8'), labels: S('UTF8', { repeated: true }) }, readTweetTopic(ds) as unknown as Record<string, unknown>[]);
    case 'blimp':
      return writeParquetTable(file, { uid: S('UTF8'), pair_id: S('INT64'), sentence_good: S('UTF8'), sentence_bad: S('UTF8'), field: S('UTF8'), linguistics_term: S('UTF8') },
        readBlimp(ds).map((p) => ({ uid: p.uid, pair_id: p.pairId, sentence_good: p.sentenceGood, sentence_bad: p.sentenceBad, field: p.field, linguistics_term: p.linguisticsTerm })), 16384);
    default:
      throw new Error(`no table parser for dataset ${ds.name}`);
  }
}
