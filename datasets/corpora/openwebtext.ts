/**
 * OpenWebText (PAPER.md §5): the Hugging Face parquet conversion of `Skylion007/openwebtext`
 * (config plain_text, split train, column `text`), downloaded shard by shard with resume and sha256
 * checks, or an existing local directory of parquet/jsonl/txt files.
 */
import * as path from 'node:path';
import { downloadFile } from '../download';
import { localCorpus } from './local';
import type { Corpus } from './types';

export const OWT_REPO = 'Skylion007/openwebtext';
/** HF lists the converted shards here (JSON array of URLs). */
export const OWT_PARQUET_LIST = `https://huggingface.co/api/datasets/${OWT_REPO}/parquet/plain_text/train`;

export interface OpenWebTextOptions {
  /** A local directory with the corpus; when set nothing is downloaded. */
  localDir?: string;
  /** Where downloaded shards are kept. */
  cacheDir: string;
  /** Replaces https://huggingface.co (a directory or http(s) base URL laid out like the hub). */
  mirror?: string;
  /** Only the first n shards (for smoke runs). */
  maxShards?: number;
  onProgress?: (message: string, fraction?: number) => void;
}

/** Shard URLs of the parquet conversion, from the hub API (or `mirror`/api/... when mirrored). */
async function listShards(mirror?: string): Promise<string[]> {
  const base = mirror?.replace(/\/+$/, '');
  const listUrl = base ? OWT_PARQUET_LIST.replace('https://huggingface.co', base) : OWT_PARQUET_LIST;
  const res = await fetch(listUrl);
  if (!res.ok) throw new Error(`openwebtext: listing ${listUrl} failed: HTTP ${res.status}`);
  const urls: unknown = await res.json();
  if (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string')) throw new Error(`openwebtext: ${listUrl} did not return a JSON list of URLs`);
  // A mirror serves the shards under the same paths as the hub.
  return base ? (urls as string[]).map((u) => u.replace('https://huggingface.co', base)) : (urls as string[]);
}

export async function openWebTextCorpus(options: OpenWebTextOptions): Promise<Corpus> {
  if (options.localDir) return { ...localCorpus(options.localDir), name: 'openwebtext' };
  let urls = await listShards(options.mirror);
  if (options.maxShards !== undefined) urls = urls.slice(0, options.maxShards);
  const dir = path.join(options.cacheDir, 'openwebtext');
  for (let i = 0; i < urls.length; i++) {
    // The hub reports each LFS file's sha256 (X-Linked-Etag); downloadFile verifies against it.
    await downloadFile({ url: urls[i], dest: path.join(dir, `${String(i).padStart(5, '0')}.parquet`), sha256: 'from-server', onProgress: (f) => options.onProgress?.(`openwebtext shard ${i + 1}/${urls.length}`, (i + f) / urls.length) });
  }
  return { ...localCorpus(dir), name: 'openwebtext' };
}

/**
 * The MAUVE reference prefix of a validation document (PAPER.md §5, §6.5):
 * decode(encode("<|endoftext|>" + doc)[:length]), specials kept.
 */
export function validationPrefix(doc: string, tokenizer: { encode(t: string): number[]; decode(ids: ArrayLike<number>): string }, length = 100): string {
  return tokenizer.decode(tokenizer.encode(`<|endoftext|>${doc}`).slice(0, length));
}
