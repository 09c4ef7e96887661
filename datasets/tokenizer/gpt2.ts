/**
 * The exact GPT-2 tokenizer (r50k: 50,257 ids, PAPER.md §9.9).
 *
 * No network is needed: the vocabulary comes from the `gpt-tokenizer` npm package, which ships the
 * GPT-2 ranks (id → token bytes). GPT-2's ids are merge ranks (id 256 + r is made by merge r), so the
 * merge list is recovered exactly: the merge that made token r is the pair the BPE of its bytes, using
 * merges < r only, ends with. The conversion runs once and is cached as a compact binary file
 * (~0.5 MB); `verifyGpt2Files` in the tests re-creates vocab.bpe from it and checks the published sha256.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BytePairEncoder, type BpeModel } from './bpe';
import { bytesToMapped } from './byte-map';

export const GPT2_VOCAB_SIZE = 50257;
export const GPT2_EOS_ID = 50256;
const MAGIC = 'BPKBPE01';

/** Where converted vocabularies are cached (override with PIPELINE_CACHE_DIR). */
export function tokenizerCacheDir(): string {
  const base = process.env.PIPELINE_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'backpack-pipeline');
  return path.join(base, 'tokenizers');
}

function sourceRanksPath(): string {
  return require.resolve('gpt-tokenizer/cjs/bpeRanks/r50k_base');
}

/** id → token bytes, from the npm package (strings are UTF-8 text, arrays are raw bytes). */
function loadSourceTokens(): Uint8Array[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ranks: (string | number[])[] = require('gpt-tokenizer/cjs/bpeRanks/r50k_base').default;
  if (!Array.isArray(ranks) || ranks.length !== GPT2_EOS_ID) {
    throw new Error(`gpt-tokenizer's r50k ranks have ${Array.isArray(ranks) ? ranks.length : 'no'} entries, expected ${GPT2_EOS_ID}`);
  }
  const enc = new TextEncoder();
  return ranks.map((t) => (typeof t === 'string' ? enc.encode(t) : Uint8Array.from(t)));
}

/** Recovers GPT-2's ordered merge list from rank-ordered token bytes (see the file comment). */
export function recoverMerges(tokens: Uint8Array[], firstMergedId = 256): Uint32Array {
  const merges = new Uint32Array((tokens.length - firstMergedId) * 3);
  const byteToId = new Int32Array(256).fill(-1);
  for (let id = 0; id < firstMergedId; id++) {
    if (tokens[id].length !== 1) throw new Error(`token ${id} should be a single byte`);
    byteToId[tokens[id][0]] = id;
  }
  // pair key → rank for the merges recovered so far
  const pairRank = new Map<number, number>();
  const key = (a: number, b: number) => a * 65536 + b;
  for (let id = firstMergedId; id < tokens.length; id++) {
    const bytes = tokens[id];
    let parts = Array.from(bytes, (b) => byteToId[b]);
    while (parts.length > 2) {
      let best = -1;
      let at = -1;
      for (let k = 0; k + 1 < parts.length; k++) {
        const r = pairRank.get(key(parts[k], parts[k + 1]));
        if (r !== undefined && (best < 0 || r < best)) {
          best = r;
          at = k;
        }
      }
      if (best < 0) break;
      parts = [...parts.slice(0, at), merges[3 * best + 2], ...parts.slice(at + 2)];
    }
    if (parts.length !== 2) throw new Error(`cannot recover the merge that creates token ${id} (${parts.length} parts)`);
    const r = id - firstMergedId;
    merges[3 * r] = parts[0];
    merges[3 * r + 1] = parts[1];
    merges[3 * r + 2] = id;
    pairRank.set(key(parts[0], parts[1]), r);
  }
  return merges;
}

/** Compact form: magic, source hash, token count, lengths, bytes, merges. */
function serialize(model: BpeModel, sourceHash: string): Buffer {
  const n = model.tokens.length;
  const totalBytes = model.tokens.reduce((s, t) => s + t.length, 0);
  const header = Buffer.alloc(8 + 64 + 12);
  header.write(MAGIC, 0, 'latin1');
  header.write(sourceHash, 8, 'latin1');
  header.writeUInt32LE(n, 72);
  header.writeUInt32LE(model.merges.length / 3, 76);
  header.writeUInt32LE(model.eosId, 80);
  const lengths = Buffer.alloc(n * 2);
  model.tokens.forEach((t, i) => lengths.writeUInt16LE(t.length, i * 2));
  const bytes = Buffer.alloc(totalBytes);
  let o = 0;
  for (const t of model.tokens) {
    bytes.set(t, o);
    o += t.length;
  }
  return Buffer.concat([header, lengths, bytes, Buffer.from(model.merges.buffer, model.merges.byteOffset, model.merges.byteLength)]);
}

function deserialize(buf: Buffer, sourceHash: string): BpeModel | null {
  if (buf.length < 84 || buf.toString('latin1', 0, 8) !== MAGIC || buf.toString('latin1', 8, 72) !== sourceHash) return null;
  const n = buf.readUInt32LE(72);
  const nMerges = buf.readUInt32LE(76);
  const eosId = buf.readUInt32LE(80);
  let o = 84;
  const tokens: Uint8Array[] = new Array(n);
  const lengthsAt = o;
  o += n * 2;
  for (let i = 0; i < n; i++) {
    const len = buf.readUInt16LE(lengthsAt + i * 2);
    tokens[i] = new Uint8Array(buf.buffer, buf.byteOffset + o, len);
    o += len;
  }
  if (buf.length !== o + nMerges * 12) return null;
  const merges = new Uint32Array(nMerges * 3);
  for (let k = 0; k < nMerges * 3; k++) merges[k] = buf.readUInt32LE(o + k * 4);
  return { tokens, merges, eosId };
}

function writeAtomic(file: string, data: Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

let cachedModel: BpeModel | null = null;

/** The GPT-2 BPE model, from the cache file when present, else converted (and cached). */
export function loadGpt2Model(): BpeModel {
  if (cachedModel) return cachedModel;
  const sourceHash = createHash('sha256').update(fs.readFileSync(sourceRanksPath())).digest('hex');
  const file = path.join(tokenizerCacheDir(), `gpt2-r50k-${sourceHash.slice(0, 16)}.bin`);
  let model: BpeModel | null = null;
  if (fs.existsSync(file)) model = deserialize(fs.readFileSync(file), sourceHash);
  if (!model) {
    const tokens = loadSourceTokens();
    model = { tokens, merges: recoverMerges(tokens), eosId: GPT2_EOS_ID };
    try {
      writeAtomic(file, serialize(model, sourceHash));
    } catch {
      // a read-only home is fine: we just convert again next time
    }
  }
  cachedModel = model;
  return model;
}

export function createGpt2Tokenizer(): BytePairEncoder {
  return new BytePairEncoder('gpt2', loadGpt2Model());
}

/** GPT-2's `vocab.bpe` (= HF merges.txt) re-created from the model: the published sha256 checks it. */
export function renderVocabBpe(model: BpeModel): string {
  const lines = ['#version: 0.2'];
  for (let r = 0; r < model.merges.length / 3; r++) {
    lines.push(`${bytesToMapped(model.tokens[model.merges[3 * r]])} ${bytesToMapped(model.tokens[model.merges[3 * r + 1]])}`);
  }
  return lines.join('\n') + '\n';
}
