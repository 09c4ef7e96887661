/**
 * Inputs, outputs and queries of the pipeline workflows. Plain data only: these values are stored in
 * Temporal's history, so they carry plan nodes and artifact keys, never artifact contents.
 */
import { defineQuery } from '@temporalio/workflow';
import type { Plan, PlanNode } from '../pipelines/plan-types';

export interface EngineTuning {
  /** Prefix of every task queue name (several projects can share one namespace). */
  taskQueuePrefix: string;
  /** Activities of one step chunk in flight at once (sliding window). */
  window: number;
  /** Nodes per child workflow; larger sweeps are split into several children. */
  chunkSize: number;
  /** A child continues as new once its history has this many events (or the server suggests it). */
  maxHistoryEvents: number;
  /** A worker that stops heartbeating for this long is presumed dead; its activity is retried elsewhere. */
  heartbeatTimeoutMs: number;
  /** Upper bound of one attempt of one node. */
  startToCloseTimeoutMs: number;
  /** Extra attempts allowed for lost workers, on top of the node's own `retries`. */
  lostWorkerRetries: number;
  /** First retry delay (doubles, capped at 30 s). */
  retryInitialMs: number;
}

export const DEFAULT_TUNING: EngineTuning = {
  taskQueuePrefix: 'backpack-',
  window: 64,
  chunkSize: 500,
  maxHistoryEvents: 10_000,
  heartbeatTimeoutMs: 60_000,
  startToCloseTimeoutMs: 7 * 24 * 3600_000,
  lostWorkerRetries: 3,
  retryInitialMs: 1000,
};

export interface PipelineInput {
  runId: string;
  plan: Plan;
  keepGoing: boolean;
  tuning?: Partial<EngineTuning>;
}

/** An upstream artifact as a downstream node sees it: identity and key only. */
export interface UpstreamRef {
  id: string;
  step: string;
  item: string;
  matrix: Record<string, unknown>;
  key: string;
}

export interface FailedItem {
  id: string;
  error: string;
}

export interface StepOutcome {
  succeeded: number;
  cached: number;
  failed: FailedItem[];
  /** Nodes not run (an earlier failure stopped the chunk without keep-going). */
  skipped: string[];
}

export interface StepInput {
  runId: string;
  profile: string;
  planHash: string;
  step: string;
  part: number;
  parts: number;
  nodes: PlanNode[];
  upstream: UpstreamRef[];
  keepGoing: boolean;
  tuning: EngineTuning;
  /** Set by continue-as-new: what earlier runs of this chunk already did. */
  carried?: StepOutcome & { seq: number };
}

export interface PipelineResult extends StepOutcome {
  runId: string;
  planHash: string;
  /** Nodes not run because an upstream failed or the run stopped after a failure. */
  skipped: string[];
}

/** One line of a step workflow's journal; the client turns them into engine events. */
export interface NodeLogEntry {
  seq: number;
  id: string;
  type: 'cached' | 'scheduled' | 'succeeded' | 'failed' | 'skipped';
  attempt?: number;
  error?: string;
  durationMs?: number;
  at: number;
}

export interface StepJournal {
  runId: string;
  entries: NodeLogEntry[];
  nextSeq: number;
  done: boolean;
}

export interface ChildRef {
  workflowId: string;
  step: string;
  part: number;
  nodes: number;
  status: 'running' | 'done';
}

export interface PipelineProgress {
  runId: string;
  planHash: string;
  children: ChildRef[];
  steps: { step: string; status: 'waiting' | 'running' | 'done' | 'skipped'; total: number; succeeded: number; cached: number; failed: number; skipped: number }[];
  done: boolean;
}

export const progressQuery = defineQuery<PipelineProgress>('progress');
export const journalQuery = defineQuery<StepJournal, [number]>('journal');

/** Activity contracts (implemented in activities/temporal-activities.ts). */
export interface RunNodeInput {
  runId: string;
  profile: string;
  node: PlanNode;
  upstream: UpstreamRef[];
}

export interface RunNodeOutput {
  status: 'cached' | 'succeeded';
  key: string;
  durationMs: number;
  attempt: number;
}

/** What a running node heartbeats: shown live in the Web UI and handed to the next attempt. */
export interface NodeHeartbeat {
  step: string;
  item: string;
  attempt: number;
  gpus: number[];
  worker: string;
  progress?: { fraction?: number; message?: string; metrics?: Record<string, number> };
  /** Last state the activity recorded with ctx.checkpoint (becomes ctx.resumeState on retry). */
  resume?: unknown;
}

export interface PipelineActivities {
  runNode(input: RunNodeInput): Promise<RunNodeOutput>;
  /** The subset of `keys` already committed in the store; `nodes` (when given) are reported as cached. */
  lookupCache(input: { keys: string[]; runId?: string; nodes?: { id: string; step: string; item: string; key: string }[] }): Promise<string[]>;
}
