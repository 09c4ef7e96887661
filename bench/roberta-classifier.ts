/**
 * Topic-classifier throughput at the real model's shapes: RoBERTa-base (cardiffnlp/tweet-topic-21-multi's
 * configuration, random weights) classifying tweets, our native engine vs transformers on the same CPU
 * threads, same token ids, same batches. Run:
 *   npx tsx bench/roberta-classifier.ts        (needs bench/.venv with torch + transformers)
 * Env: BENCH_TEXTS (128), BENCH_BATCH (32), BENCH_THREADS (all cores), BENCH_RUNS (3: best of), BENCH_PYTHON.
 * The model directory gets a RoBERTa-style tokenizer built from GPT-2's BPE (RoBERTa's merges are GPT-2's; its
 * vocab.json numbers the same tokens differently: specials first, then the tokens in another order, <mask>
 * last). First the tokenizer: all TweetTopic tweets of ../shared/data through ours and transformers' (ids must
 * be equal; texts/s of each). Then classification of tweets and of 100-token windows (the length of a
 * topic-control sample), with the largest logit difference between the two, a parity check at full size.
 * Output: bench/results/roberta-classifier.txt.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { addon } from '../native/binding';
import { RobertaClassifierModel } from '../native/roberta';
import { loadGpt2Model, renderVocabBpe } from '../datasets/tokenizer/gpt2';
import { bytesToMapped } from '../datasets/tokenizer/byte-map';
import { loadRobertaTokenizer, type RobertaTokenizer } from '../datasets/tokenizer/roberta';

const ROOT = path.resolve(__dirname, '..');
const WORK = path.join(os.tmpdir(), 'backpack-bench-roberta');
const MODEL = path.join(WORK, 'roberta-base-random');
const PYTHON = process.env.BENCH_PYTHON ?? path.join(ROOT, 'bench', '.venv', 'bin', 'python');
const PEER = path.join(ROOT, 'bench', 'roberta-classifier-peer.py');
const TEXTS = Number(process.env.BENCH_TEXTS ?? 128);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BATCH = Number(process.env.BENCH_BATCH ?? 32);
const THREADS = Number(process.env.BENCH_THREADS ?? os.cpus().length);
const TWEET_DIR = path.join(ROOT, '..', 'shared', 'data', 'tweet-topic-multilingual-en');

function python(args: string[]): string {
  const r = spawnSync(PYTHON, [PEER, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${PEER} ${args[0]} failed:\n${r.stderr}`);
  return r.stdout;
}

function readTweets(file: string): string[] {
  return fs
    .readFileSync(path.join(TWEET_DIR, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l).text as string);
}

/** vocab.json + merges.txt in RoBERTa's layout over GPT-2's BPE (ids 0-3 specials, shuffled tokens, 4 fillers, <mask>). */
function writeTokenizerFiles(dir: string): void {
  const gpt2 = loadGpt2Model();
  const order = gpt2.tokens.map((_, i) => i);
  let seed = 12345;
  for (let i = order.length - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const j = seed % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const vocab: Record<string, number> = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3 };
  for (const id of order) vocab[bytesToMapped(gpt2.tokens[id])] = Object.keys(vocab).length;
  for (let k = 0; Object.keys(vocab).length < 50264; k++) vocab[`madeupword${String(k).padStart(4, '0')}`] = Object.keys(vocab).length;
  vocab['<mask>'] = 50264;
  fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocab));
  fs.writeFileSync(path.join(dir, 'merges.txt'), renderVocabBpe(gpt2));
}

/** Our tokenizer against transformers' on every tweet: equal ids, and texts/s of each. */
function tokenizerParity(tok: RobertaTokenizer, lines: string[]): void {
  const texts = [...readTweets('en_1000.jsonl'), ...readTweets('en_test.jsonl'), ...readTweets('en_train.jsonl')];
  const file = path.join(WORK, 'texts.json');
  fs.writeFileSync(file, JSON.stringify(texts));
  const peer = JSON.parse(python(['tokenize', MODEL, file, '512']).trim().split('\n').pop()!) as { seconds: number; ids: number[][] };
  const t0 = process.hrtime.bigint();
  const ours = texts.map((t) => tok.encode(t, 512));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const differ = ours.filter((ids, i) => JSON.stringify(ids) !== JSON.stringify(peer.ids[i])).length;
  const tokens = ours.reduce((a, s) => a + s.length, 0);
  lines.push(
    `tokenizer: ${texts.length} tweets, ${tokens} tokens; ids differing from transformers: ${differ}; ` +
      `ours ${(texts.length / seconds).toFixed(0)} texts/s, transformers (RobertaTokenizerFast, one call per text) ${(texts.length / peer.seconds).toFixed(0)} texts/s (first pass, cold caches)`,
  );
  console.log(lines[lines.length - 1]);
}

function workloads(tok: RobertaTokenizer): { name: string; seqs: number[][] }[] {
  const tweets = readTweets('en_test.jsonl');
  const tweetSeqs = tweets.slice(0, TEXTS).map((t) => tok.encode(t, 512));
  const stream = tweets.flatMap((t) => tok.encodeBody(t + '\n'));
  const windows: number[][] = [];
  for (let i = 0; windows.length < TEXTS && i + 98 <= stream.length; i += 98) windows.push([0, ...stream.slice(i, i + 98), 2]);
  return [
    { name: 'tweets', seqs: tweetSeqs },
    { name: '100-token samples', seqs: windows },
  ];
}

async function ours(model: RobertaClassifierModel, seqs: number[][]): Promise<{ seconds: number; cpuSeconds: number; logits: Float32Array }> {
  await model.classify(seqs.slice(0, BATCH)); // warm-up: first touch of the weights and buffers
  const L = model.config.numLabels;
  const logits = new Float32Array(seqs.length * L);
  let seconds = Infinity;
  let cpuSeconds = Infinity;
  for (let run = 0; run < RUNS; run++) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    for (let s = 0; s < seqs.length; s += BATCH) {
      const r = await model.classify(seqs.slice(s, s + BATCH));
      logits.set(r.logits, s * L);
    }
    const c = process.cpuUsage(c0);
    seconds = Math.min(seconds, Number(process.hrtime.bigint() - t0) / 1e9);
    cpuSeconds = Math.min(cpuSeconds, (c.user + c.system) / 1e6);
  }
  return { seconds, cpuSeconds, logits };
}

async function main(): Promise<void> {
  fs.mkdirSync(WORK, { recursive: true });
  if (!fs.existsSync(path.join(MODEL, 'model.safetensors'))) python(['make', MODEL]);
  if (!fs.existsSync(path.join(MODEL, 'vocab.json'))) writeTokenizerFiles(MODEL);
  const tok = loadRobertaTokenizer(MODEL);
  addon().setThreads(THREADS);
  const t0 = Date.now();
  const model = RobertaClassifierModel.load(MODEL);
  const loadMs = Date.now() - t0;
  const lines = [
    `# npx tsx bench/roberta-classifier.ts  (${new Date().toISOString()})`,
    `host: ${os.cpus().length} cores, ${os.cpus()[0].model}; node ${process.version}; ${THREADS} threads both sides; batch ${BATCH}; best of ${RUNS} passes; gemm ${addon().buildInfo().gemm}; load average at start ${os.loadavg()[0].toFixed(1)}`,
    `model: RoBERTa-base shapes of tweet-topic-21-multi, random weights, ${(fs.statSync(model.weightsFile).size / 1e6).toFixed(0)} MB safetensors; our load + sha256 ${loadMs} ms`,
  ];
  tokenizerParity(tok, lines);
  lines.push(
    '',
    `${'workload'.padEnd(18)} ${'texts'.padStart(5)} ${'tokens'.padStart(6)} | ${'texts/s: ours'.padStart(13)} ${'torch'.padStart(6)} ${'sorted'.padStart(6)} | ${'CPU ms/text: ours'.padStart(17)} ${'torch'.padStart(6)} ${'sorted'.padStart(6)} | ${'ours/torch'.padStart(10)} ${'ours/sorted'.padStart(11)} | ${'max |Δlogit|'.padStart(12)}`,
  );
  const header = lines.length;
  for (const w of workloads(tok)) {
    const idsFile = path.join(WORK, 'ids.json');
    fs.writeFileSync(idsFile, JSON.stringify(w.seqs));
    const peer = JSON.parse(python(['measure', MODEL, idsFile, String(BATCH), String(THREADS), String(RUNS)]).trim().split('\n').pop()!);
    const peerSorted = JSON.parse(python(['measure', MODEL, idsFile, String(BATCH), String(THREADS), String(RUNS), 'sorted']).trim().split('\n').pop()!);
    const mine = await ours(model, w.seqs);
    const L = model.config.numLabels;
    let worst = 0;
    for (const p of [peer, peerSorted]) (p.logits as number[][]).forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - mine.logits[i * L + j])))));
    const tokens = w.seqs.reduce((a, s) => a + s.length, 0);
    const oursRate = w.seqs.length / mine.seconds;
    const peerRate = w.seqs.length / peer.seconds;
    const sortedRate = w.seqs.length / peerSorted.seconds;
    const cpuMs = (s: number) => ((1000 * s) / w.seqs.length).toFixed(0);
    // Ratios from CPU time: on a shared machine it tracks the work done far better than wall time does.
    lines.push(
      `${w.name.padEnd(18)} ${String(w.seqs.length).padStart(5)} ${String(tokens).padStart(6)} | ${oursRate.toFixed(1).padStart(13)} ${peerRate.toFixed(1).padStart(6)} ${sortedRate.toFixed(1).padStart(6)} | ` +
        `${cpuMs(mine.cpuSeconds).padStart(17)} ${cpuMs(peer.cpuSeconds).padStart(6)} ${cpuMs(peerSorted.cpuSeconds).padStart(6)} | ` +
        `${(peer.cpuSeconds / mine.cpuSeconds).toFixed(2).padStart(10)} ${(peerSorted.cpuSeconds / mine.cpuSeconds).toFixed(2).padStart(11)} | ${worst.toExponential(2).padStart(12)}`,
    );
    console.log(lines[lines.length - 1]);
    if (lines.length === header + 1) lines.splice(1, 0, `peer: transformers RobertaForSequenceClassification, torch ${peer.torch} (${peer.threads} threads), padded batches + attention mask, inference_mode`);
  }
  lines.push(
    '',
    'ours: native engine, fp32, sequences packed without padding (attention per sequence), batches in the given order.',
    'torch: the same batches, padded to their longest text; sorted: torch with batches cut from the texts sorted by length (least padding).',
    'ours/torch, ours/sorted: speed ratio from CPU time (all threads; > 1 = ours faster); wall texts/s shown too, noisy on a shared machine.',
  );
  const out = lines.join('\n') + '\n';
  fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'bench', 'results', 'roberta-classifier.txt'), out);
  process.stdout.write(out);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
