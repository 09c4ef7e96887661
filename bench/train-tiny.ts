/**
 * The tiny profile end to end on 2 cores: prepares the tiny corpus (brown + nlp-corpus, BPE 8192) with the data
 * activities, then trains a Backpack and a Transformer with `model.train` and prints validation loss against the
 * corpus unigram entropy. Data is cached in $PIPELINE_CACHE_DIR/bench-tiny (default: the OS temp dir).
 * Run: npx tsx bench/train-tiny.ts [--steps 300] [--batch 8] [--seq 128] [--lr 3e-3] [--warmup 30] [--dropout 0.1] [--arch both]
 *      [--precision fp32|bf16|both]   (both: the same run with exact fp32 and with AMX bf16 matmuls, to compare the loss)
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { corpusActivity, tokenizeActivity, trainTokenizerActivity } from '../activities/data';
import { trainActivity } from '../activities/train';
import type { ActivityContext, AnyActivity, InputArtifact } from '../pipelines/activity';

function ctxFor(dir: string, inputs: Record<string, InputArtifact[]>, onProgress?: (m: string) => void): ActivityContext {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'out'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'scratch'), { recursive: true });
  return {
    node: { runId: 'bench', step: path.basename(dir), item: '', key: path.basename(dir) },
    outDir: path.join(dir, 'out'),
    inputs,
    progress: (u) => u.message && onProgress?.(u.message),
    signal: new AbortController().signal,
    devices: { gpus: [], cpus: 2 },
    scratchDir: path.join(dir, 'scratch'),
    checkpoint: () => undefined,
    log: (m) => console.log(m),
    attempt: 1,
  };
}

async function step(root: string, name: string, activity: AnyActivity, params: unknown, inputs: Record<string, InputArtifact[]> = {}): Promise<InputArtifact> {
  const dir = path.join(root, name);
  const done = path.join(dir, 'out', '.done.json');
  if (!fs.existsSync(done)) {
    const t0 = Date.now();
    const summary = await activity.run(activity.params.parse(params), ctxFor(dir, inputs));
    fs.writeFileSync(done, JSON.stringify(summary));
    console.log(`${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  return { step: name, item: '', matrix: {}, key: name, dir: path.join(dir, 'out'), summary: JSON.parse(fs.readFileSync(done, 'utf8')) };
}

async function main() {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '300' }, batch: { type: 'string', default: '8' }, seq: { type: 'string', default: '128' },
      lr: { type: 'string', default: '3e-3' }, warmup: { type: 'string', default: '30' }, dropout: { type: 'string', default: '0.1' },
      d: { type: 'string', default: '128' }, layers: { type: 'string', default: '4' }, heads: { type: 'string', default: '4' }, senses: { type: 'string', default: '16' },
      arch: { type: 'string', default: 'both' }, eval: { type: 'string', default: '100' }, precision: { type: 'string', default: 'fp32' }, seed: { type: 'string', default: '1111' },
    },
  });
  const root = path.join(process.env.PIPELINE_CACHE_DIR ?? os.tmpdir(), 'bench-tiny');
  const corpus = await step(root, 'corpus', corpusActivity as unknown as AnyActivity, {});
  const tok = await step(root, 'tokenizer', trainTokenizerActivity as unknown as AnyActivity, { vocabSize: 8192 }, { corpus: [corpus] });
  const data = await step(root, 'tokenize', tokenizeActivity as unknown as AnyActivity, { workers: 1 }, { corpus: [corpus], tokenizer: [tok] });
  console.log('data:', JSON.stringify(data.summary));
  const precisions = values.precision === 'both' ? ['fp32', 'bf16'] : [values.precision!];
  for (const arch of values.arch === 'both' ? ['backpack', 'gpt2'] : [values.arch!])
  for (const precision of precisions) {
    const params = {
      precision,
      arch, nEmbd: Number(values.d), nLayer: Number(values.layers), nHead: Number(values.heads), numSenses: Number(values.senses),
      steps: Number(values.steps), batchSize: Number(values.batch), seqLen: Number(values.seq), lr: Number(values.lr), warmupSteps: Number(values.warmup),
      dropout: Number(values.dropout), evalInterval: Number(values.eval), checkpointInterval: 0, logInterval: 10, seed: Number(values.seed),
    };
    const t0 = Date.now();
    let last = 0;
    const ctx = ctxFor(path.join(root, `train-${arch}-${precision}`), { tokenize: [data] }, (m) => {
      if (Date.now() - last > 15000) {
        last = Date.now();
        console.log(`  ${arch}: ${m}`);
      }
    });
    const s = (await trainActivity.run(trainActivity.params.parse(params), ctx)) as { valLoss: number; unigramEntropy: number; params: number; tokensPerSecond: number };
    console.log(`${arch}: ${JSON.stringify(params)}`);
    console.log(`${arch} ${precision}: params ${s.params}, val loss ${s.valLoss.toFixed(3)} nats vs unigram entropy ${s.unigramEntropy.toFixed(3)} nats; ${((Date.now() - t0) / 1000).toFixed(0)} s, ${s.tokensPerSecond.toFixed(0)} tok/s`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
