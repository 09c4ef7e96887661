/**
 * The `model.train` activity end to end on real token shards (Arrow + manifest written by the datasets module):
 * it learns a synthetic language well below its unigram entropy, writes a loadable checkpoint and a metrics table,
 * and a run killed mid-way and resumed from its checkpoint ends with bit-identical parameters and losses.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { trainActivity, type TrainParams } from '../activities/train';
import type { ActivityContext } from '../pipelines/activity';
import { ShardSetWriter } from '../datasets/shards';
import { readParquetRows } from '../datasets/parquet-table';
import { loadModel } from '../native';
import { streamKey, uniform01 } from '../native/rng';

const VOCAB = 30;
let root: string;
let shards: string;

/** Documents of a noisy deterministic chain: next = (3*prev + 1) mod 29 with probability 0.9, EOS (29) ends them. */
async function writeShards(dir: string, split: string, docs: number, seed: number) {
  const w = new ShardSetWriter(path.join(dir, split), { tokenizer: 'synthetic', vocabSize: VOCAB, eosId: 29, split }, 2000);
  const key = streamKey(seed, 1);
  let n = 0;
  for (let d = 0; d < docs; d++) {
    const ids: number[] = [];
    let t = Math.floor(uniform01(key, n++) * 29);
    for (let i = 0; i < 60; i++) {
      ids.push(t);
      t = uniform01(key, n++) < 0.9 ? (3 * t + 1) % 29 : Math.floor(uniform01(key, n++) * 29);
    }
    ids.push(29);
    w.addDocument(ids);
  }
  await w.close();
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'native-train-'));
  shards = path.join(root, 'shards');
  await writeShards(shards, 'train', 120, 1);
  await writeShards(shards, 'val', 12, 2);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function context(name: string, signal: AbortSignal, onProgress?: (step: number) => void) {
  const outDir = path.join(root, name, 'out');
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  const scratchDir = path.join(root, name, 'scratch');
  fs.mkdirSync(scratchDir, { recursive: true });
  const checkpoints: unknown[] = [];
  const ctx: ActivityContext = {
    node: { runId: 'test', step: 'train', item: name, key: name },
    outDir,
    inputs: { tokenize: [{ step: 'tokenize', item: '', matrix: {}, key: 'k', dir: shards, summary: {} }] },
    progress: (u) => onProgress?.(u.metrics?.step ?? 0),
    signal,
    devices: { gpus: [], cpus: 2 },
    scratchDir,
    checkpoint: (s) => checkpoints.push(s),
    log: () => undefined,
    attempt: 1,
  };
  return { ctx, checkpoints, outDir };
}

const tiny = (arch: 'backpack' | 'gpt2', steps: number): TrainParams =>
  trainActivity.params.parse({ arch, nEmbd: 32, nLayer: 2, nHead: 2, numSenses: 4, steps, batchSize: 8, seqLen: 16, lr: 3e-3, warmupSteps: 5, evalInterval: 20, checkpointInterval: 10, logInterval: 1, dropout: 0.1 });

describe.each(['backpack', 'gpt2'] as const)('model.train (%s)', (arch) => {
  test('learns well below the unigram entropy; writes model/, metrics.parquet, train.json', async () => {
    const { ctx, outDir } = context(`${arch}-learn`, new AbortController().signal);
    const summary = (await trainActivity.run(tiny(arch, 80), ctx)) as { valLoss: number; unigramEntropy: number; params: number };
    expect(summary.unigramEntropy).toBeGreaterThan(3);
    expect(summary.valLoss).toBeLessThan(summary.unigramEntropy - 1);
    const model = await loadModel(path.join(outDir, 'model'));
    expect(model.config.arch).toBe(arch);
    expect(model.config.vocabSize).toBe(32);
    expect(model.numParams).toBe(summary.params);
    const rows = await readParquetRows(path.join(outDir, 'metrics.parquet'));
    expect(rows).toHaveLength(80);
    expect(Number(rows[79].step)).toBe(80);
    expect(rows.filter((r) => r.val_loss !== undefined && r.val_loss !== null).length).toBe(4);
    expect(Number(rows[0].lr)).toBe(0);
  });
});

test('a run killed after step 12 resumes from its step-10 checkpoint and ends bit-identical', async () => {
  const params = tiny('backpack', 25);
  const a = context('uninterrupted', new AbortController().signal);
  await trainActivity.run(params, a.ctx);

  const controller = new AbortController();
  const b = context('killed', controller.signal, (step) => step === 12 && controller.abort());
  await expect(trainActivity.run(params, b.ctx)).rejects.toThrow(/cancel/);
  expect(b.checkpoints).toEqual([expect.objectContaining({ step: 10 })]);

  const c = context('killed', new AbortController().signal);
  const summary = (await trainActivity.run(params, c.ctx)) as { resumedFromStep: number };
  expect(summary.resumedFromStep).toBe(10);
  const wa = fs.readFileSync(path.join(a.outDir, 'model', 'model.safetensors'));
  const wc = fs.readFileSync(path.join(c.outDir, 'model', 'model.safetensors'));
  expect(wc.equals(wa)).toBe(true);
  const la = (await readParquetRows(path.join(a.outDir, 'metrics.parquet'))).map((r) => [r.step, r.loss, r.val_loss]);
  const lc = (await readParquetRows(path.join(c.outDir, 'metrics.parquet'))).map((r) => [r.step, r.loss, r.val_loss]);
  expect(lc).toEqual(la);
});
