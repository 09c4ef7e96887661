/**
 * Token shard sets (Arrow IPC + Parquet manifest), the format training reads:
 *   shard-00000.arrow ...  one column `tokens` (uint16 when the vocabulary fits, else uint32)
 *   manifest.parquet       shard, documents, tokens, sha256
 *   meta.json              {tokenizer, vocabSize, eosId, split, documents, tokens, dtype}
 * A shard holds at most `shardTokens` tokens (default 100M); the stream is cut at that size, so a
 * document may continue in the next shard (`documents` counts the documents that end in a shard).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeData, RecordBatch, Schema, Field, Struct, Uint16, Uint32, tableFromIPC, RecordBatchFileWriter } from 'apache-arrow';
import { readParquetRows, writeParquetTable } from './parquet-table';

export const DEFAULT_SHARD_TOKENS = 100_000_000;
const BATCH_TOKENS = 1 << 20;

export interface ShardSetMeta {
  tokenizer: string;
  vocabSize: number;
  eosId: number;
  split: string;
  documents: number;
  tokens: number;
  dtype: 'uint16' | 'uint32';
  shards: number;
}

export interface ShardInfo { shard: string; documents: number; tokens: number; sha256: string }

export function dtypeFor(vocabSize: number): 'uint16' | 'uint32' {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

function writeFileAtomic(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, data as never);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** Streams token ids into shard files; call `close()` to write the manifest and meta. */
export class ShardSetWriter {
  private readonly dtype: 'uint16' | 'uint32';
  private batch: Uint16Array | Uint32Array;
  private batchFill = 0;
  private batches: (Uint16Array | Uint32Array)[] = [];
  private shardTokens = 0;
  private shardDocuments = 0;
  private readonly shards: ShardInfo[] = [];
  private documents = 0;
  private tokens = 0;

  constructor(
    readonly dir: string,
    private readonly meta: { tokenizer: string; vocabSize: number; eosId: number; split: string },
    private readonly maxShardTokens = DEFAULT_SHARD_TOKENS,
  ) {
    if (!(maxShardTokens >= 1)) throw new Error(`shard size must be ≥ 1 token, got ${maxShardTokens}`);
    fs.mkdirSync(dir, { recursive: true });
    this.dtype = dtypeFor(meta.vocabSize);
    this.batch = this.newBatch();
  }

  private newBatch(): Uint16Array | Uint32Array {
    const n = Math.min(BATCH_TOKENS, this.maxShardTokens);
    return this.dtype === 'uint16' ? new Uint16Array(n) : new Uint32Array(n);
  }

  /** Appends one document's ids (the caller has appended EOS). */
  addDocument(ids: ArrayLike<number>): void {
    let counted = false;
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k];
      if (id >= this.meta.vocabSize || id < 0) throw new Error(`token id ${id} is outside the vocabulary (${this.meta.vocabSize})`);
      this.batch[this.batchFill++] = id;
      this.shardTokens++;
      if (this.batchFill === this.batch.length) this.flushBatch();
      if (this.shardTokens === this.maxShardTokens) {
        counted = k === ids.length - 1;
        this.closeShard(counted ? 1 : 0);
      }
    }
    if (!counted) this.shardDocuments++;
    this.documents++;
    this.tokens += ids.length;
  }

  private flushBatch(): void {
    if (this.batchFill === 0) return;
    this.batches.push(this.batch.subarray(0, this.batchFill));
    this.batch = this.newBatch();
    this.batchFill = 0;
  }

  private closeShard(documentEndsHere: number): void {
    this.flushBatch();
    const name = `shard-${String(this.shards.length).padStart(5, '0')}.arrow`;
    const type = this.dtype === 'uint16' ? new Uint16() : new Uint32();
    const schema = new Schema([new Field('tokens', type, false)]);
    const recordBatches = this.batches.map((values) => {
      const column = makeData({ type, length: values.length, nullCount: 0, data: values });
      return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: values.length, nullCount: 0, children: [column] }));
    });
    const bytes = RecordBatchFileWriter.writeAll(recordBatches).toUint8Array(true);
    writeFileAtomic(path.join(this.dir, name), bytes);
    this.shards.push({ shard: name, documents: this.shardDocuments + documentEndsHere, tokens: this.shardTokens, sha256: createHash('sha256').update(bytes).digest('hex') });
    this.batches = [];
    this.shardTokens = 0;
    this.shardDocuments = 0;
  }

  async close(): Promise<ShardSetMeta> {
    if (this.shardTokens > 0 || this.shards.length === 0) this.closeShard(0);
    await writeParquetTable(path.join(this.dir, 'manifest.parquet'), {
      shard: { type: 'UTF8' }, documents: { type: 'INT64' }, tokens: { type: 'INT64' }, sha256: { type: 'UTF8' },
    }, this.shards as unknown as Record<string, unknown>[]);
    const meta: ShardSetMeta = { ...this.meta, documents: this.documents, tokens: this.tokens, dtype: this.dtype, shards: this.shards.length };
    writeFileAtomic(path.join(this.dir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    return meta;
  }
}

export function readShardMeta(dir: string): ShardSetMeta {
  const file = path.join(dir, 'meta.json');
  if (!fs.existsSync(file)) throw new Error(`token shard set ${dir}: meta.json is missing`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as ShardSetMeta;
}

export async function readManifest(dir: string): Promise<ShardInfo[]> {
  const file = path.join(dir, 'manifest.parquet');
  if (!fs.existsSync(file)) throw new Error(`token shard set ${dir}: manifest.parquet is missing`);
  return (await readParquetRows(file)).map((r) => ({ shard: String(r.shard), documents: Number(r.documents), tokens: Number(r.tokens), sha256: String(r.sha256) }));
}

/** One shard's tokens, checked against its manifest entry (sha256 and count). */
export function readShardTokens(dir: string, info: ShardInfo, dtype: 'uint16' | 'uint32'): Uint16Array | Uint32Array {
  const file = path.join(dir, info.shard);
  if (!fs.existsSync(file)) throw new Error(`token shard set ${dir}: ${info.shard} is missing`);
  const bytes = fs.readFileSync(file);
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== info.sha256) throw new Error(`token shard ${file}: checksum mismatch (manifest ${info.sha256}, file ${sha}); the shard is corrupt`);
  const table = tableFromIPC(bytes);
  const column = table.getChild('tokens');
  if (!column) throw new Error(`token shard ${file}: no "tokens" column`);
  if (column.length !== info.tokens) throw new Error(`token shard ${file}: ${column.length} tokens, manifest says ${info.tokens}`);
  const out = dtype === 'uint16' ? new Uint16Array(info.tokens) : new Uint32Array(info.tokens);
  let o = 0;
  for (const chunk of column.data) {
    const values = chunk.values.subarray(0, chunk.length);
    if (values.BYTES_PER_ELEMENT !== out.BYTES_PER_ELEMENT) throw new Error(`token shard ${file}: column type does not match meta.json dtype ${dtype}`);
    out.set(values as Uint16Array & Uint32Array, o);
    o += chunk.length;
  }
  return out;
}

/**
 * Shards one at a time (verified as they are read): for streams too large to hold at once
 * (OpenWebText's train split is 9 billion tokens).
 */
export async function* iterateTokenShards(dir: string): AsyncIterable<{ info: ShardInfo; tokens: Uint16Array | Uint32Array }> {
  const meta = readShardMeta(dir);
  for (const info of await readManifest(dir)) yield { info, tokens: readShardTokens(dir, info, meta.dtype) };
}

/** All shards of a set concatenated, each checked against its manifest sha256 and token count. */
export async function readTokenStream(dir: string): Promise<Uint16Array | Uint32Array> {
  const meta = readShardMeta(dir);
  const manifest = await readManifest(dir);
  const total = manifest.reduce((s, m) => s + m.tokens, 0);
  if (total !== meta.tokens) throw new Error(`token shard set ${dir}: manifest counts ${total} tokens, meta.json says ${meta.tokens}`);
  const out = meta.dtype === 'uint16' ? new Uint16Array(total) : new Uint32Array(total);
  let o = 0;
  for (const m of manifest) {
    const tokens = readShardTokens(dir, m, meta.dtype);
    out.set(tokens as Uint16Array & Uint32Array, o);
    o += tokens.length;
  }
  return out;
}
