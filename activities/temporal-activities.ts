/**
 * The Temporal activities a worker registers: thin wrappers around executeNode (the same code path
 * the local engine uses, so both engines produce identical artifacts). Progress and checkpoints
 * become heartbeat details (live in the Web UI, handed to the next attempt as ctx.resumeState);
 * Temporal cancellation becomes the node's AbortSignal; GPU ids come from the worker's pool.
 */
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import * as os from 'os';
import type { ProgressUpdate } from '../pipelines/activity';
import { executeNode } from '../pipelines/execute-node';
import type { PlanNode } from '../pipelines/plan-types';
import type { ArtifactStore } from '../pipelines/store';
import type { IdPool } from '../pipelines/temporal/resource-pool';
import type { NodeHeartbeat, PipelineActivities, RunNodeInput, RunNodeOutput } from '../workflows/types';
import type { ActivityRegistry } from './index';

export interface TemporalActivityDeps {
  store: ArtifactStore;
  registry: ActivityRegistry;
  gpus: IdPool;
  /** CPU slots of this worker; undefined on GPU-only queues (their nodes bring their own CPU share). */
  cpus?: IdPool;
  /** Called with each heartbeat (tests, worker logs). */
  onHeartbeat?: (details: NodeHeartbeat) => void;
}

export function createTemporalActivities(deps: TemporalActivityDeps): PipelineActivities {
  const { store, registry } = deps;
  const worker = `${os.hostname()}:${process.pid}`;

  return {
    async lookupCache({ keys }) {
      const committed = store.committedKeys();
      return keys.filter((k) => committed.has(k) && store.has(k));
    },

    async runNode(input: RunNodeInput): Promise<RunNodeOutput> {
      const ctx = Context.current();
      const { node } = input;
      const attempt = ctx.info.attempt;
      const previous = ctx.info.heartbeatDetails as NodeHeartbeat | undefined;
      const details: NodeHeartbeat = { step: node.step, item: node.item, attempt, gpus: [], worker, resume: previous?.resume };
      const beat = () => {
        ctx.heartbeat(details);
        deps.onHeartbeat?.(details);
      };
      // Heartbeat even when the activity reports nothing, so a dead worker is noticed and
      // cancellation requests reach us.
      const every = Math.max(200, Math.min(10_000, (ctx.info.heartbeatTimeoutMs ?? 30_000) / 3));
      const timer = setInterval(beat, every);
      beat();

      const signal = ctx.cancellationSignal;
      const cpuPool = node.resources.gpus > 0 ? undefined : deps.cpus;
      let cpuSlots: number[] = [];
      let gpus: number[] = [];
      try {
        cpuSlots = cpuPool ? await cpuPool.acquire(Math.min(Math.max(node.resources.cpus, 1), cpuPool.ids.length), signal) : [];
        gpus = await deps.gpus.acquire(node.resources.gpus, signal);
        details.gpus = gpus;
        beat();
        const byId = new Map(input.upstream.map((u) => [u.id, u]));
        const result = await executeNode(node, {
          store,
          registry,
          runId: input.runId,
          upstream: (id) => upstreamNode(byId.get(id), id, node),
          devices: { gpus, cpus: node.resources.cpus },
          signal,
          attempt,
          resumeState: previous?.resume,
          onProgress: (update: ProgressUpdate) => {
            details.progress = update;
            beat();
          },
          onCheckpoint: (state) => {
            details.resume = state;
            beat();
          },
          onLog: (message) => log.info(message, { node: node.id }),
        });
        return { status: result.status, key: result.key, durationMs: result.durationMs, attempt };
      } catch (err) {
        throw toFailure(err, node, attempt);
      } finally {
        clearInterval(timer);
        if (gpus.length) deps.gpus.release(gpus);
        if (cpuSlots.length) cpuPool!.release(cpuSlots);
      }
    },
  };
}

function upstreamNode(ref: RunNodeInput['upstream'][number] | undefined, id: string, node: PlanNode): PlanNode {
  if (!ref) throw new Error(`node ${node.id}: upstream ${id} missing from the activity input`);
  // executeNode reads identity and key of upstream nodes only.
  return { ...ref, uses: '', version: '', params: {}, needs: [], resources: { cpus: 0, gpus: 0, memoryMb: 0 }, retries: 0, cache: true };
}

/**
 * Errors a retry cannot fix, and errors after the node's own `retries` are used up, stop Temporal's
 * retries; anything else (and lost workers, which never reach this code) is retried.
 */
function toFailure(err: unknown, node: PlanNode, attempt: number): unknown {
  if (err instanceof ApplicationFailure) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const nonRetryable = (e as { nonRetryable?: boolean }).nonRetryable === true || attempt >= node.retries + 1;
  return ApplicationFailure.create({
    message: e.message,
    type: e.name === 'NonRetryableError' ? 'NonRetryableError' : e.name || 'Error',
    nonRetryable,
    cause: e,
  });
}
