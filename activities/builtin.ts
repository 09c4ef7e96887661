/**
 * Small built-in activities: test DAGs, benchmarks of engine overhead, and glue steps.
 */
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { defineActivity, NonRetryableError, throwIfAborted, type AnyActivity } from '../pipelines/activity';

/** Writes its params (and its inputs' keys) to value.json: the cheapest real artifact. */
export const echoActivity = defineActivity({
  name: 'builtin.echo',
  version: '1',
  description: 'Write params and input keys to value.json (test and glue step).',
  params: z.object({ value: z.unknown().optional(), sleepMs: z.number().int().min(0).default(0) }).strict(),
  async run(params, ctx) {
    if (params.sleepMs > 0) await sleep(params.sleepMs, ctx.signal);
    const inputs = Object.fromEntries(
      Object.entries(ctx.inputs).map(([step, refs]) => [step, refs.map((r) => ({ item: r.item, key: r.key }))]),
    );
    const body = { value: params.value ?? null, inputs };
    fs.writeFileSync(path.join(ctx.outDir, 'value.json'), JSON.stringify(body, null, 2));
    return { value: params.value ?? null };
  },
});

/** Fails on purpose (tests of retries, keep-going and resume). */
export const failActivity = defineActivity({
  name: 'builtin.fail',
  version: '1',
  description: 'Fail unless a marker file exists, or until attempt N (tests).',
  params: z
    .object({
      unlessFileExists: z.string().optional(),
      succeedOnAttempt: z.number().int().min(1).optional(),
      message: z.string().default('failing on purpose'),
      value: z.unknown().optional(),
    })
    .strict(),
  async run(params, ctx) {
    const ok =
      (params.unlessFileExists !== undefined && fs.existsSync(params.unlessFileExists)) ||
      (params.succeedOnAttempt !== undefined && ctx.attempt >= params.succeedOnAttempt);
    if (!ok) throw new Error(params.message);
    fs.writeFileSync(path.join(ctx.outDir, 'value.json'), JSON.stringify({ value: params.value ?? null, attempt: ctx.attempt }));
    return { attempt: ctx.attempt };
  },
});

/** A slow, checkpointing counter: exercises resume state, progress and cancellation. */
export const countActivity = defineActivity({
  name: 'builtin.count',
  version: '1',
  description: 'Count to n with a delay per step, checkpointing every step (resume tests).',
  params: z.object({ n: z.number().int().min(0), stepMs: z.number().int().min(0).default(10) }).strict(),
  async run(params, ctx) {
    fs.mkdirSync(ctx.scratchDir, { recursive: true });
    const statePath = path.join(ctx.scratchDir, 'count.json');
    let start = 0;
    if (fs.existsSync(statePath)) start = JSON.parse(fs.readFileSync(statePath, 'utf8')).i;
    const resumedFrom = start;
    for (let i = start; i < params.n; i++) {
      throwIfAborted(ctx.signal);
      await sleep(params.stepMs, ctx.signal);
      fs.writeFileSync(statePath + '.tmp', JSON.stringify({ i: i + 1 }));
      fs.renameSync(statePath + '.tmp', statePath);
      ctx.checkpoint({ i: i + 1 });
      ctx.progress({ fraction: (i + 1) / params.n, metrics: { step: i + 1 } });
    }
    fs.writeFileSync(path.join(ctx.outDir, 'count.json'), JSON.stringify({ n: params.n }));
    return { n: params.n, resumedFrom };
  },
});

/** Reports the device ids it was given (resource-assignment tests). */
export const devicesActivity = defineActivity({
  name: 'builtin.devices',
  version: '1',
  description: 'Record assigned GPU ids and hold them for a while (resource tests).',
  params: z.object({ holdMs: z.number().int().min(0).default(50), tag: z.unknown().optional() }).strict(),
  async run(params, ctx) {
    const startedAt = Date.now();
    await sleep(params.holdMs, ctx.signal);
    const record = { gpus: ctx.devices.gpus, cpus: ctx.devices.cpus, startedAt, endedAt: Date.now(), pid: process.pid };
    fs.writeFileSync(path.join(ctx.outDir, 'devices.json'), JSON.stringify(record));
    if (ctx.devices.gpus.length === 0 && params.tag === 'need-gpu') throw new NonRetryableError('no GPU assigned');
    return record;
  },
});

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('cancelled'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error('cancelled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export const builtinActivities: AnyActivity[] = [echoActivity, failActivity, countActivity, devicesActivity];
