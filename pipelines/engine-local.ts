/**
 * The embedded engine: executes a plan in this process with rxjs as the event backbone.
 * Ready nodes start as soon as their resources fit (CPU slots, GPU device ids, memory); cached nodes
 * complete immediately; failures retry with exponential backoff; with keep-going the rest of the
 * DAG continues past a failure and the failed items are reported at the end.
 */
import { setMaxListeners } from 'events';
import { Observable, Subject } from 'rxjs';
import type { ActivityRegistry } from '../activities/index';
import type { ProgressUpdate } from './activity';
import type { EngineEvent, EngineSummary } from './engine-events';
import { executeNode } from './execute-node';
import type { Plan, PlanNode } from './plan-types';
import type { ArtifactStore } from './store';

export interface LocalEngineOptions {
  store: ArtifactStore;
  registry: ActivityRegistry;
  runId: string;
  /** CPU slots (nodes reserve `resources.cpus` each, clamped to this). */
  cpus: number;
  /** GPU device ids this engine may hand out. */
  gpus: number[];
  /** Memory pool in MiB (advisory; a node asking for more than the pool gets the whole pool). */
  memoryMb: number;
  keepGoing: boolean;
  signal?: AbortSignal;
  /** First retry delay; doubles each attempt (default 1000 ms). */
  retryBaseMs?: number;
  /** Minimum interval between progress events of one node (default 200 ms). */
  progressIntervalMs?: number;
}

export interface LocalExecution {
  events$: Observable<EngineEvent>;
  done: Promise<EngineSummary>;
}

type NodeState = 'pending' | 'ready' | 'running' | 'waiting-retry' | 'done' | 'failed' | 'skipped';

export function executePlanLocally(plan: Plan, opts: LocalEngineOptions): LocalExecution {
  const subject = new Subject<EngineEvent>();
  // Start on the next tick so subscribers attached right after this call see every event.
  const done = new Promise<EngineSummary>((resolve, reject) => {
    setImmediate(() => new LocalRun(plan, opts, subject).start().then(resolve, reject));
  });
  return { events$: subject.asObservable(), done };
}

class LocalRun {
  private readonly byId = new Map<string, PlanNode>();
  private readonly state = new Map<string, NodeState>();
  private readonly waitingOn = new Map<string, number>();
  private readonly children = new Map<string, string[]>();
  private readonly attempts = new Map<string, number>();
  private readonly ready: PlanNode[] = [];
  private readonly running = new Map<string, AbortController>();
  private freeCpus: number;
  private freeMemory: number;
  private readonly freeGpus: number[];
  private stopScheduling = false;
  private finished = false;
  private resolveDone!: () => void;
  private readonly summary: EngineSummary = { succeeded: 0, cached: 0, failed: [], skipped: [], cancelled: false };
  private pendingRetries = 0;

  constructor(
    private readonly plan: Plan,
    private readonly opts: LocalEngineOptions,
    private readonly events: Subject<EngineEvent>,
  ) {
    this.freeCpus = Math.max(1, opts.cpus);
    this.freeMemory = Math.max(1, opts.memoryMb);
    this.freeGpus = [...opts.gpus];
  }

  async start(): Promise<EngineSummary> {
    const committed = this.opts.store.committedKeys();
    for (const node of this.plan.nodes) {
      this.byId.set(node.id, node);
      this.state.set(node.id, 'pending');
      this.waitingOn.set(node.id, node.needs.length);
      for (const up of node.needs) {
        const list = this.children.get(up);
        if (list) list.push(node.id);
        else this.children.set(up, [node.id]);
      }
    }
    const finished = new Promise<void>((r) => (this.resolveDone = r));
    const onAbort = () => this.cancel();
    this.opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (this.opts.signal?.aborted) this.cancel();
    for (const node of this.plan.nodes) {
      if (this.state.get(node.id) !== 'pending') continue;
      // A committed key is final whatever its upstream state: its inputs are part of the key.
      if (node.cache && committed.has(node.key) && this.opts.store.has(node.key)) {
        this.state.set(node.id, 'done');
        this.summary.cached++;
        this.emit('cached', node);
        continue;
      }
      this.emit('queued', node);
    }
    for (const node of this.plan.nodes) {
      if (this.state.get(node.id) === 'done') this.release(node);
    }
    for (const node of this.plan.nodes) {
      if (this.state.get(node.id) === 'pending' && this.waitingOn.get(node.id) === 0) this.makeReady(node);
    }
    this.pump();
    this.checkFinished();
    await finished;
    this.opts.signal?.removeEventListener('abort', onAbort);
    this.events.complete();
    return this.summary;
  }

  private emit(type: EngineEvent['type'], node: PlanNode, extra: Partial<EngineEvent> = {}) {
    this.events.next({ type, nodeId: node.id, step: node.step, item: node.item, key: node.key, at: Date.now(), ...extra });
  }

  /** A finished node unblocks its children. */
  private release(node: PlanNode) {
    for (const child of this.children.get(node.id) ?? []) {
      const left = this.waitingOn.get(child)! - 1;
      this.waitingOn.set(child, left);
      if (left === 0 && this.state.get(child) === 'pending') this.makeReady(this.byId.get(child)!);
    }
  }

  private makeReady(node: PlanNode) {
    this.state.set(node.id, 'ready');
    this.ready.push(node);
  }

  private pump() {
    if (this.stopScheduling) return;
    for (let i = 0; i < this.ready.length; ) {
      const node = this.ready[i];
      const gpusWanted = node.resources.gpus;
      if (gpusWanted > this.opts.gpus.length) {
        this.ready.splice(i, 1);
        this.fail(node, `needs ${gpusWanted} GPU(s) but the engine has ${this.opts.gpus.length} (use --gpus)`);
        continue;
      }
      const cpus = Math.min(Math.max(node.resources.cpus, 0), this.opts.cpus);
      const mem = Math.min(node.resources.memoryMb, this.opts.memoryMb);
      const cpuSlots = Math.max(cpus, 1);
      if (cpuSlots <= this.freeCpus && mem <= this.freeMemory && gpusWanted <= this.freeGpus.length) {
        this.ready.splice(i, 1);
        this.freeCpus -= cpuSlots;
        this.freeMemory -= mem;
        const gpus = this.freeGpus.splice(0, gpusWanted);
        void this.runNode(node, cpuSlots, mem, gpus);
      } else i++;
    }
  }

  private async runNode(node: PlanNode, cpus: number, mem: number, gpus: number[]) {
    const attempt = (this.attempts.get(node.id) ?? 0) + 1;
    this.attempts.set(node.id, attempt);
    this.state.set(node.id, 'running');
    const controller = new AbortController();
    // Activities legitimately attach one listener per in-flight native call (queued batches).
    setMaxListeners(1000, controller.signal);
    this.running.set(node.id, controller);
    this.emit('started', node, { attempt, gpus });
    let lastProgress = 0;
    const interval = this.opts.progressIntervalMs ?? 200;
    const onProgress = (progress: ProgressUpdate) => {
      const now = Date.now();
      if (now - lastProgress < interval && (progress.fraction ?? 0) < 1) return;
      lastProgress = now;
      this.emit('progress', node, { progress, attempt });
    };
    try {
      const result = await executeNode(node, {
        store: this.opts.store,
        registry: this.opts.registry,
        runId: this.opts.runId,
        upstream: (id) => this.byId.get(id)!,
        devices: { gpus, cpus },
        signal: controller.signal,
        attempt,
        onProgress,
      });
      this.state.set(node.id, 'done');
      if (result.status === 'cached') this.summary.cached++;
      else this.summary.succeeded++;
      this.emit(result.status === 'cached' ? 'cached' : 'succeeded', node, { attempt, durationMs: result.durationMs });
      this.release(node);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const retryable = !(err as { nonRetryable?: boolean }).nonRetryable && !controller.signal.aborted;
      if (retryable && attempt <= node.retries && !this.stopScheduling) {
        this.state.set(node.id, 'waiting-retry');
        this.emit('retried', node, { attempt, error: message });
        const delay = (this.opts.retryBaseMs ?? 1000) * 2 ** (attempt - 1);
        this.pendingRetries++;
        setTimeout(() => {
          this.pendingRetries--;
          if (this.stopScheduling) {
            this.skip(node, 'cancelled');
            this.checkFinished();
            return;
          }
          this.makeReady(node);
          this.pump();
          this.checkFinished();
        }, delay);
      } else {
        this.fail(node, controller.signal.aborted ? `cancelled: ${message}` : message, attempt);
      }
    } finally {
      this.running.delete(node.id);
      this.freeCpus += cpus;
      this.freeMemory += mem;
      this.freeGpus.push(...gpus);
      this.freeGpus.sort((a, b) => a - b);
      this.pump();
      this.checkFinished();
    }
  }

  private fail(node: PlanNode, error: string, attempt?: number) {
    this.state.set(node.id, 'failed');
    this.summary.failed.push(node.id);
    this.emit('failed', node, { error, attempt });
    this.skipDescendants(node.id);
    if (!this.opts.keepGoing) this.stopScheduling = true;
  }

  private skip(node: PlanNode, reason: string) {
    this.state.set(node.id, 'skipped');
    this.summary.skipped.push(node.id);
    this.emit('skipped', node, { error: reason });
  }

  private skipDescendants(id: string) {
    for (const child of this.children.get(id) ?? []) {
      const s = this.state.get(child);
      if (s === 'pending' || s === 'ready') {
        const idx = this.ready.findIndex((n) => n.id === child);
        if (idx >= 0) this.ready.splice(idx, 1);
        this.skip(this.byId.get(child)!, `upstream ${id} failed`);
        this.skipDescendants(child);
      }
    }
  }

  private cancel() {
    if (this.summary.cancelled) return;
    this.summary.cancelled = true;
    this.stopScheduling = true;
    for (const c of this.running.values()) c.abort(new Error('cancelled'));
    this.checkFinished();
  }

  private checkFinished() {
    if (this.finished) return;
    if (this.running.size > 0 || this.pendingRetries > 0) return;
    if (!this.stopScheduling && this.ready.length > 0) return;
    // Nothing runs and nothing can start: whatever is left was blocked by a stop or failure.
    for (const node of this.plan.nodes) {
      const s = this.state.get(node.id);
      if (s === 'pending' || s === 'ready') this.skip(node, this.summary.cancelled ? 'cancelled' : 'not run (stopped after a failure)');
    }
    this.finished = true;
    this.resolveDone();
  }
}
