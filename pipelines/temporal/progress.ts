/**
 * Follows a pipeline run on Temporal and turns it into the engine events the CLI renders: step
 * workflows' journals (queried incrementally) give cached/succeeded/failed/skipped; pending
 * activities' state and heartbeat details (from describe) give started/progress/retried.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { EngineEvent } from '../engine-events';
import type { Plan, PlanNode } from '../plan-types';
import { journalQuery, progressQuery, type NodeHeartbeat, type NodeLogEntry, type PipelineProgress } from '../../workflows/types';
import { nodeActivityId } from './naming';

interface ChildCursor {
  runId?: string;
  nextSeq: number;
  finished: boolean;
}

interface ActivitySeen {
  attempt: number;
  progress: string;
}

type Terminal = 'cached' | 'succeeded' | 'failed' | 'skipped';

const STARTED = 2; // temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED

export class ProgressFollower {
  private readonly byId: Map<string, PlanNode>;
  private readonly byActivityId = new Map<string, PlanNode>();
  private readonly cursors = new Map<string, ChildCursor>();
  private readonly activities = new Map<string, ActivitySeen>();
  private readonly started = new Set<string>();
  readonly terminal = new Map<string, Terminal>();
  private stopped = false;
  private loop?: Promise<void>;
  lastProgress?: PipelineProgress;

  constructor(
    private readonly client: Client,
    private readonly handle: WorkflowHandle,
    plan: Plan,
    runId: string,
    private readonly onEvent: (e: EngineEvent) => void,
    private readonly intervalMs = 500,
  ) {
    this.byId = new Map(plan.nodes.map((n) => [n.id, n]));
    for (const n of plan.nodes) this.byActivityId.set(nodeActivityId(runId, n), n);
  }

  start(): void {
    const at = Date.now();
    for (const n of this.byId.values()) this.emit(n, { type: 'queued', at });
    this.loop = (async () => {
      while (!this.stopped) {
        await this.poll().catch(() => undefined); // server restarting, no worker yet: try again
        await new Promise((r) => setTimeout(r, this.intervalMs));
      }
    })();
  }

  /** Stops polling and reads every journal to its end, so no final state is missed. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    for (let i = 0; i < 3; i++) {
      try {
        await this.poll(true);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Marks nodes the parent never handed to a step (upstream failed) as skipped. */
  markSkipped(ids: string[], reason: string): void {
    for (const id of ids) {
      const n = this.byId.get(id);
      if (n && !this.terminal.has(id)) this.emit(n, { type: 'skipped', error: reason, at: Date.now() });
    }
  }

  private async poll(final = false): Promise<void> {
    const progress = await this.handle.query(progressQuery);
    this.lastProgress = progress;
    for (const child of progress.children) {
      let cursor = this.cursors.get(child.workflowId);
      if (!cursor) this.cursors.set(child.workflowId, (cursor = { nextSeq: 0, finished: false }));
      if (cursor.finished) continue;
      await this.readJournal(child.workflowId, cursor);
      if (child.status === 'running' && !final) await this.readActivities(child.workflowId);
      if (child.status === 'done' && final) cursor.finished = true;
    }
  }

  private async readJournal(workflowId: string, cursor: ChildCursor): Promise<void> {
    let journal = await this.client.workflow.getHandle(workflowId).query(journalQuery, cursor.nextSeq);
    if (cursor.runId && journal.runId !== cursor.runId) {
      // The chunk continued as new: finish reading the run we were following first.
      const old = await this.client.workflow.getHandle(workflowId, cursor.runId).query(journalQuery, cursor.nextSeq);
      this.apply(old.entries, cursor);
      journal = await this.client.workflow.getHandle(workflowId).query(journalQuery, cursor.nextSeq);
    }
    cursor.runId = journal.runId;
    this.apply(journal.entries, cursor);
  }

  private apply(entries: NodeLogEntry[], cursor: ChildCursor): void {
    for (const e of entries) {
      if (e.seq < cursor.nextSeq) continue;
      cursor.nextSeq = e.seq + 1;
      const node = this.byId.get(e.id);
      if (!node || e.type === 'scheduled') continue;
      if ((e.type === 'succeeded' || e.type === 'failed') && !this.started.has(e.id)) {
        this.started.add(e.id);
        this.emit(node, { type: 'started', attempt: e.attempt, at: e.at - (e.durationMs ?? 0) });
      }
      this.emit(node, { type: e.type, attempt: e.attempt, error: e.error, durationMs: e.durationMs, at: e.at });
    }
  }

  private async readActivities(workflowId: string): Promise<void> {
    const desc = await this.client.workflow.getHandle(workflowId).describe();
    for (const pa of desc.raw.pendingActivities ?? []) {
      const node = this.byActivityId.get(pa.activityId ?? '');
      if (!node || this.terminal.has(node.id)) continue;
      const attempt = pa.attempt ?? 1;
      const payload = pa.heartbeatDetails?.payloads?.[0];
      const details = payload ? (defaultPayloadConverter.fromPayload(payload as never) as NodeHeartbeat) : undefined;
      const seen = this.activities.get(node.id) ?? { attempt: 1, progress: '' };
      if (attempt > seen.attempt) {
        this.emit(node, { type: 'retried', attempt, error: pa.lastFailure?.message ?? undefined, at: Date.now() });
        this.started.delete(node.id);
      }
      if (pa.state === STARTED && !this.started.has(node.id)) {
        this.started.add(node.id);
        this.emit(node, { type: 'started', attempt, gpus: details?.attempt === attempt ? details.gpus : undefined, at: Date.now() });
      }
      const progress = details?.attempt === attempt && details.progress ? JSON.stringify(details.progress) : '';
      if (progress && progress !== seen.progress) this.emit(node, { type: 'progress', attempt, progress: details!.progress, at: Date.now() });
      this.activities.set(node.id, { attempt, progress: progress || seen.progress });
    }
  }

  private emit(node: PlanNode, e: Omit<EngineEvent, 'nodeId' | 'step' | 'item' | 'key'>): void {
    if (e.type === 'cached' || e.type === 'succeeded' || e.type === 'failed' || e.type === 'skipped') this.terminal.set(node.id, e.type);
    const event: EngineEvent = { nodeId: node.id, step: node.step, item: node.item, key: node.key, ...e };
    for (const k of Object.keys(event) as (keyof EngineEvent)[]) if (event[k] === undefined) delete event[k];
    this.onEvent(event);
  }
}
