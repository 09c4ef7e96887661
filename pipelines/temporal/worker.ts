/**
 * A pipeline worker process: polls the workflow queue and one activity task queue per resource class
 * it can serve (`cpu`, `gpu`, `gpu-xN`), with concurrency derived from its CPUs and GPU ids. All
 * workers of a deployment share one artifact store (a shared filesystem path).
 */
import { NativeConnection, Runtime, DefaultLogger, Worker, type LogLevel } from '@temporalio/worker';
import { createRegistry, type ActivityRegistry } from '../../activities/index';
import { createTemporalActivities } from '../../activities/temporal-activities';
import { ArtifactStore } from '../store';
import { DEFAULT_TASK_QUEUE_PREFIX, workflowQueue } from './naming';
import { EventWriter } from './event-log';
import { cpuSlots, IdPool } from './resource-pool';
import { workflowBundle } from './workflow-bundle';
import type { NodeHeartbeat } from '../../workflows/types';

export interface PipelineWorkerOptions {
  address?: string;
  namespace?: string;
  taskQueuePrefix?: string;
  storeRoot: string;
  /** GPU device ids this worker hands out (fake ids are fine for tests). */
  gpus: number[];
  /** CPU slots for `cpu` nodes; 0 = serve no cpu queue. */
  cpus: number;
  /** Queues to poll: `pipeline` (workflows), `cpu`, `gpu`, `gpu-xN`. Default: all the resources allow. */
  queues?: string[];
  registry?: ActivityRegistry;
  identity?: string;
  onHeartbeat?: (details: NodeHeartbeat) => void;
  /** On shutdown, running nodes get this long to finish before they are handed to other workers (default 10 s). */
  drainMs?: number;
  /** The SDK's own log level (default WARN). */
  logLevel?: LogLevel;
}

export interface RunningWorker {
  /** Full task queue names polled. */
  taskQueues: string[];
  /** Resolves when every inner worker stopped (after shutdown() or a fatal error). */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/** Queue classes a worker with these resources can serve. */
export function defaultQueues(cpus: number, gpus: number[]): string[] {
  const queues = ['pipeline'];
  if (cpus > 0) queues.push('cpu');
  if (gpus.length >= 1) queues.push('gpu');
  for (let k = 2; k <= gpus.length; k++) queues.push(`gpu-x${k}`);
  return queues;
}

/** How many activities of a queue class run at once on this worker. */
export function queueConcurrency(queue: string, cpus: number, gpus: number[]): number {
  if (queue === 'cpu') return Math.max(1, cpus);
  if (queue === 'gpu') return Math.max(1, gpus.length);
  const m = /^gpu-x(\d+)$/.exec(queue);
  if (m) return Math.max(1, Math.floor(gpus.length / Number(m[1])));
  throw new Error(`unknown queue class "${queue}" (expected pipeline, cpu, gpu or gpu-xN)`);
}

/** Throws when a queue class is unknown or the resources cannot serve it. */
export function validateQueues(queues: string[], cpus: number, gpus: number[]): void {
  if (queues.length === 0) throw new Error('no queues to poll');
  for (const q of queues) if (q !== 'pipeline') queueConcurrency(q, cpus, gpus);
  if (queues.includes('cpu') && cpus < 1) throw new Error('the cpu queue needs --cpus >= 1');
  for (const q of queues.filter((q) => q.startsWith('gpu'))) {
    const need = q === 'gpu' ? 1 : Number(q.slice('gpu-x'.length));
    if (gpus.length < need) throw new Error(`queue ${q} needs at least ${need} GPU id(s) in --gpus, got ${gpus.length}`);
  }
}

let runtimeInstalled = false;

/** Keeps the SDK's own logging at warnings (call before the first connection). */
export function installRuntime(level: LogLevel = 'WARN'): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger(level) });
  } catch {
    // Already installed by the host (tests): keep theirs.
  }
}

export async function startPipelineWorker(opts: PipelineWorkerOptions): Promise<RunningWorker> {
  installRuntime(opts.logLevel);
  const prefix = opts.taskQueuePrefix ?? DEFAULT_TASK_QUEUE_PREFIX;
  const namespace = opts.namespace ?? 'default';
  const queues = opts.queues ?? defaultQueues(opts.cpus, opts.gpus);
  validateQueues(queues, opts.cpus, opts.gpus);

  const connection = await NativeConnection.connect({ address: opts.address ?? 'localhost:7233' });
  const events = new EventWriter(opts.storeRoot);
  const activities = createTemporalActivities({
    events,
    store: new ArtifactStore(opts.storeRoot),
    registry: opts.registry ?? createRegistry(),
    gpus: new IdPool('GPU', opts.gpus),
    cpus: opts.cpus > 0 ? cpuSlots(opts.cpus) : undefined,
    onHeartbeat: opts.onHeartbeat,
  });
  const workers: Worker[] = [];
  try {
    for (const q of queues) {
      // Heartbeats (progress, loss, resume state) reach the server at least every 5 s, so the Web
      // UI's live details stay fresh; the SDK would otherwise hold them for 80% of the timeout.
      const common = {
        connection,
        namespace,
        shutdownGraceTime: opts.drainMs ?? 10_000,
        maxHeartbeatThrottleInterval: 5_000,
        defaultHeartbeatThrottleInterval: 5_000,
        ...(opts.identity ? { identity: opts.identity } : {}),
      };
      if (q === 'pipeline') {
        workers.push(
          await Worker.create({
            ...common,
            taskQueue: workflowQueue(prefix),
            workflowBundle: await workflowBundle(),
            activities: { lookupCache: activities.lookupCache },
            maxConcurrentActivityTaskExecutions: 4,
          }),
        );
      } else {
        workers.push(
          await Worker.create({
            ...common,
            taskQueue: `${prefix}${q}`,
            activities: { runNode: activities.runNode },
            maxConcurrentActivityTaskExecutions: queueConcurrency(q, opts.cpus, opts.gpus),
          }),
        );
      }
    }
  } catch (err) {
    await connection.close();
    throw err;
  }
  const done = Promise.all(workers.map((w) => w.run())).then(
    () => {
      events.close();
      return connection.close();
    },
    async (err) => {
      events.close();
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await connection.close().catch(() => undefined);
      throw err;
    },
  );
  return {
    taskQueues: queues.map((q) => (q === 'pipeline' ? workflowQueue(prefix) : `${prefix}${q}`)),
    done,
    async shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await done.catch(() => undefined);
    },
  };
}
