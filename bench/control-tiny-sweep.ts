/**
 * Measures topic control on a freshly trained tiny Backpack (the tiny profile's shapes, CPU), end to end
 * through the real activities: corpus (brown + nlp-corpus) → BPE → shards → model.train (Backpack and
 * Transformer) → TweetTopic classifier → control.topic for every topic × strength → MAUVE per strength
 * (Transformer as featurizer, val shards as references) → control.table12.
 * Run: npx tsx bench/control-tiny-sweep.ts [--steps 500] [--samples 16] [--work <dir>]
 * Writes bench/results/control-tiny-sweep.txt. Slow (tens of minutes on 2 cores).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import type { ActivityContext, AnyActivity, InputArtifact } from '../pipelines/activity';
import { createRegistry } from '../activities/index';
import { TOPICS } from '../activities/control/topic/topics';

const registry = createRegistry();

function ctxFor(step: string, inputs: Record<string, InputArtifact[]>, outDir: string): ActivityContext {
  fs.mkdirSync(outDir, { recursive: true });
  return {
    node: { runId: 'bench', step, item: '', key: step },
    outDir,
    inputs,
    progress: () => undefined,
    signal: new AbortController().signal,
    devices: { gpus: [], cpus: 2 },
    scratchDir: fs.mkdtempSync(path.join(os.tmpdir(), `${step}-scratch-`)),
    checkpoint: () => undefined,
    log: () => undefined,
    attempt: 1,
  };
}

async function step(name: string, uses: string, params: Record<string, unknown>, inputs: Record<string, InputArtifact[]>, work: string, matrix: Record<string, unknown> = {}): Promise<InputArtifact> {
  const dir = path.join(work, name);
  const done = path.join(dir, '.done.json');
  if (fs.existsSync(done)) return { step: name, item: '', matrix, key: name, dir, summary: JSON.parse(fs.readFileSync(done, 'utf8')) };
  fs.rmSync(dir, { recursive: true, force: true });
  const activity = registry.get(uses) as AnyActivity;
  const started = Date.now();
  const summary = await activity.run(activity.params.parse(params), ctxFor(name, inputs, dir));
  fs.writeFileSync(done, JSON.stringify(summary));
  process.stdout.write(`${name}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  return { step: name, item: '', matrix, key: name, dir, summary };
}

async function main() {
  const { values } = parseArgs({ options: { steps: { type: 'string', default: '500' }, samples: { type: 'string', default: '16' }, work: { type: 'string' } } });
  const work = values.work ?? path.join(os.tmpdir(), 'control-tiny-sweep');
  const steps = Number(values.steps);
  const samples = Number(values.samples);
  process.env.PIPELINE_DATA_MIRROR ??= path.resolve(__dirname, '..', '..', 'shared', 'data');
  const lines: string[] = [];
  const log = (s: string) => {
    lines.push(s);
    process.stdout.write(s + '\n');
  };
  const t0 = Date.now();
  const corpus = await step('corpus', 'data.corpus', { sources: ['brown', 'nlp-corpus'], valRatio: 0.02, seed: 2357 }, {}, work);
  const tokenizer = await step('tokenizer', 'data.train_tokenizer', { vocabSize: 8192 }, { corpus: [corpus] }, work);
  const shards = await step('shards', 'data.tokenize', { workers: 1 }, { corpus: [corpus], tokenizer: [tokenizer] }, work);
  const common = { nEmbd: 128, nLayer: 4, nHead: 4, steps, batchSize: 8, seqLen: 128, nPositions: 256, lr: 1e-3, warmupSteps: 50, evalInterval: 0, checkpointInterval: 0, logInterval: 50 };
  const backpack = await step('backpack', 'model.train', { ...common, arch: 'backpack', numSenses: 16 }, { data: [shards] }, work, { arch: 'backpack', size: 'tiny' });
  const transformer = await step('transformer', 'model.train', { ...common, arch: 'gpt2' }, { data: [shards] }, work, { arch: 'gpt2', size: 'tiny' });
  log(`# control tiny sweep — ${new Date().toISOString()}; ${steps} training steps × 8 × 128 tokens`);
  log(`backpack: ${JSON.stringify({ valLoss: (backpack.summary as { valLoss?: number }).valLoss, params: (backpack.summary as { params?: number }).params })}`);
  log(`transformer: ${JSON.stringify({ valLoss: (transformer.summary as { valLoss?: number }).valLoss, params: (transformer.summary as { params?: number }).params })}`);
  const classifier = await step('classifier', 'control.train_topic_classifier', {}, {}, work);
  log(`classifier: ${JSON.stringify(classifier.summary)}`);
  const inputs = { backpack: [backpack], transformer: [transformer], tokenizer: [tokenizer], classifier: [classifier] };
  const runs: InputArtifact[] = [];
  for (const strength of [0, 1, 2, 3]) {
    for (const t of TOPICS) {
      runs.push(await step(`topic-${t.name}-${strength}`, 'control.topic', { topic: t.name, strength, samples, batchSize: 8, sampler: 'kv-cache' }, inputs, work));
    }
  }
  const mauves: InputArtifact[] = [];
  for (const strength of [0, 1, 2, 3]) {
    mauves.push(await step(`mauve-${strength}`, 'control.mauve', { method: 'backpack', setting: strength, references: 'val-shards', maxReferences: 17 * samples }, { ...inputs, data: [shards], topic: runs }, work));
  }
  const table = await step('table12', 'control.table12', {}, { topic: runs, mauve: mauves }, work);
  log('setting                              Sem Acc   Toks-in-vocab   MAUVE    mean NLL');
  for (const r of (table.summary as { settings: Array<{ row: string; sem_acc: number; toks_in_vocab: number; mauve: number | null; mean_nll: number | null }> }).settings) {
    log(`${r.row.padEnd(36)} ${(100 * r.sem_acc).toFixed(1).padStart(6)}%  ${(100 * r.toks_in_vocab).toFixed(2).padStart(8)}%   ${r.mauve === null ? '   -  ' : r.mauve.toFixed(3)}   ${r.mean_nll === null ? '-' : r.mean_nll.toFixed(3)}`);
  }
  log(`wall time ${((Date.now() - t0) / 1000).toFixed(0)} s (cached steps reused from ${work})`);
  const out = path.join(__dirname, 'results', 'control-tiny-sweep.txt');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, lines.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
