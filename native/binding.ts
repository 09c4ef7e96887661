/**
 * Loads the compiled addon (native/build/Release/backpack_native.node) and types its raw surface. Only the
 * facade (native/index.ts and its helpers) talks to these functions.
 */
import * as fs from 'fs';
import * as path from 'path';

export interface RawTensorInfo {
  key: string;
  /** Internal shape: Linear layout [out][in] for weight matrices. */
  shape: number[];
  /** Stored transposed ([in][out]) in Hugging Face GPT-2 Conv1D checkpoints. */
  conv1d: boolean;
  /** AdamW weight decay applies (Linear weight matrices only). */
  decay: boolean;
  offset: number;
  size: number;
}

export interface RawInterventions {
  senseScale?: Float32Array;
  scaleStride?: number;
  alphaSense?: number;
  alphaFactor?: number;
  alphaTokens?: Int32Array;
  replaceIds?: Int32Array;
  replaceVectors?: Float32Array;
  embedIds?: Int32Array;
  embedRows?: Float32Array;
}

export interface RawConfig {
  arch: 'gpt2' | 'backpack';
  vocabSize: number;
  realVocabSize: number;
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  numSenses?: number;
  senseHidden?: number;
  scaleAttnByInverseLayerIdx: boolean;
  layerNormEpsilon: number;
}

export interface RawModel {
  tensors(): RawTensorInfo[];
  numParams(): number;
  /** CPU models only; returns the kernel now used: 'fp32' or 'bf16-amx' */
  setMatmulPrecision?(p: MatmulPrecision): string;
  initParams(seed: number): void;
  getParams(): Float32Array;
  setParams(p: Float32Array): void;
  getGrads(): Float32Array;
  getOptimizerState(): { step: number; m: Float32Array; v: Float32Array };
  setOptimizerState(s: { step: number; m: Float32Array; v: Float32Array }): void;
  forward(
    tokens: Int32Array,
    batch: number,
    seq: number,
    opts: { targets?: Int32Array; logits?: boolean; hidden?: boolean; alpha?: boolean; perTokenLoss?: boolean; interventions?: RawInterventions },
    cancel?: Int32Array,
  ): Promise<{ lossSum?: number; count?: number; perTokenLoss?: Float32Array; logits?: Float32Array; hidden?: Float32Array; alpha?: Float32Array }>;
  trainStep(
    tokens: Int32Array,
    targets: Int32Array,
    batch: number,
    seq: number,
    opts: { dropout: number; rngSeed: number; gradScale: number; lastMicroBatch?: boolean },
    cancel?: Int32Array,
  ): Promise<{ lossSum: number; count: number }>;
  zeroGrad(): void;
  optimizerStep(opts: { lr: number; weightDecay: number; beta1: number; beta2: number; eps: number; clip: number; unscale?: number }): Promise<number>;
  senseVectors(ids: Int32Array, interventions?: RawInterventions): Promise<Float32Array>;
  cacheReset(rows: number, capacity: number): void;
  cachePrefill(row0: number, n: number, tokens: Int32Array, seq: number, interventions?: RawInterventions): Promise<Float32Array>;
  cacheDecode(rowIds: Int32Array, tokens: Int32Array, interventions?: RawInterventions): Promise<Float32Array>;
}

export type MatmulPrecision = 'fp32' | 'bf16';

export interface BuildInfo {
  /** sgemm provider: 'openblas' or 'builtin' */
  gemm: string;
  threads: number;
  cuda: boolean;
  /** the CPU has AMX bf16 tiles and the kernel granted them */
  amx: boolean;
}

export interface Addon {
  NativeModel: new (config: RawConfig) => RawModel;
  setThreads(n: number): number;
  buildInfo(): BuildInfo;
}

let cached: Addon | undefined;

/**
 * OpenBLAS 0.3.21 does not recognise recent Xeons under some hypervisors and falls back to its SSE3 "Prescott"
 * kernels (several times slower). Name the kernel family from the CPU flags unless the user already did; OpenBLAS
 * reads OPENBLAS_CORETYPE when the addon loads it.
 */
function chooseOpenblasCore(): void {
  if (process.env.OPENBLAS_CORETYPE || process.platform !== 'linux') return;
  let flags = '';
  try {
    flags = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    return;
  }
  const has = (f: string) => flags.includes(` ${f}`);
  if (has('avx512f') && has('avx512bw') && has('avx512vl') && has('avx512dq')) process.env.OPENBLAS_CORETYPE = 'SKYLAKEX';
  else if (has('avx2') && has('fma')) process.env.OPENBLAS_CORETYPE = 'HASWELL';
}

/**
 * Candidate locations: $BACKPACK_NATIVE_ADDON when set (a build made elsewhere, e.g. with BACKPACK_BUILD_DIR),
 * else beside this file (ts-node/jest) or in the source tree when running from dist/.
 */
function candidates(): string[] {
  if (process.env.BACKPACK_NATIVE_ADDON) return [path.resolve(process.env.BACKPACK_NATIVE_ADDON)];
  const rel = path.join('build', 'Release', 'backpack_native.node');
  return [path.join(__dirname, rel), path.join(__dirname, '..', '..', 'native', rel)];
}

export function addon(): Addon {
  if (cached) return cached;
  const found = candidates().find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(`native engine not built: none of ${candidates().join(', ')} exists (run \`npm run build:native\`)`);
  }
  chooseOpenblasCore();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  cached = require(found) as Addon;
  return cached;
}
