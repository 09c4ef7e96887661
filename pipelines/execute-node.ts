/**
 * Runs one plan node through its activity: the single code path both engines use.
 * Cache check → write lock → temp dir → activity → lineage + fsync + atomic rename → unlock.
 */
import * as fs from 'fs';
import * as os from 'os';
import type { ActivityRegistry } from '../activities/index';
import { NonRetryableError, type ActivityContext, type InputArtifact, type ProgressUpdate } from './activity';
import { codeVersion } from './code-version';
import type { PlanNode } from './plan-types';
import type { ArtifactStore, Lineage } from './store';

export interface NodeRunOptions {
  store: ArtifactStore;
  registry: ActivityRegistry;
  runId: string;
  /** Upstream nodes by id (to resolve `node.needs` into artifacts). */
  upstream: (id: string) => PlanNode;
  devices: { gpus: number[]; cpus: number };
  signal: AbortSignal;
  attempt: number;
  onProgress?: (update: ProgressUpdate) => void;
  onLog?: (message: string) => void;
  /** Resume state from the engine (Temporal heartbeat details); defaults to the store's scratch record. */
  resumeState?: unknown;
  onCheckpoint?: (state: unknown) => void;
  /** How long to wait for another process holding the key's lock before giving up. */
  lockWaitMs?: number;
}

export interface NodeRunResult {
  status: 'cached' | 'succeeded';
  key: string;
  summary: unknown;
  durationMs: number;
}

export async function executeNode(node: PlanNode, opts: NodeRunOptions): Promise<NodeRunResult> {
  const { store, registry } = opts;
  const started = Date.now();
  if (node.cache && store.has(node.key)) {
    return { status: 'cached', key: node.key, summary: store.lineage(node.key)?.summary ?? null, durationMs: 0 };
  }
  const activity = registry.get(node.uses);
  if (!activity) throw new NonRetryableError(`unknown activity "${node.uses}" (node ${node.id})`);
  const parsed = activity.params.safeParse(node.params);
  if (!parsed.success) {
    throw new NonRetryableError(`node ${node.id}: invalid params for ${node.uses}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }

  const release = await acquireLock(store, node, opts);
  let tempDir: string | undefined;
  try {
    // Another process may have committed it while we waited for the lock.
    if (node.cache && store.has(node.key)) {
      return { status: 'cached', key: node.key, summary: store.lineage(node.key)?.summary ?? null, durationMs: 0 };
    }
    const inputs: Record<string, InputArtifact[]> = {};
    const inputRefs: Lineage['inputs'] = [];
    for (const id of node.needs) {
      const up = opts.upstream(id);
      if (!store.has(up.key)) throw new Error(`node ${node.id}: input ${up.id} (${up.key.slice(0, 12)}) is not committed`);
      (inputs[up.step] ??= []).push({
        step: up.step,
        item: up.item,
        matrix: up.matrix,
        key: up.key,
        dir: store.artifactDir(up.key),
        summary: store.lineage(up.key)?.summary ?? null,
      });
      inputRefs.push({ step: up.step, item: up.item, key: up.key });
    }
    tempDir = store.createTemp(node.key);
    // Created on demand by the activity: directory create/remove costs milliseconds on some disks.
    const scratchDir = store.scratchDir(node.key);
    const ctx: ActivityContext = {
      node: { runId: opts.runId, step: node.step, item: node.item, key: node.key },
      outDir: tempDir,
      inputs,
      progress: (u) => opts.onProgress?.(u),
      signal: opts.signal,
      devices: opts.devices,
      scratchDir,
      resumeState: opts.resumeState ?? store.readResumeState(node.key),
      checkpoint: (state) => {
        store.writeResumeState(node.key, state);
        opts.onCheckpoint?.(state);
      },
      log: (m) => opts.onLog?.(m),
      attempt: opts.attempt,
    };
    const startedAt = new Date(started).toISOString();
    const summary = (await activity.run(parsed.data, ctx)) ?? null;
    if (opts.signal.aborted) throw new Error('cancelled');
    const ended = Date.now();
    await store.commit(node.key, tempDir, {
      key: node.key,
      runId: opts.runId,
      step: node.step,
      item: node.item,
      uses: node.uses,
      version: node.version,
      params: node.params,
      inputs: inputRefs,
      summary,
      codeVersion: codeVersion(),
      host: os.hostname(),
      pid: process.pid,
      attempt: opts.attempt,
      startedAt,
      endedAt: new Date(ended).toISOString(),
      durationMs: ended - started,
    });
    tempDir = undefined;
    store.clearScratch(node.key);
    return { status: 'succeeded', key: node.key, summary, durationMs: ended - started };
  } finally {
    if (tempDir) store.discardTemp(tempDir);
    release();
  }
}

async function acquireLock(store: ArtifactStore, node: PlanNode, opts: NodeRunOptions): Promise<() => void> {
  const deadline = Date.now() + (opts.lockWaitMs ?? 24 * 3600_000);
  let delay = 20;
  for (;;) {
    const release = store.tryLock(node.key, `${opts.runId}:${node.id}`);
    if (release) return release;
    if (opts.signal.aborted) throw new Error('cancelled while waiting for lock');
    if (Date.now() > deadline) throw new Error(`node ${node.id}: key ${node.key.slice(0, 12)} is locked by another run`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 1000);
  }
}
