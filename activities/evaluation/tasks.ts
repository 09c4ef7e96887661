/**
 * The five evaluation tasks behind one call: load the task's data, run it on a model, and return both the
 * JSON the CLI prints and the long-form result rows an activity writes. Data files come through
 * `resolveDataFile` (registry / mirror) unless a file is given.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import { BLIMP_PARADIGMS, evaluateBlimp, parseBlimp } from './blimp';
import { evaluateLambada, parseLambada } from './lambada';
import { isLexsimDatasetId, LEXSIM_DATASETS, parseWordPairs, type LexsimDatasetId } from './lexsim/datasets';
import { evaluateLexsim } from './lexsim/evaluate';
import type { SubwordRule, VectorKind } from './lexsim/vectors';
import { evaluateWindowPerplexity } from './owt';
import { resultRow, type ResultRow } from './results';
import { resolveDataFile } from './sources';
import type { EvalModel, EvalTokenizer, RunHooks } from './types';
import { evaluateWikitext, splitWikitextPages } from './wikitext';

/** sha256 of wikitext-2-raw/wiki.test.raw in the canonical wikitext-2-raw-v1.zip (PAPER.md §10). */
export const WIKITEXT_CANONICAL_SHA256 = '173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08';

export const EVAL_TASKS = ['owt-val', 'lambada', 'wikitext', 'blimp', 'lexsim'] as const;
export type EvalTaskId = (typeof EVAL_TASKS)[number];

export function isEvalTask(s: string): s is EvalTaskId {
  return (EVAL_TASKS as readonly string[]).includes(s);
}

export interface EvalRequest {
  task: EvalTaskId;
  /** Evaluate only the first N items (passages, pages, pairs per paradigm, windows, word pairs). */
  limit?: number;
  /** Read the task's data from this file instead of the registry (not for blimp with several paradigms). */
  file?: string;
  /** Directories that may hold the data files (upstream data.fetch artifacts). */
  dataDirs?: string[];
  /** owt-val: the token stream (already read from a shard set). */
  stream?: ArrayLike<number>;
  /** owt-val: window length (default 512) and windows per forward call. */
  windowLength?: number;
  batch?: number;
  /** blimp: paradigms to run (default all 67). */
  subtasks?: string[];
  /** lexsim options. */
  datasets?: LexsimDatasetId[];
  methods?: string[];
  vectors?: VectorKind;
  subwords?: SubwordRule;
}

/** A result row before it is labelled with a model and profile. */
export type TaskRow = Omit<ResultRow, 'model' | 'profile'>;

export interface EvalOutcome {
  /** What `pipeline eval --json` prints. */
  json: Record<string, unknown>;
  rows: TaskRow[];
  /** Input tokens the model processed (for throughput). */
  tokens: number;
  seconds: number;
}

function row(r: Partial<TaskRow> & Pick<TaskRow, 'task' | 'metric' | 'value' | 'n'>): TaskRow {
  const { model: _m, profile: _p, ...rest } = resultRow({ model: '', ...r });
  return rest;
}

function take<T>(items: T[], limit?: number): T[] {
  return limit === undefined ? items : items.slice(0, limit);
}

export async function runEvalTask(model: EvalModel, tokenizer: EvalTokenizer, req: EvalRequest, hooks?: RunHooks): Promise<EvalOutcome> {
  if (model.config.realVocabSize !== tokenizer.vocabSize) {
    throw new Error(`tokenizer "${tokenizer.name}" has ${tokenizer.vocabSize} ids but the model's real vocabulary is ${model.config.realVocabSize}; pass the tokenizer the model was trained with`);
  }
  const started = performance.now();
  const src = { explicit: req.file, dirs: req.dataDirs, signal: hooks?.signal };
  const done = (o: Omit<EvalOutcome, 'seconds'>): EvalOutcome => ({ ...o, seconds: (performance.now() - started) / 1000 });
  switch (req.task) {
    case 'owt-val': {
      if (!req.stream) throw new Error('owt-val needs a token stream (--shards <dir>)');
      const r = await evaluateWindowPerplexity(model, req.stream, { windowLength: req.windowLength, batch: req.batch, limit: req.limit }, hooks);
      return done({
        json: { task: 'owt-val', ppl: r.ppl, loss: r.loss, n: r.n, tokens: r.tokens, softmax_rows: r.softmaxRows },
        rows: [row({ task: 'owt_val', metric: 'ppl', value: r.ppl, n: r.n }), row({ task: 'owt_val', metric: 'loss', value: r.loss, n: r.n })],
        tokens: r.tokens,
      });
    }
    case 'lambada': {
      const file = await resolveDataFile('lambada_openai', 'lambada_test.jsonl', src);
      const docs = take(parseLambada(fs.readFileSync(file, 'utf8'), file), req.limit);
      const r = await evaluateLambada(model, tokenizer, docs, hooks);
      return done({
        json: { task: 'lambada', ppl: r.ppl, acc: r.acc, n: r.n },
        rows: [
          row({ task: 'lambada', metric: 'ppl', value: r.ppl, n: r.n }),
          row({ task: 'lambada', metric: 'acc', value: r.acc, n: r.n }),
          row({ task: 'lambada', metric: 'mean_target_tokens', value: r.meanTargetTokens, n: r.n }),
        ],
        tokens: r.tokens,
      });
    }
    case 'wikitext': {
      const file = await resolveDataFile('wikitext2_raw_test', 'wiki.test.raw', src);
      const pages = take(splitWikitextPages(fs.readFileSync(file, 'utf8')), req.limit);
      const r = await evaluateWikitext(model, tokenizer, pages, hooks);
      // Page splitting and word counts depend on exact bytes: record whether this is the canonical file.
      const sha256 = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
      const details = JSON.stringify({ file, sha256, canonical: sha256 === WIKITEXT_CANONICAL_SHA256, words: r.words, bytes: r.bytes });
      return done({
        json: { task: 'wikitext', word_perplexity: r.word_perplexity, byte_perplexity: r.byte_perplexity, bits_per_byte: r.bits_per_byte, n: r.n, canonical: sha256 === WIKITEXT_CANONICAL_SHA256 },
        rows: (['word_perplexity', 'byte_perplexity', 'bits_per_byte'] as const).map((m) => row({ task: 'wikitext', metric: m, value: r[m], n: r.n, details })),
        tokens: r.tokens,
      });
    }
    case 'blimp': {
      const uids = req.subtasks?.length ? req.subtasks : [...BLIMP_PARADIGMS];
      for (const u of uids) if (!(BLIMP_PARADIGMS as readonly string[]).includes(u)) throw new Error(`unknown BLiMP paradigm "${u}"`);
      if (req.file && uids.length !== 1) throw new Error('blimp --file needs exactly one --subtask');
      const paradigms = [];
      for (const uid of uids) {
        const file = await resolveDataFile('blimp', `${uid}.jsonl`, src);
        paradigms.push({ paradigm: uid, pairs: take(parseBlimp(fs.readFileSync(file, 'utf8'), file), req.limit) });
      }
      const r = await evaluateBlimp(model, tokenizer, paradigms, hooks);
      return done({
        json: { task: 'blimp', acc: r.acc, n: r.n, paradigms: Object.fromEntries(r.paradigms.map((p) => [p.paradigm, p.acc])) },
        rows: [
          row({ task: 'blimp', metric: 'acc', value: r.acc, n: r.n, details: JSON.stringify({ paradigms: r.paradigms.length }) }),
          ...r.paradigms.map((p) => row({ task: 'blimp', subtask: p.paradigm, metric: 'acc', value: p.acc, n: p.n })),
        ],
        tokens: r.tokens,
      });
    }
    case 'lexsim': {
      const ids = req.datasets?.length ? req.datasets : (Object.keys(LEXSIM_DATASETS) as LexsimDatasetId[]);
      for (const id of ids) if (!isLexsimDatasetId(id)) throw new Error(`unknown lexsim dataset "${id}" (${Object.keys(LEXSIM_DATASETS).join(', ')})`);
      if (req.file && ids.length !== 1) throw new Error('lexsim --file needs exactly one --dataset');
      const vectors: VectorKind = req.vectors ?? (model.config.arch === 'backpack' ? 'senses' : 'embedding');
      const subwords: SubwordRule = req.subwords ?? 'mean';
      const results: Record<string, unknown>[] = [];
      const rows: TaskRow[] = [];
      for (const id of ids) {
        const spec = LEXSIM_DATASETS[id];
        const file = await resolveDataFile(spec.registryName, spec.file, src);
        const pairs = take(parseWordPairs(fs.readFileSync(file, 'utf8'), spec, file), req.limit);
        const r = await evaluateLexsim(model, tokenizer, pairs, { vectors, subwords, methods: req.methods });
        const details = JSON.stringify({ pairs: r.pairs, oov: r.oov, words: r.words, multiSubwordWords: r.multiSubwordWords, multiSubwordPairs: r.multiSubwordPairs });
        for (const s of r.scores) {
          results.push({ dataset: id, method: s.method, vectors, subwords, spearman: s.spearman, n: r.n, oov: r.oov, multi_subword_words: r.multiSubwordWords });
          rows.push(row({ task: 'lexsim', subtask: id, metric: 'spearman', variant: `${vectors}/${s.method}/${subwords}`, value: s.spearman, n: r.n, details }));
        }
        rows.push(row({ task: 'lexsim', subtask: id, metric: 'oov_pairs', variant: `${vectors}//${subwords}`, value: r.oov, n: r.pairs, details }));
        rows.push(row({ task: 'lexsim', subtask: id, metric: 'multi_subword_words', variant: `${vectors}//${subwords}`, value: r.multiSubwordWords, n: r.words, details }));
        hooks?.onProgress?.(results.length, ids.length);
      }
      return done({ json: results.length === 1 ? results[0] : { task: 'lexsim', results }, rows, tokens: 0 });
    }
  }
}
