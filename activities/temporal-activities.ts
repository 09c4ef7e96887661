/**
 * The Temporal activities a worker registers: thin wrappers around executeNode (the same code path
 * the local engine uses, so both engines produce identical artifacts). Progress and checkpoints
 * become heartbeat details (live in the Web UI, handed to the next attempt as ctx.resumeState);
 * Temporal cancellation becomes the node's AbortSignal; GPU ids come from the worker's pool.
 */
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import * as os from 'os';
import type { ProgressUpdate } from '../pipelines/activity';
import type { EngineEvent } from '../pipelines/engine-events';
import { executeNode } from '../pipelines/execute-node';
import type { PlanNode } from '../pipelines/plan-types';
import type { ArtifactStore } from '../pipelines/store';
import type { EventWriter } from '../pipelines/temporal/event-log';
import type { IdPool } from '../pipelines/temporal/resource-pool';
import type { NodeHeartbeat, PipelineActivities, RunNodeInput, RunNodeOutput } from '../workflows/types';
import type { ActivityRegistry } from './index';

/** Progress lines in the event file: at most one per node per this interval. */
const PROGRESS_EVENT_MS = 500;

export interface TemporalActivityDeps {
  store: ArtifactStore;
  registry: ActivityRegistry;
  gpus: IdPool;
  /** CPU slots of this worker; undefined on GPU-only queues (their nodes bring their own CPU share). */
  cpus?: IdPool;
  /** Where node events go for clients following a run (the store's run event files). */
  events?: EventWriter;
  /** Called with each heartbeat (tests, worker logs). */
  onHeartbeat?: (details: NodeHeartbeat) => void;
}

export function createTemporalActivities(deps: TemporalActivityDeps): PipelineActivities {
  const { store, registry } = deps;
  const worker = `${os.hostname()}:${process.pid}`;
  const report = (runId: string, node: Pick<PlanNode, 'id' | 'step' | 'item' | 'key'>, e: Omit<EngineEvent, 'nodeId' | 'step' | 'item' | 'key' | 'at'>) => {
    try {
      deps.events?.write(runId, { nodeId: node.id, step: node.step, item: node.item, key: node.key, ...e, at: Date.now() });
    } catch (err) {
      log.warn(`cannot write the run's event file: ${(err as Error).message}`);
    }
  };

  return {
    async lookupCache({ keys, runId, nodes }) {
      const committed = store.committedKeys();
      const hits = keys.filter((k) => committed.has(k) && store.has(k));
      if (runId && nodes) {
        const hitSet = new Set(hits);
        for (const n of nodes) if (hitSet.has(n.key)) report(runId, n, { type: 'cached' });
      }
      return hits;
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
      let lastProgressEvent = 0;
      // Heartbeat even when the activity reports nothing, so a dead worker is noticed and
      // cancellation requests reach us.
      const every = Math.max(200, Math.min(10_000, (ctx.info.heartbeatTimeoutMs ?? 30_000) / 3));
      const timer = setInterval(beat, every);

      const signal = ctx.cancellationSignal;
      const cpuPool = node.resources.gpus > 0 ? undefined : deps.cpus;
      let cpuSlots: number[] = [];
      let gpus: number[] = [];
      try {
        cpuSlots = cpuPool ? await cpuPool.acquire(Math.min(Math.max(node.resources.cpus, 1), cpuPool.ids.length), signal) : [];
        gpus = await deps.gpus.acquire(node.resources.gpus, signal);
        details.gpus = gpus;
        report(input.runId, node, { type: 'started', attempt, gpus });
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
            const now = Date.now();
            if (now - lastProgressEvent >= PROGRESS_EVENT_MS || update.fraction === 1) {
              lastProgressEvent = now;
              report(input.runId, node, { type: 'progress', attempt, progress: update });
            }
          },
          onCheckpoint: (state) => {
            details.resume = state;
            beat();
          },
          onLog: (message) => log.info(message, { node: node.id }),
        });
        report(input.runId, node, { type: result.status, attempt, durationMs: result.durationMs });
        return { status: result.status, key: result.key, durationMs: result.durationMs, attempt };
      } catch (err) {
        if (signal.aborted) {
          // Cancelled by the run (final), or by this worker shutting down: then a retryable failure,
          // so another worker takes the node over from its last checkpoint.
          const reason = signal.reason instanceof CancelledFailure ? signal.reason : undefined;
          const shutdown = reason?.message === 'WORKER_SHUTDOWN';
          report(input.runId, node, shutdown ? { type: 'retried', attempt: attempt + 1, error: 'worker shut down' } : { type: 'failed', attempt, error: 'cancelled' });
          if (shutdown) throw ApplicationFailure.retryable(`worker ${worker} shut down while running ${node.id}`, 'WorkerShutdown');
          throw reason ?? err;
        }
        const failure = toFailure(err, node, attempt);
        const error = failure.message;
        if (failure.nonRetryable) report(input.runId, node, { type: 'failed', attempt, error });
        else report(input.runId, node, { type: 'retried', attempt: attempt + 1, error });
        throw failure;
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
function toFailure(err: unknown, node: PlanNode, attempt: number): ApplicationFailure {
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
