/**
 * Loss scaling (fp16 training's GradScaler, PAPER.md §4): the scaler's growth/backoff rules, the engine's skipped
 * step on overflowing gradients, and the training loop with a dynamic power-of-two scale, which must step exactly
 * like an unscaled run (the scale cancels without rounding) and resume with the scale it had.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DynamicLossScaler, DEFAULT_LOSS_SCALE } from '../native/loss-scale';
import { createModel, type NativeModel } from '../native';
import { trainActivity, lossScaleFor } from '../activities/train';
import type { ActivityContext } from '../pipelines/activity';
import { ShardSetWriter } from '../datasets/shards';
import { readParquetRows } from '../datasets/parquet-table';
import { metricFromJson } from '../native/trainer';
import { streamKey, uniform01 } from '../native/rng';

describe('DynamicLossScaler', () => {
  test('grows after growthInterval clean steps, backs off and restarts the count on an overflow', () => {
    const s = new DynamicLossScaler({ ...DEFAULT_LOSS_SCALE, initial: 1024, growthInterval: 3 });
    s.update(true, 1);
    s.update(true, 2);
    expect(s.scale).toBe(1024);
    s.update(true, 3);
    expect(s.scale).toBe(2048);
    s.update(true, 4);
    s.update(false, 5);
    expect(s.state()).toEqual({ scale: 1024, cleanSteps: 0, skippedSteps: 1 });
    s.update(true, 6);
    s.update(true, 7);
    expect(s.scale).toBe(1024);
    s.update(true, 8);
    expect(s.scale).toBe(2048);
  });

  test('continues from a saved state', () => {
    const s = new DynamicLossScaler(DEFAULT_LOSS_SCALE, { scale: 8, cleanSteps: 1999, skippedSteps: 4 });
    s.update(true, 1);
    expect(s.state()).toEqual({ scale: 16, cleanSteps: 0, skippedSteps: 4 });
  });

  test('a scale that backs off below any use is a divergence, with the step in the message', () => {
    const s = new DynamicLossScaler({ ...DEFAULT_LOSS_SCALE, initial: 2 ** -23 });
    expect(() => s.update(false, 7)).not.toThrow();
    expect(() => s.update(false, 8)).toThrow(/training diverged at step 8: .*loss scale backed off .*2 steps skipped/);
  });

  test('rejects settings that cannot work', () => {
    expect(() => new DynamicLossScaler({ ...DEFAULT_LOSS_SCALE, initial: 0 })).toThrow(/initial scale/);
    expect(() => new DynamicLossScaler({ ...DEFAULT_LOSS_SCALE, growthInterval: 0.5 })).toThrow(/growthInterval/);
    expect(() => new DynamicLossScaler({ ...DEFAULT_LOSS_SCALE, backoffFactor: 1 })).toThrow(/backoffFactor/);
  });

  test("'auto' scales fp16 runs only", () => {
    const base = { lossScaleInit: 4096, lossScaleGrowthInterval: 10 };
    expect(lossScaleFor({ ...base, precision: 'fp16', lossScale: 'auto' })).toEqual({ ...DEFAULT_LOSS_SCALE, initial: 4096, growthInterval: 10 });
    expect(lossScaleFor({ ...base, precision: 'bf16', lossScale: 'auto' })).toBeUndefined();
    expect(lossScaleFor({ ...base, precision: 'fp16', lossScale: 'off' })).toBeUndefined();
    expect(lossScaleFor({ ...base, precision: 'fp32', lossScale: 'dynamic' })).toBeDefined();
  });
});

test("a skipped step's NaN norm survives the run checkpoint (JSON writes it as null); old rows read loss_scale 1", () => {
  const row = { step: 3, loss: 2.5, val_loss: null, lr: 1e-3, grad_norm: NaN, tokens_per_s: 10, loss_scale: 65536 };
  const back = metricFromJson(JSON.parse(JSON.stringify(row)));
  expect(back).toEqual(row);
  expect(Number.isNaN(back.grad_norm)).toBe(true);
  const { loss_scale: _dropped, ...old } = { ...row, grad_norm: 0.5 };
  expect(metricFromJson(old as typeof row).loss_scale).toBe(1);
});

describe('optimizerStep with a loss scale (CPU engine)', () => {
  const config = { arch: 'gpt2' as const, vocabSize: 32, realVocabSize: 32, nPositions: 8, nEmbd: 32, nLayer: 1, nHead: 2, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 };
  const opt = { lr: 1e-2, weightDecay: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, clip: 1 };
  const tokens = Int32Array.from([3, 7, 1, 9]);
  const targets = Int32Array.from([7, 1, 9, 2]);
  let models: NativeModel[] = [];
  afterEach(() => {
    models.forEach((m) => m.dispose());
    models = [];
  });
  const fresh = () => {
    const m = createModel(config, 5);
    models.push(m);
    return m;
  };

  test('a power-of-two scale divides out exactly: same norm, same parameters', async () => {
    const plain = fresh(), scaled = fresh();
    await plain.trainStep(tokens, targets, 1, 4, { dropout: 0, rngSeed: 1, gradScale: 1 });
    await scaled.trainStep(tokens, targets, 1, 4, { dropout: 0, rngSeed: 1, gradScale: 2 ** 20 });
    expect(scaled.getGrads()[0]).toBe(plain.getGrads()[0] * 2 ** 20);
    const n1 = await plain.optimizerStep(opt);
    const n2 = await scaled.optimizerStep({ ...opt, unscale: 2 ** -20 });
    expect(n2).toBe(n1);
    expect(Buffer.from(scaled.getParams().buffer).equals(Buffer.from(plain.getParams().buffer))).toBe(true);
  });

  test('overflowing gradients skip the step: parameters, moments and step count untouched', async () => {
    const m = fresh();
    // A final LayerNorm gain of 8 makes some |h_i| >= 8, so the head's weight gradient of the target row exceeds
    // 2^127 * 0.9 * 8 > fp32's largest finite value: it overflows for certain.
    const lnf = m.tensors.find((t) => /ln_f\.weight$/.test(t.key));
    expect(lnf).toBeDefined();
    const p = m.getParams();
    p.fill(8, lnf!.offset, lnf!.offset + lnf!.size);
    m.setParams(p);
    const before = m.getParams();
    await m.trainStep(tokens.subarray(0, 1), targets.subarray(0, 1), 1, 1, { dropout: 0, rngSeed: 1, gradScale: 2 ** 127 });
    const norm = await m.optimizerStep({ ...opt, unscale: 2 ** -127 });
    expect(Number.isFinite(norm)).toBe(false);
    expect(Buffer.from(m.getParams().buffer).equals(Buffer.from(before.buffer))).toBe(true);
    expect(m.getOptimizerState().step).toBe(0);
    // the same batch at a sane scale steps normally
    await m.zeroGrad();
    await m.trainStep(tokens.subarray(0, 1), targets.subarray(0, 1), 1, 1, { dropout: 0, rngSeed: 1, gradScale: 2 ** 10 });
    expect(Number.isFinite(await m.optimizerStep({ ...opt, unscale: 2 ** -10 }))).toBe(true);
    expect(m.getOptimizerState().step).toBe(1);
  });

  test('rejects an unscale that is not a positive finite number', async () => {
    const m = fresh();
    await expect(m.optimizerStep({ ...opt, unscale: 0 })).rejects.toThrow(/unscale must be a positive finite number/);
  });
});

describe('model.train with dynamic loss scaling', () => {
  let root: string;
  const VOCAB = 30;
  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'loss-scale-'));
    for (const [split, docs, seed] of [['train', 60, 1], ['val', 6, 2]] as const) {
      const w = new ShardSetWriter(path.join(root, 'shards', split), { tokenizer: 'synthetic', vocabSize: VOCAB, eosId: 29, split }, 2000);
      const key = streamKey(seed, 1);
      for (let d = 0, n = 0; d < docs; d++) {
        const ids = Array.from({ length: 40 }, () => Math.floor(uniform01(key, n++) * 29));
        w.addDocument([...ids, 29]);
      }
      await w.close();
    }
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  function context(name: string, signal: AbortSignal, onStep?: (step: number) => void) {
    const outDir = path.join(root, name, 'out'), scratchDir = path.join(root, name, 'scratch');
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.mkdirSync(outDir, { recursive: true });
    fs.mkdirSync(scratchDir, { recursive: true });
    const ctx: ActivityContext = {
      node: { runId: 'test', step: 'train', item: name, key: name },
      outDir,
      inputs: { tokenize: [{ step: 'tokenize', item: '', matrix: {}, key: 'k', dir: path.join(root, 'shards'), summary: {} }] },
      progress: (u) => onStep?.(u.metrics?.step ?? 0),
      signal,
      devices: { gpus: [], cpus: 2 },
      scratchDir,
      checkpoint: () => undefined,
      log: () => undefined,
      attempt: 1,
    };
    return { ctx, outDir };
  }
  const params = (lossScale: 'dynamic' | 'off') =>
    trainActivity.params.parse({ arch: 'backpack', nEmbd: 32, nLayer: 1, nHead: 2, numSenses: 4, steps: 14, batchSize: 4, gradAccum: 2, seqLen: 16, lr: 3e-3, warmupSteps: 3, evalInterval: 0, checkpointInterval: 5, logInterval: 1, lossScale, lossScaleInit: 2 ** 16, lossScaleGrowthInterval: 4 });
  const weights = (dir: string) => fs.readFileSync(path.join(dir, 'model', 'model.safetensors'));

  test('a growing power-of-two scale trains bit-identically to no scaling, and a resumed run keeps its scale', async () => {
    const off = context('off', new AbortController().signal);
    await trainActivity.run(params('off'), off.ctx);
    const on = context('on', new AbortController().signal);
    const summary = (await trainActivity.run(params('dynamic'), on.ctx)) as { skippedSteps: number };
    expect(summary.skippedSteps).toBe(0);
    expect(weights(on.outDir).equals(weights(off.outDir))).toBe(true);
    const rows = await readParquetRows(path.join(on.outDir, 'metrics.parquet'));
    expect(rows.map((r) => Math.log2(Number(r.loss_scale)))).toEqual([16, 16, 16, 16, 17, 17, 17, 17, 18, 18, 18, 18, 19, 19]);
    const offRows = await readParquetRows(path.join(off.outDir, 'metrics.parquet'));
    expect(rows.map((r) => [r.loss, r.grad_norm])).toEqual(offRows.map((r) => [r.loss, r.grad_norm]));
    expect(offRows.every((r) => Number(r.loss_scale) === 1)).toBe(true);

    // killed after step 7 (checkpoint at step 5, scale 2^17 with one clean step counted), then resumed
    const controller = new AbortController();
    const killed = context('killed', controller.signal, (step) => step === 7 && controller.abort());
    await expect(trainActivity.run(params('dynamic'), killed.ctx)).rejects.toThrow(/cancel/);
    const resumed = context('killed', new AbortController().signal);
    expect(((await trainActivity.run(params('dynamic'), resumed.ctx)) as { resumedFromStep: number }).resumedFromStep).toBe(5);
    expect(weights(resumed.outDir).equals(weights(on.outDir))).toBe(true);
    const resumedRows = await readParquetRows(path.join(resumed.outDir, 'metrics.parquet'));
    expect(resumedRows.map((r) => r.loss_scale)).toEqual(rows.map((r) => r.loss_scale));
  });

  test('fp16 is refused on the CPU engine with a message that says what to use', async () => {
    const c = context('fp16-cpu', new AbortController().signal);
    const p = trainActivity.params.parse({ ...params('dynamic'), precision: 'fp16', device: 'cpu' });
    await expect(trainActivity.run(p, c.ctx)).rejects.toThrow(/precision fp16 needs the CUDA backend/);
  });
});
