// Worker for bench/tokenizer.js: loads one implementation, warms it up on a separate slice (JIT and
// caches), says "ready", then encodes its share of the documents when the parent says "go".
const { parentPort, workerData } = require('node:worker_threads');
const { makeEncoder } = require('./tokenizer-impls');

const { impl, docs, warmup } = workerData;
const encode = makeEncoder(impl);
for (const d of warmup) encode(d);
parentPort.once('message', () => {
  const t0 = process.hrtime.bigint();
  let tokens = 0;
  for (const d of docs) tokens += encode(d).length;
  parentPort.postMessage({ ms: Number(process.hrtime.bigint() - t0) / 1e6, tokens });
});
parentPort.postMessage('ready');
