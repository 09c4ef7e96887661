/**
 * `model.train`: trains a Backpack or a Transformer (GPT-2) on the native engine from an upstream token-shard
 * artifact (train/ and val/ shard sets). Periodic validation loss; resumable checkpoints (weights, AdamW
 * moments, step — the data position and dropout masks follow from the step) in ctx.scratchDir, announced with
 * ctx.checkpoint; a retried attempt resumes from the latest one and ends bit-identical to an uninterrupted run.
 * Outputs: model/ (config.json + model.safetensors, Hugging Face layout), metrics.parquet, train.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { defineActivity, NonRetryableError, throwIfAborted, type ActivityContext, type AnyActivity, type InputArtifact } from '../pipelines/activity';
import { readShardMeta, readTokenStream } from '../datasets/shards';
import { writeParquetTable } from '../datasets/parquet-table';
import { padVocab } from '../native/config';
import { setThreads } from '../native';
import { train, unigramEntropy, type TrainSettings } from '../native/trainer';
import type { ModelConfig } from '../native/types';
import { findReleasedModel, RELEASED_MODELS } from '../native/interop/released';
import { importActivity, importParams } from './import';
import { DEFAULT_LOSS_SCALE, type LossScaleSettings } from '../native/loss-scale';

export const trainParams = z
  .object({
    /**
     * 'train' (default) trains from the token shards; 'released' imports the authors' released checkpoint
     * `releasedModel` instead (PAPER.md §9.1), so the evaluations run on the published weights.
     */
    source: z.enum(['train', 'released']).default('train'),
    /** Released model id (native/interop/released.ts), e.g. backpack-small, backpack-mini-k4. */
    releasedModel: z.string().optional(),
    arch: z.enum(['backpack', 'gpt2', 'transformer']),
    nEmbd: z.number().int().positive(),
    nLayer: z.number().int().positive(),
    nHead: z.number().int().positive(),
    numSenses: z.number().int().positive().default(16),
    senseIntermediateScale: z.number().int().positive().default(4),
    shrinkSenseMlp: z.boolean().default(false),
    /** Learned positions (defaults to seqLen). */
    nPositions: z.number().int().positive().optional(),
    scaleAttnByInverseLayerIdx: z.boolean().default(true),
    steps: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    gradAccum: z.number().int().positive().default(1),
    seqLen: z.number().int().positive(),
    lr: z.number().positive().default(6e-4),
    warmupSteps: z.number().int().min(0).default(1000),
    weightDecay: z.number().min(0).default(0.1),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: z.number().positive().default(1e-8),
    clip: z.number().min(0).default(1.0),
    dropout: z.number().min(0).lt(1).default(0.1),
    seed: z.number().int().min(0).default(1111),
    evalInterval: z.number().int().min(0).default(1000),
    evalWindows: z.number().int().min(0).default(0),
    checkpointInterval: z.number().int().min(0).default(1000),
    logInterval: z.number().int().positive().default(10),
    /** Engine threads (0 = the node's assigned CPUs). */
    threads: z.number().int().min(0).default(0),
    /** 'cpu', 'cuda[:N,...]', or 'auto' (the node's assigned GPUs when it has any, else the CPU). */
    device: z.string().default('auto'),
    /**
     * Matmul arithmetic: fp32 (exact), tf32 (CUDA only; fp32 on the CPU), bf16 (CUDA tensor cores; AMX tiles on
     * CPUs that have them) or fp16 (CUDA tensor cores, the paper's recipe; needs loss scaling), fp32 accumulation
     * and master weights.
     */
    precision: z.enum(['fp32', 'tf32', 'bf16', 'fp16']).default('fp32'),
    /** Dynamic loss scaling: 'auto' turns it on for fp16 only (as the paper's GradScaler); 'dynamic' or 'off' force it. */
    lossScale: z.enum(['auto', 'dynamic', 'off']).default('auto'),
    /** The dynamic scale's start and its growth interval in clean steps (GradScaler's defaults). */
    lossScaleInit: z.number().positive().max(2 ** 127).default(DEFAULT_LOSS_SCALE.initial),
    lossScaleGrowthInterval: z.number().int().positive().default(DEFAULT_LOSS_SCALE.growthInterval),
  })
  .strict();

export type TrainParams = z.infer<typeof trainParams>;

function findShards(ctx: ActivityContext): InputArtifact {
  for (const refs of Object.values(ctx.inputs))
    for (const r of refs) if (fs.existsSync(path.join(r.dir, 'train', 'meta.json')) && fs.existsSync(path.join(r.dir, 'val', 'meta.json'))) return r;
  throw new NonRetryableError(`${ctx.node.step}: needs an upstream token-shard artifact with train/ and val/ shard sets; inputs: ${Object.keys(ctx.inputs).join(', ') || 'none'}`);
}

export function modelConfigFor(p: TrainParams, realVocabSize: number): ModelConfig {
  const arch = p.arch === 'transformer' ? 'gpt2' : p.arch;
  const c: ModelConfig = {
    arch,
    vocabSize: padVocab(realVocabSize),
    realVocabSize,
    nPositions: p.nPositions ?? p.seqLen,
    nEmbd: p.nEmbd,
    nLayer: p.nLayer,
    nHead: p.nHead,
    scaleAttnByInverseLayerIdx: p.scaleAttnByInverseLayerIdx,
    layerNormEpsilon: 1e-5,
  };
  if (arch === 'backpack') Object.assign(c, { numSenses: p.numSenses, senseIntermediateScale: p.senseIntermediateScale, shrinkSenseMlp: p.shrinkSenseMlp });
  if (c.nPositions < p.seqLen) throw new NonRetryableError(`nPositions ${c.nPositions} is shorter than seqLen ${p.seqLen}`);
  return c;
}

/** The loss-scaling settings a run uses: on for fp16 unless turned off, on for others only when asked. */
export function lossScaleFor(p: Pick<TrainParams, 'precision' | 'lossScale' | 'lossScaleInit' | 'lossScaleGrowthInterval'>): LossScaleSettings | undefined {
  const on = p.lossScale === 'dynamic' || (p.lossScale === 'auto' && p.precision === 'fp16');
  return on ? { ...DEFAULT_LOSS_SCALE, initial: p.lossScaleInit, growthInterval: p.lossScaleGrowthInterval } : undefined;
}

/** 'auto' means the GPUs the engine assigned to this node (all of them: data parallel), else the CPU. */
function resolveTrainDevice(device: string, gpus: number[]): string {
  if (device !== 'auto') return device;
  return gpus.length > 0 ? `cuda:${gpus.join(',')}` : 'cpu';
}

export const trainActivity = defineActivity({
  name: 'model.train',
  version: '1',
  description: 'Train a Backpack or Transformer LM on token shards with the native engine (AdamW, warmup + linear decay, dropout, resumable checkpoints).',
  params: trainParams,
  resources: { cpus: 2, gpus: 0, memoryMb: 4096 },
  async run(p, ctx) {
    if (p.source === 'released') {
      if (!p.releasedModel) throw new NonRetryableError(`${ctx.node.step}: source "released" needs releasedModel`);
      if (!findReleasedModel(p.releasedModel)) {
        throw new NonRetryableError(`${ctx.node.step}: "${p.releasedModel}" is not a released model (known: ${RELEASED_MODELS.map((m) => m.id).join(', ')})`);
      }
      return importActivity.run(importParams.parse({ model: p.releasedModel }), ctx);
    }
    const data = findShards(ctx);
    const meta = readShardMeta(path.join(data.dir, 'train'));
    const config = modelConfigFor(p, meta.vocabSize);
    setThreads(p.threads > 0 ? p.threads : Math.max(1, ctx.devices.cpus));
    const [trainStream, valStream] = await Promise.all([readTokenStream(path.join(data.dir, 'train')), readTokenStream(path.join(data.dir, 'val'))]);
    if (trainStream.length < p.seqLen + 1) throw new NonRetryableError(`training split has ${trainStream.length} tokens, fewer than one window of ${p.seqLen + 1}`);
    throwIfAborted(ctx.signal);
    const settings: TrainSettings = {
      steps: p.steps, batchSize: p.batchSize, gradAccum: p.gradAccum, seqLen: p.seqLen, lr: p.lr, warmupSteps: p.warmupSteps,
      weightDecay: p.weightDecay, beta1: p.beta1, beta2: p.beta2, eps: p.eps, clip: p.clip, dropout: p.dropout, seed: p.seed,
      evalInterval: p.evalInterval, evalWindows: p.evalWindows, checkpointInterval: p.checkpointInterval, logInterval: p.logInterval,
      device: { device: resolveTrainDevice(p.device, ctx.devices.gpus), precision: p.precision },
      lossScale: lossScaleFor(p),
    };
    const started = Date.now();
    const result = await train(config, settings, trainStream, valStream, {
      signal: ctx.signal,
      checkpointRoot: path.join(ctx.scratchDir, 'checkpoints'),
      onCheckpoint: (step, dir) => ctx.checkpoint({ step, path: dir }),
      onProgress: (e) =>
        ctx.progress({
          fraction: e.step / e.steps,
          message: `step ${e.step}/${e.steps} loss ${e.loss.toFixed(4)}${e.valLoss !== undefined ? ` val ${e.valLoss.toFixed(4)}` : ''} ${Math.round(e.tokensPerSecond)} tok/s ETA ${Math.round(e.etaSeconds)}s`,
          metrics: { step: e.step, loss: e.loss, tokensPerSecond: e.tokensPerSecond, etaSeconds: e.etaSeconds, ...(e.valLoss !== undefined ? { valLoss: e.valLoss } : {}) },
        }),
      log: (m) => ctx.log(m),
    });
    await result.model.save(path.join(ctx.outDir, 'model'));
    const tokenizerJson = path.join(data.dir, 'tokenizer', 'tokenizer.json');
    if (fs.existsSync(tokenizerJson)) fs.copyFileSync(tokenizerJson, path.join(ctx.outDir, 'model', 'tokenizer.json'));
    await writeParquetTable(path.join(ctx.outDir, 'metrics.parquet'), {
      step: { type: 'INT64' }, loss: { type: 'DOUBLE' }, val_loss: { type: 'DOUBLE', optional: true }, lr: { type: 'DOUBLE' }, grad_norm: { type: 'DOUBLE' }, tokens_per_s: { type: 'DOUBLE' },
      loss_scale: { type: 'DOUBLE' },
    }, result.metrics.map((m) => ({ ...m, val_loss: m.val_loss ?? undefined })));
    const summary = {
      arch: config.arch,
      device: settings.device?.device,
      params: result.model.numParams,
      steps: p.steps,
      tokensSeen: p.steps * p.batchSize * p.gradAccum * p.seqLen,
      finalTrainLoss: result.metrics[result.metrics.length - 1]?.loss,
      valLoss: result.finalValLoss,
      unigramEntropy: unigramEntropy(trainStream, meta.vocabSize),
      tokenizer: meta.tokenizer,
      realVocabSize: meta.vocabSize,
      resumedFromStep: result.resumedFrom ?? null,
      skippedSteps: result.skippedSteps,
      tokensPerSecond: result.tokensPerSecond,
      seconds: (Date.now() - started) / 1000,
    };
    fs.writeFileSync(path.join(ctx.outDir, 'train.json'), JSON.stringify({ config, settings, ...summary }, null, 2) + '\n');
    result.model.dispose();
    return summary;
  },
});

export const trainActivities: AnyActivity[] = [trainActivity as unknown as AnyActivity];
