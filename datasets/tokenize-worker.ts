/** Worker thread: tokenizes batches of documents with the tokenizer named in workerData. */
import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizerSync } from './tokenizer';

export interface TokenizeBatch { seq: number; docs: string[] }
export interface TokenizedBatch { seq: number; ids: Uint32Array; lengths: Uint32Array }

if (parentPort) {
  const tokenizer = loadTokenizerSync((workerData as { tokenizer: string }).tokenizer);
  const port = parentPort;
  port.on('message', (msg: TokenizeBatch) => {
    const parts: number[][] = msg.docs.map((d) => tokenizer.encodeOrdinary(d));
    const total = parts.reduce((s, p) => s + p.length, 0);
    const ids = new Uint32Array(total);
    const lengths = new Uint32Array(parts.length);
    let o = 0;
    parts.forEach((p, i) => {
      ids.set(p, o);
      o += p.length;
      lengths[i] = p.length;
    });
    const reply: TokenizedBatch = { seq: msg.seq, ids, lengths };
    port.postMessage(reply, [ids.buffer, lengths.buffer]);
  });
}
