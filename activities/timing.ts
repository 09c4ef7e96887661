/**
 * Table 7 (PAPER.md §6.9): forward-pass time of each main model, batch 32 × 512 tokens, mean over 100 timed passes
 * after 10 warm-up passes, with the device and arithmetic recorded beside every number (the paper used one A100).
 * A forward pass here is what a language-model evaluation does: every position's logits over the whole padded
 * vocabulary and the loss. Rows land in Table 7 of the report: row = model size, column = Backpack / Transformer.
 */
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { defineActivity, NonRetryableError, throwIfAborted, type AnyActivity } from '../pipelines/activity';
import { checkpointInputs } from './evaluation/artifacts';
import { matrixValueName, modelLabelFrom } from './evaluation/placement';
import { RESULTS_FILE, resultRow, writeResults, type ResultRow } from './evaluation/results';

export const forwardTimeParams = z
  .object({
    profile: z.string().default(''),
    batch: z.number().int().positive().default(32),
    seq: z.number().int().positive().default(512),
    warmup: z.number().int().min(0).default(10),
    runs: z.number().int().positive().default(100),
    /** 'cpu', 'cuda[:N]', or 'auto' (the node's first assigned GPU when it has one, else the CPU). */
    device: z.string().default('auto'),
    /** Matmul arithmetic (see model.train's precision). */
    precision: z.enum(['fp32', 'tf32', 'bf16', 'fp16']).default('fp32'),
    threads: z.number().int().positive().optional(),
  })
  .strict();

export type ForwardTimeParams = z.infer<typeof forwardTimeParams>;

/** Token ids of a fixed pseudo-random batch (timing does not depend on the text). */
function syntheticTokens(n: number, vocab: number): Int32Array {
  const out = new Int32Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x % vocab;
  }
  return out;
}

const capitalised = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

export const forwardTimeActivity = defineActivity({
  name: 'eval.forward_time',
  version: '1',
  description: 'Table 7: forward-pass seconds per batch (default 32 × 512, 10 warm-up + 100 timed passes) of every upstream checkpoint.',
  params: forwardTimeParams,
  resources: { cpus: 2, memoryMb: 4096 },
  async run(p, ctx) {
    const checkpoints = checkpointInputs(ctx.inputs);
    if (checkpoints.length === 0) throw new NonRetryableError(`${ctx.node.step}: no checkpoint (config.json + model.safetensors) among the inputs`);
    const device = p.device === 'auto' ? (ctx.devices.gpus.length > 0 ? `cuda:${ctx.devices.gpus[0]}` : 'cpu') : p.device;
    const { loadModel, setThreads } = await import('../native/index');
    setThreads(p.threads ?? Math.max(1, ctx.devices.cpus));
    const rows: ResultRow[] = [];
    const models: Record<string, unknown>[] = [];
    for (const [i, ckpt] of checkpoints.entries()) {
      throwIfAborted(ctx.signal);
      const model = await loadModel(ckpt.dir, { device, precision: p.precision });
      try {
        if (model.config.nPositions < p.seq) throw new NonRetryableError(`${ckpt.dir}: the model has ${model.config.nPositions} positions, fewer than seq ${p.seq}`);
        const label = modelLabelFrom(ckpt.input.matrix, model.config.arch, ckpt.input.item || ckpt.input.step);
        const sizeId = String(matrixValueName(ckpt.input.matrix.size) ?? label);
        const column = model.config.arch === 'backpack' ? 'Backpack' : 'Transformer';
        const tokens = syntheticTokens(p.batch * p.seq, model.config.realVocabSize ?? model.config.vocabSize);
        const pass = () => model.forward(tokens, { batch: p.batch, seq: p.seq, targets: tokens });
        for (let w = 0; w < p.warmup; w++) await pass();
        const seconds: number[] = [];
        for (let r = 0; r < p.runs; r++) {
          throwIfAborted(ctx.signal);
          const t0 = process.hrtime.bigint();
          await pass();
          seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
          ctx.progress({ fraction: (i + (r + 1) / p.runs) / checkpoints.length, message: `${label} ${r + 1}/${p.runs}` });
        }
        const mean = seconds.reduce((a, b) => a + b, 0) / seconds.length;
        const std = Math.sqrt(seconds.reduce((a, b) => a + (b - mean) ** 2, 0) / seconds.length);
        const details = { device: model.device, precision: p.precision, batch: p.batch, seq: p.seq, warmup: p.warmup, runs: p.runs, std_seconds: std };
        ctx.log(`forward time ${label}: ${mean.toFixed(4)} s ± ${std.toFixed(4)} (${p.runs} runs, batch ${p.batch} × ${p.seq}, ${model.device}, ${p.precision})`);
        // The setting goes into the model label so the report's Table 7 shows what was timed beside the paper's A100 row.
        rows.push(resultRow({ model: `${label} (${model.device}, ${p.precision}, ${p.batch}×${p.seq})`, profile: p.profile, task: 'forward-time', metric: 'forward_seconds', value: mean, n: p.runs, table: 'Table 7', row: capitalised(sizeId), column, details: JSON.stringify(details) }));
        models.push({ model: label, checkpoint: ckpt.dir, mean_seconds: mean, tokens_per_second: (p.batch * p.seq) / mean, ...details });
      } finally {
        model.dispose();
      }
    }
    await writeResults(path.join(ctx.outDir, RESULTS_FILE), rows);
    fs.writeFileSync(path.join(ctx.outDir, 'summary.json'), JSON.stringify({ task: 'forward-time', profile: p.profile, models }, null, 2) + '\n');
    return { task: 'forward-time', rows: rows.length, models };
  },
});

export const timingActivities: AnyActivity[] = [forwardTimeActivity];
