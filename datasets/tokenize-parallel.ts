/**
 * Tokenizes a document stream on several worker threads, preserving document order. Documents are
 * sent in batches (~256 KB of text); at most 2 batches per worker are in flight, so memory stays
 * bounded however large the corpus. With workers = 0 everything runs on the calling thread.
 *
 * Documents are encoded in ordinary mode (a literal `<|endoftext|>` in a web page is text, not a
 * boundary) and `eosId` is appended after every non-empty document (PAPER.md §5). Empty documents
 * are skipped and counted.
 */
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { loadTokenizerSync } from './tokenizer';
import type { TokenizeBatch, TokenizedBatch } from './tokenize-worker';
import { spawnModuleWorker } from './worker-spawn';

export interface TokenizeStreamOptions {
  /** 'gpt2' or a tokenizer artifact directory. */
  tokenizer: string;
  workers: number;
  /** Receives each document's ids including the trailing EOS, in document order. */
  onDocument(ids: Uint32Array): void;
  onProgress?(documents: number, bytes: number): void;
  signal?: AbortSignal;
  batchBytes?: number;
}

export interface TokenizeStreamResult { documents: number; emptyDocuments: number; characters: number; tokens: number }

export async function tokenizeStream(docs: AsyncIterable<string>, options: TokenizeStreamOptions): Promise<TokenizeStreamResult> {
  const eosId = loadTokenizerSync(options.tokenizer).eosId;
  const result: TokenizeStreamResult = { documents: 0, emptyDocuments: 0, characters: 0, tokens: 0 };
  const emit = (ids: Uint32Array, lengths: Uint32Array) => {
    let o = 0;
    for (let i = 0; i < lengths.length; i++) {
      const doc = new Uint32Array(lengths[i] + 1);
      doc.set(ids.subarray(o, o + lengths[i]));
      doc[lengths[i]] = eosId;
      o += lengths[i];
      options.onDocument(doc);
      result.documents++;
      result.tokens += doc.length;
    }
    options.onProgress?.(result.documents, result.characters);
  };
  const batchBytes = options.batchBytes ?? 256 * 1024;

  if (options.workers <= 0) {
    const tokenizer = loadTokenizerSync(options.tokenizer);
    for await (const doc of docs) {
      if (options.signal?.aborted) throw new Error('tokenization cancelled');
      if (doc.length === 0) { result.emptyDocuments++; continue; }
      result.characters += doc.length;
      const ids = Uint32Array.from(tokenizer.encodeOrdinary(doc));
      emit(ids, Uint32Array.of(ids.length));
    }
    return result;
  }

  const workers: Worker[] = [];
  for (let w = 0; w < options.workers; w++) workers.push(spawnModuleWorker(path.join(__dirname, 'tokenize-worker'), { tokenizer: options.tokenizer }));
  const pending = new Map<number, TokenizedBatch>();
  let nextToEmit = 0;
  let sent = 0;
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const notify = () => { const w = wake; wake = null; w?.(); };
  for (const w of workers) {
    w.on('message', (m: TokenizedBatch) => { pending.set(m.seq, m); notify(); });
    w.on('error', (e) => { failure = new Error(`tokenizer worker failed: ${e.message}`); notify(); });
  }
  const drain = () => {
    for (let m = pending.get(nextToEmit); m; m = pending.get(nextToEmit)) {
      pending.delete(nextToEmit);
      emit(m.ids, m.lengths);
      nextToEmit++;
    }
  };
  const waitForRoom = async (limit: number) => {
    for (;;) {
      drain();
      if (failure) throw failure;
      if (sent - nextToEmit <= limit) return;
      await new Promise<void>((resolve) => { wake = resolve; });
    }
  };
  try {
    let batch: string[] = [];
    let size = 0;
    const send = async () => {
      if (batch.length === 0) return;
      await waitForRoom(workers.length * 2 - 1);
      const msg: TokenizeBatch = { seq: sent, docs: batch };
      workers[sent % workers.length].postMessage(msg);
      sent++;
      batch = [];
      size = 0;
    };
    for await (const doc of docs) {
      if (options.signal?.aborted) throw new Error('tokenization cancelled');
      if (doc.length === 0) { result.emptyDocuments++; continue; }
      result.characters += doc.length;
      batch.push(doc);
      size += doc.length;
      if (size >= batchBytes) await send();
    }
    await send();
    await waitForRoom(0);
    return result;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
