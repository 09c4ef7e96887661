/**
 * Topic-classifier throughput at the real model's shapes: RoBERTa-base (cardiffnlp/tweet-topic-21-multi's
 * configuration, random weights) classifying tweets, our native engine vs transformers on the same CPU
 * threads, same token ids, same batches. Run:
 *   npx tsx bench/roberta-classifier.ts        (needs bench/.venv with torch + transformers)
 * Env: BENCH_TEXTS (128), BENCH_BATCH (32), BENCH_THREADS (all cores), BENCH_RUNS (3: best of), BENCH_PYTHON.
 * Workloads: TweetTopic test tweets (../shared/data) and 100-token windows (the length of a topic-control
 * sample). Token ids come from the GPT-2 BPE (valid RoBERTa ids; tokenization is not what is timed).
 * Also reports the largest logit difference between the two, a parity check at full size.
 * Output: bench/results/roberta-classifier.txt.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { addon } from '../native/binding';
import { RobertaClassifierModel } from '../native/roberta';
import { loadTokenizerSync } from '../datasets/tokenizer';

const ROOT = path.resolve(__dirname, '..');
const WORK = path.join(os.tmpdir(), 'backpack-bench-roberta');
const MODEL = path.join(WORK, 'roberta-base-random');
const PYTHON = process.env.BENCH_PYTHON ?? path.join(ROOT, 'bench', '.venv', 'bin', 'python');
const PEER = path.join(ROOT, 'bench', 'roberta-classifier-peer.py');
const TEXTS = Number(process.env.BENCH_TEXTS ?? 128);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BATCH = Number(process.env.BENCH_BATCH ?? 32);
const THREADS = Number(process.env.BENCH_THREADS ?? os.cpus().length);
const TWEETS = path.join(ROOT, '..', 'shared', 'data', 'tweet-topic-multilingual-en', 'en_test.jsonl');

function python(args: string[]): string {
  const r = spawnSync(PYTHON, [PEER, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${PEER} ${args[0]} failed:\n${r.stderr}`);
  return r.stdout;
}

function workloads(): { name: string; seqs: number[][] }[] {
  const gpt2 = loadTokenizerSync('gpt2');
  const tweets = fs
    .readFileSync(TWEETS, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l).text as string);
  const wrap = (ids: number[]) => [0, ...ids.slice(0, 510), 2];
  const tweetSeqs = tweets.slice(0, TEXTS).map((t) => wrap(gpt2.encodeOrdinary(t)));
  const stream = tweets.flatMap((t) => gpt2.encodeOrdinary(t + '\n'));
  const windows: number[][] = [];
  for (let i = 0; windows.length < TEXTS && i + 98 <= stream.length; i += 98) windows.push(wrap(stream.slice(i, i + 98)));
  return [
    { name: 'tweets', seqs: tweetSeqs },
    { name: '100-token samples', seqs: windows },
  ];
}

async function ours(model: RobertaClassifierModel, seqs: number[][]): Promise<{ seconds: number; logits: Float32Array }> {
  await model.classify(seqs.slice(0, BATCH)); // warm-up: first touch of the weights and buffers
  const L = model.config.numLabels;
  const logits = new Float32Array(seqs.length * L);
  let seconds = Infinity;
  for (let run = 0; run < RUNS; run++) {
    const t0 = process.hrtime.bigint();
    for (let s = 0; s < seqs.length; s += BATCH) {
      const r = await model.classify(seqs.slice(s, s + BATCH));
      logits.set(r.logits, s * L);
    }
    seconds = Math.min(seconds, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return { seconds, logits };
}

async function main(): Promise<void> {
  fs.mkdirSync(WORK, { recursive: true });
  if (!fs.existsSync(path.join(MODEL, 'model.safetensors'))) python(['make', MODEL]);
  addon().setThreads(THREADS);
  const t0 = Date.now();
  const model = RobertaClassifierModel.load(MODEL);
  const loadMs = Date.now() - t0;
  const lines = [
    `# npx tsx bench/roberta-classifier.ts  (${new Date().toISOString()})`,
    `host: ${os.cpus().length} cores, ${os.cpus()[0].model}; node ${process.version}; ${THREADS} threads both sides; batch ${BATCH}; best of ${RUNS} passes; gemm ${addon().buildInfo().gemm}; load average at start ${os.loadavg()[0].toFixed(1)}`,
    `model: RoBERTa-base shapes of tweet-topic-21-multi, random weights, ${(fs.statSync(model.weightsFile).size / 1e6).toFixed(0)} MB safetensors; our load + sha256 ${loadMs} ms`,
    '',
    `${'workload'.padEnd(20)} ${'texts'.padStart(6)} ${'tokens'.padStart(7)} ${'ours texts/s'.padStart(13)} ${'torch texts/s'.padStart(14)} ${'ours/torch'.padStart(11)} ${'max |Δlogit|'.padStart(13)}`,
  ];
  for (const w of workloads()) {
    const idsFile = path.join(WORK, 'ids.json');
    fs.writeFileSync(idsFile, JSON.stringify(w.seqs));
    const peer = JSON.parse(python(['measure', MODEL, idsFile, String(BATCH), String(THREADS), String(RUNS)]).trim().split('\n').pop()!);
    const mine = await ours(model, w.seqs);
    const L = model.config.numLabels;
    let worst = 0;
    (peer.logits as number[][]).forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - mine.logits[i * L + j])))));
    const tokens = w.seqs.reduce((a, s) => a + s.length, 0);
    const oursRate = w.seqs.length / mine.seconds;
    const peerRate = w.seqs.length / peer.seconds;
    lines.push(
      `${w.name.padEnd(20)} ${String(w.seqs.length).padStart(6)} ${String(tokens).padStart(7)} ${oursRate.toFixed(1).padStart(13)} ${peerRate.toFixed(1).padStart(14)} ${(oursRate / peerRate).toFixed(2).padStart(11)} ${worst.toExponential(2).padStart(13)}`,
    );
    console.log(lines[lines.length - 1]);
    if (lines.length === 6) lines.splice(1, 0, `peer: transformers RobertaForSequenceClassification, torch ${peer.torch} (${peer.threads} threads), padded batches + attention mask, inference_mode`);
  }
  lines.push('', 'ours: native engine, fp32, sequences packed without padding (attention per sequence); same batches, same order.');
  const out = lines.join('\n') + '\n';
  fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'bench', 'results', 'roberta-classifier.txt'), out);
  process.stdout.write(out);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
