/**
 * The training loop over a token stream (PAPER.md §4): non-overlapping windows shuffled every epoch, AdamW with
 * decay on Linear weights only, global-norm clipping, linear warmup + linear decay, dropout, gradient
 * accumulation. Everything random is a pure function of (seed, step), so a run resumed from a checkpoint
 * (parameters + AdamW moments + step) continues bit for bit like an uninterrupted one.
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeSafetensors, readSafetensors } from './safetensors';
import { writeTextAtomic } from './interop/atomic';
import { CheckpointError, readWeights, WEIGHTS_FILE } from './checkpoint';
import { createModel, loadModel, type NativeModel, type DeviceOptions } from './index';
import { hash32, streamKey, mix32 } from './rng';
import { DynamicLossScaler, type LossScaleSettings, type LossScaleState } from './loss-scale';
import type { ModelConfig } from './types';

export interface TrainSettings {
  steps: number;
  batchSize: number;
  gradAccum: number;
  seqLen: number;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  clip: number;
  dropout: number;
  seed: number;
  evalInterval: number;
  /** Validation windows per evaluation (0 = all). */
  evalWindows: number;
  checkpointInterval: number;
  logInterval: number;
  /** Engine device and precision (a resumed run must use the same ones to stay bit-identical). */
  device?: DeviceOptions;
  /** Dynamic loss scaling (fp16 training); absent: gradients unscaled, and a non-finite one stops the run. */
  lossScale?: LossScaleSettings;
}

export interface MetricRow {
  step: number;
  loss: number;
  val_loss: number | null;
  lr: number;
  /** Of the unscaled gradients, before clipping; NaN where the step was skipped for a loss-scale overflow. */
  grad_norm: number;
  tokens_per_s: number;
  /** The loss scale this step's gradients carried (1 without loss scaling). */
  loss_scale: number;
}

/** Learning rate at optimizer step t (0-based): linear warmup to the peak, then linear decay to 0 at `steps`. */
export function learningRate(t: number, s: Pick<TrainSettings, 'lr' | 'warmupSteps' | 'steps'>): number {
  if (t < s.warmupSteps) return (s.lr * t) / s.warmupSteps;
  return s.lr * Math.max(0, (s.steps - t) / Math.max(1, s.steps - s.warmupSteps));
}

/** Window order for one epoch: a Fisher–Yates shuffle keyed by (seed, epoch). */
export class WindowSampler {
  private epoch = -1;
  private order = new Uint32Array(0);
  constructor(
    readonly windows: number,
    private readonly seed: number,
  ) {
    if (windows < 1) throw new Error('the training split is shorter than one window');
  }
  /** The window index of global sample number `n`. */
  window(n: number): number {
    const epoch = Math.floor(n / this.windows);
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.order = Uint32Array.from({ length: this.windows }, (_, i) => i);
      const key = streamKey(this.seed, 0x5eed0000 + epoch);
      for (let i = this.windows - 1; i > 0; i--) {
        const j = hash32(key, i) % (i + 1);
        const t = this.order[i];
        this.order[i] = this.order[j];
        this.order[j] = t;
      }
    }
    return this.order[n % this.windows];
  }
}

/** Fills inputs/targets [batch][seq] with windows [w*seq, w*seq + seq + 1) of the stream. */
function fillBatch(stream: ArrayLike<number>, windows: number[], seq: number, inputs: Int32Array, targets: Int32Array): void {
  windows.forEach((w, b) => {
    const start = w * seq;
    for (let t = 0; t < seq; t++) {
      inputs[b * seq + t] = stream[start + t];
      targets[b * seq + t] = stream[start + t + 1];
    }
  });
}

/** Unigram entropy (nats/token) of a token stream: the loss of the best context-free predictor. */
export function unigramEntropy(stream: ArrayLike<number>, vocab: number): number {
  const counts = new Float64Array(vocab);
  for (let i = 0; i < stream.length; i++) counts[stream[i]]++;
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / stream.length) * Math.log(c / stream.length);
  return h;
}

export async function validationLoss(model: NativeModel, stream: ArrayLike<number>, seq: number, batch: number, maxWindows: number, signal?: AbortSignal): Promise<number> {
  const total = Math.floor((stream.length - 1) / seq);
  if (total < 1) throw new Error(`validation split has ${stream.length} tokens: shorter than one window of ${seq + 1}`);
  const windows = maxWindows > 0 ? Math.min(total, maxWindows) : total;
  let sum = 0;
  let count = 0;
  for (let w0 = 0; w0 < windows; w0 += batch) {
    const ws = Array.from({ length: Math.min(batch, windows - w0) }, (_, i) => w0 + i);
    const inputs = new Int32Array(ws.length * seq), targets = new Int32Array(ws.length * seq);
    fillBatch(stream, ws, seq, inputs, targets);
    const r = await model.forward(inputs, { batch: ws.length, seq, targets, signal });
    sum += r.loss! * ws.length * seq;
    count += ws.length * seq;
  }
  return sum / count;
}

// ---- checkpoints of a run in progress: <dir>/step-<n>/{config.json, model.safetensors, optimizer.safetensors, state.json}

interface RunState {
  step: number;
  adamStep: number;
  samples: number;
  seed: number;
  metrics: MetricRow[];
  lossScale?: LossScaleState;
}

function checkpointDirs(root: string): { step: number; dir: string }[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .map((name) => ({ name, m: /^step-(\d+)$/.exec(name) }))
    .filter((e) => e.m && fs.existsSync(path.join(root, e.name, 'state.json')))
    .map((e) => ({ step: Number(e.m![1]), dir: path.join(root, e.name) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(root: string): string | undefined {
  const all = checkpointDirs(root);
  return all.length ? all[all.length - 1].dir : undefined;
}

async function writeRunCheckpoint(root: string, model: NativeModel, state: RunState): Promise<string> {
  const final = path.join(root, `step-${state.step}`);
  const tmp = `${final}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  await model.save(tmp);
  const opt = model.getOptimizerState();
  const n = model.numParams;
  writeSafetensors(path.join(tmp, 'optimizer.safetensors'), new Map([
    ['adam.m', { dtype: 'F32' as const, shape: [opt.m.length === 0 ? 0 : n], data: new Float32Array(opt.m) }],
    ['adam.v', { dtype: 'F32' as const, shape: [opt.v.length === 0 ? 0 : n], data: new Float32Array(opt.v) }],
  ]));
  writeTextAtomic(path.join(tmp, 'state.json'), JSON.stringify({ ...state, adamStep: opt.step }) + '\n');
  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  for (const old of checkpointDirs(root)) if (old.dir !== final) fs.rmSync(old.dir, { recursive: true, force: true });
  return final;
}

/**
 * A metrics row as state.json gave it back: JSON writes the NaN norm of a skipped step as null, and rows from
 * before loss scaling lack loss_scale.
 */
export function metricFromJson(row: MetricRow): MetricRow {
  return { ...row, grad_norm: row.grad_norm ?? NaN, loss_scale: row.loss_scale ?? 1 };
}

async function readRunCheckpoint(dir: string, device: DeviceOptions = {}): Promise<{ model: NativeModel; state: RunState }> {
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as RunState;
  state.metrics = state.metrics.map(metricFromJson);
  const model = await loadModel(dir, device);
  const { tensors } = readSafetensors(path.join(dir, 'optimizer.safetensors'));
  const m = tensors.get('adam.m'), v = tensors.get('adam.v');
  if (!m || !v) throw new CheckpointError(dir, 'optimizer.safetensors lacks adam.m / adam.v');
  model.setOptimizerState({ step: state.adamStep, m: m.data, v: v.data });
  return { model, state };
}

export interface TrainHooks {
  signal?: AbortSignal;
  /** Directory for resumable checkpoints (kept: the latest only). */
  checkpointRoot: string;
  onCheckpoint?(step: number, dir: string): void;
  onProgress?(p: { step: number; steps: number; loss: number; tokensPerSecond: number; etaSeconds: number; valLoss?: number }): void;
  log?(message: string): void;
}

export interface TrainResult {
  model: NativeModel;
  metrics: MetricRow[];
  resumedFrom?: number;
  finalValLoss: number;
  tokensPerSecond: number;
  /** Optimizer steps skipped for loss-scale overflows (0 without loss scaling). */
  skippedSteps: number;
}

function dropoutSeed(seed: number, microStep: number): number {
  return mix32((hash32(streamKey(seed, 0xd0d0), microStep) ^ microStep) >>> 0);
}

export async function train(config: ModelConfig, s: TrainSettings, trainStream: ArrayLike<number>, valStream: ArrayLike<number>, hooks: TrainHooks): Promise<TrainResult> {
  const windows = Math.floor((trainStream.length - 1) / s.seqLen);
  const sampler = new WindowSampler(windows, s.seed);
  let model: NativeModel;
  let state: RunState;
  let resumedFrom: number | undefined;
  const latest = latestCheckpoint(hooks.checkpointRoot);
  if (latest) {
    ({ model, state } = await readRunCheckpoint(latest, s.device));
    if (JSON.stringify(model.config) !== JSON.stringify(config)) throw new CheckpointError(latest, 'checkpoint was written for a different model configuration');
    resumedFrom = state.step;
    hooks.log?.(`resuming from ${latest} (step ${state.step})`);
  } else {
    model = createModel(config, s.seed, s.device);
    state = { step: 0, adamStep: 0, samples: 0, seed: s.seed, metrics: [] };
  }
  const scaler = s.lossScale ? new DynamicLossScaler(s.lossScale, state.lossScale) : undefined;
  const { batchSize: B, seqLen: T, gradAccum } = s;
  const inputs = new Int32Array(B * T), targets = new Int32Array(B * T);
  const tokensPerStep = B * T * gradAccum;
  const started = Date.now();
  const startStep = state.step;
  let lastLoss = NaN;
  let tokensPerSecond = 0;
  while (state.step < s.steps) {
    if (hooks.signal?.aborted) throw Object.assign(new Error('training cancelled'), { name: 'AbortError' });
    const t0 = Date.now();
    await model.zeroGrad();
    let lossSum = 0;
    const lossScale = scaler?.scale ?? 1;
    for (let a = 0; a < gradAccum; a++) {
      const ws = Array.from({ length: B }, (_, b) => sampler.window(state.samples + b));
      state.samples += B;
      fillBatch(trainStream, ws, T, inputs, targets);
      const micro = state.step * gradAccum + a;
      const r = await model.trainStep(inputs, targets, B, T, { dropout: s.dropout, rngSeed: dropoutSeed(s.seed, micro), gradScale: lossScale / gradAccum, lastMicroBatch: a === gradAccum - 1, signal: hooks.signal });
      lossSum += r.loss;
    }
    const lr = learningRate(state.step, s);
    const gradNorm = await model.optimizerStep({ lr, weightDecay: s.weightDecay, beta1: s.beta1, beta2: s.beta2, eps: s.eps, clip: s.clip, unscale: 1 / lossScale });
    state.step++;
    lastLoss = lossSum / gradAccum;
    if (!Number.isFinite(lastLoss)) throw new Error(`training diverged at step ${state.step}: loss ${lastLoss}`);
    // A non-finite norm means the engine skipped the step (parameters and moments untouched).
    if (!scaler && !Number.isFinite(gradNorm)) throw new Error(`training diverged at step ${state.step}: gradient norm ${gradNorm}`);
    if (scaler) {
      scaler.update(Number.isFinite(gradNorm), state.step);
      if (!Number.isFinite(gradNorm)) hooks.log?.(`step ${state.step}: gradients overflowed at loss scale ${lossScale}; step skipped, scale now ${scaler.scale}`);
      state.lossScale = scaler.state();
    }
    const dt = (Date.now() - t0) / 1000;
    tokensPerSecond = (tokensPerStep * (state.step - startStep)) / Math.max(1e-3, (Date.now() - started) / 1000);
    let valLoss: number | null = null;
    if ((s.evalInterval > 0 && state.step % s.evalInterval === 0) || state.step === s.steps) {
      valLoss = await validationLoss(model, valStream, T, B, s.evalWindows, hooks.signal);
    }
    if (state.step % s.logInterval === 0 || valLoss !== null || state.step === 1) {
      state.metrics.push({ step: state.step, loss: lastLoss, val_loss: valLoss, lr, grad_norm: gradNorm, tokens_per_s: tokensPerStep / Math.max(1e-3, dt), loss_scale: lossScale });
    }
    hooks.onProgress?.({ step: state.step, steps: s.steps, loss: lastLoss, tokensPerSecond, etaSeconds: ((s.steps - state.step) * tokensPerStep) / Math.max(1, tokensPerSecond), valLoss: valLoss ?? undefined });
    if (s.checkpointInterval > 0 && state.step % s.checkpointInterval === 0 && state.step < s.steps) {
      const dir = await writeRunCheckpoint(hooks.checkpointRoot, model, state);
      hooks.onCheckpoint?.(state.step, dir);
    }
  }
  const last = [...state.metrics].reverse().find((m) => m.val_loss !== null);
  const finalValLoss = last?.val_loss ?? (await validationLoss(model, valStream, T, B, s.evalWindows, hooks.signal));
  return { model, metrics: state.metrics, resumedFrom, finalValLoss, tokensPerSecond, skippedSteps: scaler?.state().skippedSteps ?? 0 };
}

export { WEIGHTS_FILE, readWeights };
