/**
 * Token shard sets: Arrow IPC shards + Parquet manifest written, read back with checksum checks,
 * opened by DuckDB; parallel (worker-thread) tokenization equals the single-thread result; the tiny
 * data steps (corpus → tokenizer → shards) run end to end on a slice of the real corpora.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { DuckDBInstance } from '@duckdb/node-api';
import { corpusActivity, tokenizeActivity, trainTokenizerActivity } from '../activities/data';
import { iterateTokenShards, readManifest, readShardMeta, readTokenStream, ShardSetWriter } from '../datasets/shards';
import { tokenizeStream } from '../datasets/tokenize-parallel';
import { loadTokenizer } from '../datasets/tokenizer';
import { brownCorpus } from '../datasets/corpora/brown';

function tmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

async function* docsOf(list: string[]): AsyncIterable<string> {
  yield* list;
}

async function brownSlice(n: number): Promise<string[]> {
  const out: string[] = [];
  for await (const d of brownCorpus().documents()) {
    out.push(d);
    if (out.length === n) break;
  }
  return out;
}

async function duck() {
  return (await DuckDBInstance.create(':memory:')).connect();
}

test('shards split at the size limit; stream, manifest and DuckDB agree', async () => {
  const dir = tmp('shards-');
  const writer = new ShardSetWriter(dir, { tokenizer: 'test', vocabSize: 1000, eosId: 999, split: 'train' }, 250);
  const docs: number[][] = [];
  for (let d = 0; d < 40; d++) docs.push([...Array.from({ length: 10 + d * 3 }, (_, k) => (d * 7 + k) % 999), 999]);
  docs.forEach((ids) => writer.addDocument(ids));
  const meta = await writer.close();
  const flat = docs.flat();
  expect(meta).toMatchObject({ documents: 40, tokens: flat.length, dtype: 'uint16', vocabSize: 1000, eosId: 999 });
  expect(meta.shards).toBe(Math.ceil(flat.length / 250));
  const stream = await readTokenStream(dir);
  expect(stream).toBeInstanceOf(Uint16Array);
  expect(Array.from(stream)).toEqual(flat);
  const pieces: number[] = [];
  for await (const { info, tokens } of iterateTokenShards(dir)) {
    expect(tokens.length).toBe(info.tokens);
    pieces.push(...tokens);
  }
  expect(pieces).toEqual(flat);

  // documents per shard = EOS tokens that fall in it
  const manifest = await readManifest(dir);
  let o = 0;
  for (const m of manifest) {
    const eos = flat.slice(o, o + m.tokens).filter((t) => t === 999).length;
    expect(m.documents).toBe(eos);
    o += m.tokens;
    const bytes = fs.readFileSync(path.join(dir, m.shard));
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(m.sha256);
    expect(tableFromIPC(bytes).schema.fields.map((f) => `${f.name}:${f.type}`)).toEqual(['tokens:Uint16']);
  }

  const db = await duck();
  const rows = (await db.runAndReadAll(`SELECT shard, documents::INTEGER AS documents, tokens::INTEGER AS tokens, sha256 FROM read_parquet('${path.join(dir, 'manifest.parquet')}') ORDER BY shard`)).getRowObjects();
  expect(rows.map((r) => r.shard)).toEqual(manifest.map((m) => m.shard));
  expect(rows.reduce((s, r) => s + Number(r.tokens), 0)).toBe(flat.length);
  expect(rows.reduce((s, r) => s + Number(r.documents), 0)).toBe(40);
  for (const r of rows) {
    expect(createHash('sha256').update(fs.readFileSync(path.join(dir, String(r.shard)))).digest('hex')).toBe(r.sha256);
  }
});

test('uint32 shards for vocabularies above 65,536; out-of-range ids are refused', async () => {
  const dir = tmp('u32-');
  const writer = new ShardSetWriter(dir, { tokenizer: 'big', vocabSize: 100_000, eosId: 99_999, split: 'val' });
  writer.addDocument([70_000, 5, 99_999]);
  expect(() => writer.addDocument([100_000])).toThrow(/outside the vocabulary/);
  await writer.close();
  const stream = await readTokenStream(dir);
  expect(stream).toBeInstanceOf(Uint32Array);
  expect(Array.from(stream)).toEqual([70_000, 5, 99_999]);
});

test('a corrupted shard or a missing manifest is reported, not read', async () => {
  const dir = tmp('corrupt-');
  const writer = new ShardSetWriter(dir, { tokenizer: 't', vocabSize: 50257, eosId: 50256, split: 'train' });
  writer.addDocument([1, 2, 3, 50256]);
  await writer.close();
  const shard = path.join(dir, 'shard-00000.arrow');
  const bytes = fs.readFileSync(shard);
  bytes[bytes.length - 20] ^= 0xff;
  fs.writeFileSync(shard, bytes);
  await expect(readTokenStream(dir)).rejects.toThrow(/shard-00000\.arrow: checksum mismatch/);
  fs.rmSync(path.join(dir, 'manifest.parquet'));
  await expect(readTokenStream(dir)).rejects.toThrow(/manifest\.parquet is missing/);
});

test('worker-thread tokenization gives the same stream as one thread; EOS after each document, empty ones skipped', async () => {
  const docs = await brownSlice(30);
  const input = [docs[0], '', ...docs.slice(1), ''];
  const gpt2 = await loadTokenizer('gpt2');
  const run = async (workers: number) => {
    const out: number[] = [];
    const r = await tokenizeStream(docsOf(input), { tokenizer: 'gpt2', workers, batchBytes: 20_000, onDocument: (ids) => out.push(...ids) });
    return { out, r };
  };
  const single = await run(0);
  const parallel = await run(2);
  expect(parallel.out).toEqual(single.out);
  expect(single.r).toMatchObject({ documents: 30, emptyDocuments: 2 });
  expect(single.out.filter((t) => t === 50256)).toHaveLength(30);
  expect(single.out).toEqual(docs.flatMap((d) => [...gpt2.encodeOrdinary(d), 50256]));
}, 60_000);

test('tiny data steps end to end: corpus → trained tokenizer → shard sets', async () => {
  const root = tmp('tinydata-');
  const make = (name: string) => { const d = path.join(root, name); fs.mkdirSync(d); return d; };
  const ctx = (outDir: string, inputs: Record<string, string>) => ({
    node: { runId: 'r', step: path.basename(outDir), item: '', key: 'k' }, outDir,
    inputs: Object.fromEntries(Object.entries(inputs).map(([step, dir]) => [step, [{ step, item: '', matrix: {}, key: step, dir, summary: null }]])),
    progress() {}, signal: new AbortController().signal, devices: { gpus: [], cpus: 2 }, scratchDir: outDir, checkpoint() {}, log() {}, attempt: 1,
  });
  // a slice of Brown as a local corpus keeps this test quick; the full tiny corpus runs in `pipeline run`
  const src = make('src');
  (await brownSlice(60)).forEach((d, i) => fs.writeFileSync(path.join(src, `${String(i).padStart(3, '0')}.txt`), d));
  const corpusDir = make('corpus');
  const corpus = await corpusActivity.run(corpusActivity.params.parse({ sources: [src], valRatio: 0.05 }), ctx(corpusDir, {}));
  expect(corpus).toMatchObject({ documents: 60, train: 57, val: 3 });
  const tokDir = make('tokenizer');
  const tok = await trainTokenizerActivity.run(trainTokenizerActivity.params.parse({ vocabSize: 1024 }), ctx(tokDir, { corpus: corpusDir }));
  expect(tok).toMatchObject({ vocabSize: 1024, eosId: 1023, merges: 767 });
  const shardDir = make('shards');
  const summary = (await tokenizeActivity.run(tokenizeActivity.params.parse({ workers: 2, shardTokens: 50_000 }), ctx(shardDir, { corpus: corpusDir, tokenizer: tokDir }))) as Record<string, any>;
  expect(summary.train.documents).toBe(57);
  expect(summary.val.documents).toBe(3);
  expect(summary.train.shards).toBeGreaterThan(1);
  const train = await readTokenStream(path.join(shardDir, 'train'));
  expect(train.length).toBe(summary.train.tokens);
  expect(readShardMeta(path.join(shardDir, 'train'))).toMatchObject({ vocabSize: 1024, eosId: 1023, dtype: 'uint16', split: 'train' });
  const tokenizer = await loadTokenizer(path.join(shardDir, 'tokenizer'));
  const firstDoc = tokenizer.decode(train.subarray(0, train.indexOf(1023)));
  expect(firstDoc.length).toBeGreaterThan(1000);
  // wrong upstream wiring is a clear, non-retryable error
  await expect(tokenizeActivity.run(tokenizeActivity.params.parse({}), ctx(make('bad'), { corpus: corpusDir }))).rejects.toThrow(/needs an upstream tokenizer artifact/);
}, 60_000);
