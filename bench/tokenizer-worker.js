// Worker for bench/tokenizer.js: encodes its share of the documents with one implementation and
// reports the time spent (after a warm-up pass on a separate slice, so caches and JIT are warm).
const { parentPort, workerData } = require('node:worker_threads');
const { makeEncoder } = require('./tokenizer-impls');

const { impl, docs, warmup } = workerData;
const encode = makeEncoder(impl);
for (const d of warmup) encode(d);
const t0 = process.hrtime.bigint();
let tokens = 0;
for (const d of docs) tokens += encode(d).length;
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
parentPort.postMessage({ ms, tokens });
