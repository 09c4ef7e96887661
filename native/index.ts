/**
 * The native engine's TypeScript facade: create/load/save models, forward (logits, per-token loss, hidden
 * states, alpha, sense vectors, interventions), generation with a KV cache, and the training primitives the
 * `model.train` activity drives. Heavy calls run off the JS thread and are queued one at a time per model.
 */
import * as fs from 'fs';
import * as path from 'path';
import { addon, type BuildInfo, type MatmulPrecision, type RawInterventions, type RawModel, type RawTensorInfo } from './binding';
import { createRawModel, resolveDevice, type DeviceOptions } from './device';
import { toRawConfig, validateConfig, padVocab, senseHidden } from './config';
import { readConfigFile, readWeights, writeCheckpoint, WEIGHTS_FILE, CheckpointError } from './checkpoint';
import { sampleToken, type SamplingOptions } from './sampling';
import type { Interventions, LanguageModel, ModelConfig } from './types';

export type { LanguageModel, ModelConfig, Architecture, Interventions } from './types';
export type { BuildInfo, MatmulPrecision } from './binding';
export { padVocab, senseHidden, CheckpointError };
export { cudaDevices, resolveDevice, type DeviceOptions, type Precision } from './device';


export interface ForwardOptions {
  batch: number;
  seq: number;
  logits?: boolean;
  hidden?: boolean;
  alpha?: boolean;
  targets?: Int32Array;
  interventions?: Interventions;
  signal?: AbortSignal;
}

export interface ForwardResult {
  /** [b][s][vocabSize] (padded rows included). */
  logits?: Float32Array;
  /** Mean next-token cross-entropy over targets >= 0. */
  loss?: number;
  /** [b*s] (0 where the target is ignored). */
  perTokenLoss?: Float32Array;
  /** [b][s][d]: h^c after the final LayerNorm (GPT-2) or the Backpack output o before the logits. */
  hidden?: Float32Array;
  /** Backpack: [b][k][s][s]. */
  alpha?: Float32Array;
}

export interface GenerateOptions extends SamplingOptions {
  prompt: Int32Array[];
  maxNewTokens: number;
  seed: number;
  interventions?: Interventions;
  /**
   * Backpack: per-row sense multipliers recomputed from the current sequence before each step (the paper's
   * annealed topic control): returns one Float32Array [len][k] per row for the sequence given.
   */
  senseScaleFn?: (sequences: Int32Array[]) => Float32Array[];
  /** Stop a row once it emits this id (the id is kept). */
  eosId?: number;
  signal?: AbortSignal;
}

export interface TrainStepOptions {
  dropout: number;
  /** Seed of this micro-batch's dropout masks (derive it from the run seed and the micro-step). */
  rngSeed: number;
  /** Multiplier on the gradient of the mean loss (1/accumulation steps, times the loss scale if any). */
  gradScale: number;
  /**
   * Whether the optimizer step follows this micro-batch (default true). Data parallel over several GPUs, its
   * backward pass all-reduces the gradients bucket by bucket; earlier micro-batches of a step (false) keep them
   * local, so a step communicates once. Results are the same either way.
   */
  lastMicroBatch?: boolean;
  signal?: AbortSignal;
}

export interface OptimizerOptions {
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Global-norm clipping threshold (<= 0 disables). */
  clip: number;
  /**
   * 1 / the loss scale the gradients were accumulated with (trainStep's gradScale included it); divided out before
   * clipping. Default 1. A step whose unscaled gradient norm is not finite is skipped and returns that norm.
   */
  unscale?: number;
}

export function buildInfo(): BuildInfo {
  return addon().buildInfo();
}


export function setThreads(n: number): number {
  return addon().setThreads(n);
}

/** Runs `fn` with a flag the native side polls; an abort of `signal` raises it. The listener is removed after. */
async function withCancel<T>(signal: AbortSignal | undefined, fn: (flag: Int32Array | undefined) => Promise<T>): Promise<T> {
  if (!signal) return fn(undefined);
  const flag = new Int32Array(1);
  const onAbort = () => (flag[0] = 1);
  if (signal.aborted) flag[0] = 1;
  else signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await fn(flag);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

export class NativeModel implements LanguageModel {
  readonly config: ModelConfig;
  readonly tensors: readonly RawTensorInfo[];
  private raw: RawModel | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private embeddingsCache?: Float32Array;

  /** 'cpu' or 'cuda:N[,M...]'. */
  readonly device: string;

  /** Use createModel / loadModel. */
  constructor(config: ModelConfig, opts: DeviceOptions = {}) {
    this.config = validateConfig({ ...config });
    const device = resolveDevice(opts.device);
    this.device = device.name;
    this.raw = createRawModel(toRawConfig(this.config), device, opts.precision);
    this.tensors = this.raw.tensors();
  }

  private get native(): RawModel {
    if (!this.raw) throw new Error('model was disposed');
    return this.raw;
  }

  /** Runs native calls one after another (the addon refuses overlapping calls). */
  private enqueue<T>(fn: () => Promise<T> | T): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Runs `fn` in this model's call queue with its raw addon object: for native extensions that borrow the
   * model's weights (the PPLM sessions of native/pplm.ts).
   */
  exclusive<T>(fn: (raw: RawModel) => Promise<T> | T): Promise<T> {
    return this.enqueue(() => fn(this.native));
  }

  /**
   * Arithmetic of this model's large CPU matrix products: 'fp32' (default, exact) or 'bf16' (operands rounded to
   * bf16, fp32 accumulation, on AMX tiles; a CPU without AMX keeps fp32). Returns the kernel now in use:
   * 'fp32' or 'bf16-amx'. CUDA models choose their arithmetic with the `precision` device option instead.
   */
  setMatmulPrecision(p: MatmulPrecision): string {
    const raw = this.native;
    if (!raw.setMatmulPrecision) throw new Error(`setMatmulPrecision: ${this.device} models choose their arithmetic with the precision device option`);
    return raw.setMatmulPrecision(p);
  }

  get numParams(): number {
    return this.native.numParams();
  }

  // ---- parameters and optimizer state (copies)
  getParams(): Float32Array {
    return this.native.getParams();
  }
  setParams(p: Float32Array): void {
    this.native.setParams(p);
    this.embeddingsCache = undefined;
  }
  getGrads(): Float32Array {
    return this.native.getGrads();
  }
  getOptimizerState(): { step: number; m: Float32Array; v: Float32Array } {
    return this.native.getOptimizerState();
  }
  setOptimizerState(s: { step: number; m: Float32Array; v: Float32Array }): void {
    this.native.setOptimizerState(s);
  }
  initParams(seed: number): void {
    this.native.initParams(seed >>> 0);
    this.embeddingsCache = undefined;
  }

  // ---- inference
  private toRaw(iv: Interventions | undefined, tokens: Int32Array, positions: number): RawInterventions | undefined {
    if (!iv) return undefined;
    const { numSenses: k = 0, nEmbd: d, vocabSize: V } = this.config;
    const raw: RawInterventions = {};
    if (iv.senseScale || iv.senseScaleByToken) {
      if (this.config.arch !== 'backpack') throw new Error('sense interventions need a Backpack model');
      const scale = new Float32Array(positions * k).fill(1);
      if (iv.senseScale) {
        if (iv.senseScale.length !== positions * k) throw new Error(`interventions.senseScale must hold ${positions}*${k} values, got ${iv.senseScale.length}`);
        scale.set(iv.senseScale);
      }
      if (iv.senseScaleByToken) {
        if (iv.senseScaleByToken.length !== V * k) throw new Error(`interventions.senseScaleByToken must hold ${V}*${k} values`);
        for (let i = 0; i < positions; i++) for (let l = 0; l < k; l++) scale[i * k + l] *= iv.senseScaleByToken[tokens[i] * k + l];
      }
      raw.senseScale = scale;
    }
    if (iv.alphaScale) {
      if (this.config.arch !== 'backpack') throw new Error('alphaScale needs a Backpack model');
      const { sense, tokenIds, factor } = iv.alphaScale;
      if (!Number.isInteger(sense) || sense < 0 || sense >= k) throw new Error(`alphaScale.sense must be in 0..${k - 1}`);
      raw.alphaSense = sense;
      raw.alphaFactor = factor;
      raw.alphaTokens = Int32Array.from(tokenIds);
    }
    if (iv.senseReplace && iv.senseReplace.length > 0) {
      if (this.config.arch !== 'backpack') throw new Error('senseReplace needs a Backpack model');
      raw.replaceIds = Int32Array.from(iv.senseReplace.map((r) => r.tokenId));
      raw.replaceVectors = new Float32Array(iv.senseReplace.length * k * d);
      iv.senseReplace.forEach((r, i) => {
        if (r.vectors.length !== k * d) throw new Error(`senseReplace[${i}].vectors must hold ${k}*${d} values`);
        raw.replaceVectors!.set(r.vectors, i * k * d);
      });
    }
    if (iv.embeddingReplace && iv.embeddingReplace.length > 0) {
      raw.embedIds = Int32Array.from(iv.embeddingReplace.map((r) => r.tokenId));
      raw.embedRows = new Float32Array(iv.embeddingReplace.length * d);
      iv.embeddingReplace.forEach((r, i) => {
        if (r.row.length !== d) throw new Error(`embeddingReplace[${i}].row must hold ${d} values`);
        raw.embedRows!.set(r.row, i * d);
      });
    }
    return raw;
  }

  forward(tokens: Int32Array, opts: ForwardOptions): Promise<ForwardResult> {
    const { batch, seq } = opts;
    if (tokens.length !== batch * seq) throw new Error(`forward: tokens.length ${tokens.length} != batch ${batch} * seq ${seq}`);
    const raw = this.toRaw(opts.interventions, tokens, batch * seq);
    return this.enqueue(async () => {
      const r = await withCancel(opts.signal, (flag) =>
        this.native.forward(
          tokens,
          batch,
          seq,
          { targets: opts.targets, logits: opts.logits, hidden: opts.hidden, alpha: opts.alpha, perTokenLoss: !!opts.targets, interventions: raw },
          flag,
        ),
      );
      const out: ForwardResult = { logits: r.logits, hidden: r.hidden, alpha: r.alpha };
      if (opts.targets) {
        out.loss = (r.lossSum as number) / Math.max(1, r.count as number);
        out.perTokenLoss = r.perTokenLoss;
      }
      return out;
    });
  }

  async logProbs(tokens: Int32Array): Promise<Float32Array> {
    const { vocabSize: V, realVocabSize: R } = this.config;
    const { logits } = await this.forward(tokens, { batch: 1, seq: tokens.length, logits: true });
    const out = new Float32Array(tokens.length * R);
    for (let i = 0; i < tokens.length; i++) {
      const row = logits!.subarray(i * V, i * V + R);
      let max = -Infinity;
      for (let j = 0; j < R; j++) if (row[j] > max) max = row[j];
      let sum = 0;
      for (let j = 0; j < R; j++) sum += Math.exp(row[j] - max);
      const lse = max + Math.log(sum);
      for (let j = 0; j < R; j++) out[i * R + j] = row[j] - lse;
    }
    return out;
  }

  async hidden(tokens: Int32Array): Promise<Float32Array> {
    return (await this.forward(tokens, { batch: 1, seq: tokens.length, hidden: true })).hidden!;
  }

  outputEmbeddings(): Float32Array {
    if (!this.embeddingsCache) {
      const wte = this.tensors[0];
      this.embeddingsCache = this.native.getParams().slice(wte.offset, wte.offset + wte.size);
    }
    return this.embeddingsCache;
  }

  senseVectors(ids: Int32Array, interventions?: Interventions): Promise<Float32Array> {
    if (this.config.arch !== 'backpack') return Promise.reject(new Error('sense vectors exist only for Backpack models'));
    const raw = interventions?.senseReplace ? this.toRaw({ senseReplace: interventions.senseReplace }, ids, ids.length) : undefined;
    return this.enqueue(() => this.native.senseVectors(ids, raw));
  }

  /** Samples continuations with a KV cache; returns the generated ids of each row (prompt excluded). */
  generate(opts: GenerateOptions): Promise<Int32Array[]> {
    return this.enqueue(() => this.generateNow(opts));
  }

  private async generateNow(opts: GenerateOptions): Promise<Int32Array[]> {
    const { vocabSize: V, realVocabSize: R, nPositions, numSenses: k = 0 } = this.config;
    const rows = opts.prompt.length;
    if (rows === 0) return [];
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new Error('maxNewTokens must be a non-negative integer');
    for (const [i, p] of opts.prompt.entries()) if (p.length === 0) throw new Error(`prompt ${i} is empty (start it with an EOS token)`);
    const longest = Math.max(...opts.prompt.map((p) => p.length));
    const cap = longest + opts.maxNewTokens;
    if (cap > nPositions) throw new Error(`prompt (${longest}) + maxNewTokens (${opts.maxNewTokens}) exceeds n_positions ${nPositions}`);
    const out = opts.prompt.map(() => [] as number[]);
    if (opts.maxNewTokens === 0) return out.map((o) => Int32Array.from(o));
    const signal = opts.signal;
    const native = this.native;
    native.cacheReset(rows, cap);
    const seqs = opts.prompt.map((p) => Array.from(p));
    const staticIv = opts.interventions ? { ...opts.interventions, senseScale: undefined } : undefined;
    const fnScales = () => (opts.senseScaleFn ? opts.senseScaleFn(seqs.map((s) => Int32Array.from(s))) : undefined);
    const done = new Array<boolean>(rows).fill(false);
    const step = (logits: Float32Array, row: number, j: number) => {
      const t = sampleToken(logits.subarray(j * V, (j + 1) * V), R, opts, opts.seed >>> 0, row, out[row].length);
      out[row].push(t);
      seqs[row].push(t);
      if (opts.eosId !== undefined && t === opts.eosId) done[row] = true;
      if (out[row].length >= opts.maxNewTokens) done[row] = true;
    };
    let scales = fnScales();
    for (let r = 0; r < rows; r++) {
      if (signal?.aborted) throw new Error('generation cancelled');
      const p = opts.prompt[r];
      const iv = this.toRaw(staticIv, p, p.length) ?? {};
      if (scales) {
        const s = scales[r];
        if (s.length < p.length * k) throw new Error(`senseScaleFn returned ${s.length} values for row ${r}, need ${p.length}*${k}`);
        const combined = iv.senseScale ?? new Float32Array(p.length * k).fill(1);
        for (let i = 0; i < p.length * k; i++) combined[i] *= s[i];
        iv.senseScale = combined;
      }
      const logits = await native.cachePrefill(r, 1, p, p.length, iv);
      step(logits, r, 0);
    }
    while (done.some((x) => !x)) {
      if (signal?.aborted) throw new Error('generation cancelled');
      const active = [...done.keys()].filter((r) => !done[r]);
      const tokens = Int32Array.from(active.map((r) => seqs[r][seqs[r].length - 1]));
      let iv = this.toRaw(staticIv, tokens, 0);
      if (this.config.arch === 'backpack' && (opts.interventions?.senseScaleByToken || opts.senseScaleFn)) {
        // Per-position multipliers for every cached position of each active row (they may change with the sequence).
        scales = fnScales();
        const scale = new Float32Array(active.length * cap * k).fill(1);
        active.forEach((r, b) => {
          const seq = seqs[r];
          for (let j = 0; j < seq.length; j++)
            for (let l = 0; l < k; l++) {
              let s = scales ? scales[r][j * k + l] : 1;
              if (opts.interventions?.senseScaleByToken) s *= opts.interventions.senseScaleByToken[seq[j] * k + l];
              scale[(b * cap + j) * k + l] = s;
            }
        });
        iv = { ...(iv ?? {}), senseScale: scale, scaleStride: cap };
      }
      const logits = await native.cacheDecode(Int32Array.from(active), tokens, iv);
      active.forEach((r, b) => step(logits, r, b));
    }
    return out.map((o) => Int32Array.from(o));
  }

  // ---- training primitives
  trainStep(tokens: Int32Array, targets: Int32Array, batch: number, seq: number, opts: TrainStepOptions): Promise<{ loss: number; count: number }> {
    return this.enqueue(async () => {
      const r = await withCancel(opts.signal, (flag) =>
        this.native.trainStep(tokens, targets, batch, seq, { dropout: opts.dropout, rngSeed: opts.rngSeed >>> 0, gradScale: opts.gradScale, lastMicroBatch: opts.lastMicroBatch ?? true }, flag),
      );
      return { loss: r.lossSum / Math.max(1, r.count), count: r.count };
    });
  }
  zeroGrad(): Promise<void> {
    return this.enqueue(() => this.native.zeroGrad());
  }
  optimizerStep(opts: OptimizerOptions): Promise<number> {
    this.embeddingsCache = undefined;
    return this.enqueue(() => this.native.optimizerStep(opts));
  }

  // ---- persistence
  /** Writes config.json + model.safetensors (Hugging Face layout) into dir. */
  async save(dir: string): Promise<void> {
    await this.enqueue(() => writeCheckpoint(dir, this.config, [...this.tensors], this.native.getParams()));
  }

  dispose(): void {
    this.raw = undefined;
    this.embeddingsCache = undefined;
  }
}

/** A freshly initialised model (PAPER.md §1.6 init), deterministic in `seed`. */
export function createModel(config: ModelConfig, seed: number, opts: DeviceOptions = {}): NativeModel {
  const m = new NativeModel(config, opts);
  m.initParams(seed);
  return m;
}

/** Loads a Hugging Face-layout checkpoint directory (config.json + model.safetensors). */
export async function loadModel(dir: string, opts: { threads?: number } & DeviceOptions = {}): Promise<NativeModel> {
  resolveDevice(opts.device);  // a bad device fails before the checkpoint is read
  if (opts.threads !== undefined) setThreads(opts.threads);
  const config = readConfigFile(dir);
  const weights = path.join(dir, WEIGHTS_FILE);
  if (!fs.existsSync(weights)) throw new CheckpointError(weights, 'missing (a checkpoint is config.json + model.safetensors)');
  const model = new NativeModel(config, opts);
  const params = new Float32Array(model.numParams);
  readWeights(weights, [...model.tensors], params);
  model.setParams(params);
  return model;
}
