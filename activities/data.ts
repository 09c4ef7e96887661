/**
 * Data activities (datasets/): corpus preparation and split, tokenizer training, tokenization into
 * Arrow shard sets, and verified evaluation-data fetches. Downloads are cached (verified by sha256)
 * under $PIPELINE_CACHE_DIR/data (default ~/.cache/backpack-pipeline/data).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { defineActivity, NonRetryableError, throwIfAborted, type ActivityContext, type AnyActivity, type InputArtifact } from '../pipelines/activity';
import { concatCorpora, openCorpus, splitDocuments, writeSplitCorpus, DEFAULT_SPLIT_SEED, DEFAULT_VAL_RATIO } from '../datasets/corpora';
import { REGISTRY, dataCacheDir, fetchDataset } from '../datasets/registry';

/** Re-exported: other activities locate the shared download cache through here. */
export { dataCacheDir };
import { writeDatasetTable } from '../datasets/readers';
import { ShardSetWriter, DEFAULT_SHARD_TOKENS } from '../datasets/shards';
import { tokenizeStream } from '../datasets/tokenize-parallel';
import { loadTokenizerSync, PieceCounter, trainBpe, writeTokenizerArtifact, TOKENIZER_FILE, TOKENIZER_META_FILE } from '../datasets/tokenizer';

/** The first upstream artifact that contains `file` (step names are the DAG's business). */
function findInput(ctx: ActivityContext, file: string): InputArtifact | undefined {
  for (const refs of Object.values(ctx.inputs)) for (const r of refs) if (fs.existsSync(path.join(r.dir, file))) return r;
  return undefined;
}

function requireInput(ctx: ActivityContext, file: string, what: string): InputArtifact {
  const found = findInput(ctx, file);
  if (!found) throw new NonRetryableError(`${ctx.node.step}: needs an upstream ${what} artifact (with ${file}); inputs: ${Object.keys(ctx.inputs).join(', ') || 'none'}`);
  return found;
}

export const corpusActivity = defineActivity({
  name: 'data.corpus',
  version: '1',
  description: 'Read corpus sources (brown, nlp-corpus, openwebtext, local paths) and split documents into train.parquet / val.parquet.',
  params: z.object({
    sources: z.array(z.string().min(1)).min(1).default(['brown', 'nlp-corpus']),
    valRatio: z.number().min(0).lt(1).default(DEFAULT_VAL_RATIO),
    seed: z.number().int().default(DEFAULT_SPLIT_SEED),
    sentencesPerDocument: z.number().int().min(1).default(8),
    textField: z.string().default('text'),
    openwebtextDir: z.string().optional(),
    maxShards: z.number().int().min(1).optional(),
  }).strict(),
  resources: { cpus: 1, memoryMb: 2048 },
  async run(params, ctx) {
    const started = Date.now();
    const parts = [];
    for (const s of params.sources) {
      parts.push(await openCorpus(s, { cacheDir: dataCacheDir(), textField: params.textField, sentencesPerDocument: params.sentencesPerDocument, openwebtextDir: params.openwebtextDir, maxShards: params.maxShards }));
    }
    const corpus = concatCorpora(parts);
    const summary = await writeSplitCorpus(corpus, ctx.outDir, params.valRatio, params.seed, ctx.signal, (done, total) => ctx.progress({ fraction: done / total, message: `${done}/${total} documents` }));
    const record = { corpus: corpus.describe(), split: { valRatio: params.valRatio, seed: params.seed }, ...summary, seconds: (Date.now() - started) / 1000 };
    fs.writeFileSync(path.join(ctx.outDir, 'corpus.json'), JSON.stringify(record, null, 2) + '\n');
    return record;
  },
});

export const trainTokenizerActivity = defineActivity({
  name: 'data.train_tokenizer',
  version: '1',
  description: 'Train a byte-level BPE tokenizer (GPT-2 pre-tokenisation) on the corpus train split; writes tokenizer.json.',
  params: z.object({
    vocabSize: z.number().int().min(257).max(1 << 20).default(8192),
    minFrequency: z.number().int().min(1).default(2),
    name: z.string().optional(),
  }).strict(),
  resources: { cpus: 1, memoryMb: 2048 },
  async run(params, ctx) {
    const started = Date.now();
    const corpus = requireInput(ctx, 'train.parquet', 'corpus');
    const counter = new PieceCounter();
    let docs = 0;
    for await (const doc of splitDocuments(corpus.dir, 'train')) {
      counter.add(doc);
      if (++docs % 1000 === 0) throwIfAborted(ctx.signal);
    }
    const counted = Date.now();
    const result = trainBpe(counter, {
      vocabSize: params.vocabSize,
      minFrequency: params.minFrequency,
      signal: ctx.signal,
      onProgress: (done, wanted) => ctx.progress({ fraction: done / wanted, message: `${done}/${wanted} merges` }),
    });
    const name = params.name ?? `bpe-${params.vocabSize}`;
    const summary = { name, vocabSize: result.model.eosId + 1, eosId: result.model.eosId, merges: result.merges, documents: docs, distinctPieces: result.distinctPieces, totalPieces: result.totalPieces, countSeconds: (counted - started) / 1000, trainSeconds: (Date.now() - counted) / 1000 };
    writeTokenizerArtifact(ctx.outDir, result.model, { ...summary, trainer: 'backpack-pipeline byte-level BPE' });
    return summary;
  },
});

export const tokenizeActivity = defineActivity({
  name: 'data.tokenize',
  version: '1',
  description: 'Tokenize the corpus train/val splits into Arrow token shard sets (train/, val/), EOS after every document.',
  params: z.object({
    /** 'gpt2' or 'input' (the upstream tokenizer artifact). */
    tokenizer: z.string().default('input'),
    /**
     * Worker threads; 0 = auto: one per CPU slot for splits of ≥ 32M characters, else the calling
     * thread (each worker warms its own piece cache, which only pays off on large corpora).
     */
    workers: z.number().int().min(0).default(0),
    shardTokens: z.number().int().min(1).default(DEFAULT_SHARD_TOKENS),
  }).strict(),
  resources: { cpus: 2, memoryMb: 4096 },
  async run(params, ctx) {
    const started = Date.now();
    const corpus = requireInput(ctx, 'train.parquet', 'corpus');
    let spec = params.tokenizer;
    if (spec === 'input') {
      const tokArtifact = requireInput(ctx, TOKENIZER_FILE, 'tokenizer');
      spec = tokArtifact.dir;
      fs.mkdirSync(path.join(ctx.outDir, 'tokenizer'), { recursive: true });
      for (const file of [TOKENIZER_FILE, TOKENIZER_META_FILE]) {
        if (fs.existsSync(path.join(spec, file))) fs.copyFileSync(path.join(spec, file), path.join(ctx.outDir, 'tokenizer', file));
      }
    } else if (spec !== 'gpt2') {
      throw new NonRetryableError(`data.tokenize: tokenizer must be "gpt2" or "input", got "${spec}"`);
    }
    const tokenizer = loadTokenizerSync(spec);
    const corpusInfo = readCorpusInfo(corpus.dir);
    const out: Record<string, unknown> = { tokenizer: tokenizer.name, vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId };
    for (const split of ['train', 'val'] as const) {
      const characters = corpusInfo?.[`${split}Characters`] ?? Infinity;
      const workers = params.workers > 0 ? params.workers : characters >= 32e6 ? Math.max(1, ctx.devices.cpus) : 1;
      const writer = new ShardSetWriter(path.join(ctx.outDir, split), { tokenizer: tokenizer.name, vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId, split }, params.shardTokens);
      const r = await tokenizeStream(splitDocuments(corpus.dir, split), {
        tokenizer: spec,
        workers: workers > 1 ? workers : 0,
        signal: ctx.signal,
        onDocument: (ids) => writer.addDocument(ids),
        onProgress: (docs, chars) => ctx.progress({ message: `${split}: ${docs} documents`, metrics: { documents: docs, characters: chars } }),
      });
      const meta = await writer.close();
      out[split] = { documents: meta.documents, tokens: meta.tokens, shards: meta.shards, emptyDocuments: r.emptyDocuments, characters: r.characters, workers };
    }
    out.seconds = (Date.now() - started) / 1000;
    return out;
  },
});

/** The corpus step's corpus.json (character counts per split), when present. */
function readCorpusInfo(dir: string): Record<string, number> | null {
  const file = path.join(dir, 'corpus.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, number>) : null;
}

const DATASET_NAMES = REGISTRY.map((e) => e.name) as [string, ...string[]];

export const fetchActivity = defineActivity({
  name: 'data.fetch',
  version: '1',
  description: 'Download (or copy from PIPELINE_DATA_MIRROR) one evaluation dataset, verify sha256, and write files/ + table.parquet.',
  params: z.object({
    dataset: z.enum(DATASET_NAMES),
    /** Directory or http(s) base URL; default: env PIPELINE_DATA_MIRROR, else the canonical hosts. */
    mirror: z.string().optional(),
  }).strict(),
  resources: { cpus: 1, memoryMb: 1024 },
  async run(params, ctx) {
    const fetched = await fetchDataset(params.dataset, {
      cacheDir: dataCacheDir(),
      mirror: params.mirror,
      signal: ctx.signal,
      onProgress: (message, fraction) => ctx.progress({ message, fraction }),
    });
    const filesDir = path.join(ctx.outDir, 'files');
    fs.mkdirSync(filesDir, { recursive: true });
    for (const [name, p] of Object.entries(fetched.files)) fs.copyFileSync(p, path.join(filesDir, name));
    const local = { ...fetched, dir: filesDir, files: Object.fromEntries(Object.keys(fetched.files).map((n) => [n, path.join(filesDir, n)])) };
    const rows = await writeDatasetTable(local, path.join(ctx.outDir, 'table.parquet'));
    const summary = { dataset: params.dataset, files: Object.keys(fetched.files).length, rows, canonical: fetched.canonical, notes: fetched.notes, sha256: fetched.sha256 };
    fs.writeFileSync(path.join(ctx.outDir, 'dataset.json'), JSON.stringify(summary, null, 2) + '\n');
    return { dataset: params.dataset, files: summary.files, rows, canonical: fetched.canonical };
  },
});

export const dataActivities: AnyActivity[] = [corpusActivity, trainTokenizerActivity, tokenizeActivity, fetchActivity];
