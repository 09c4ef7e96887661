/**
 * The activity contract (DESIGN.md principle 4): an activity is a plain async function with a typed
 * contract. Both engines (local rxjs, Temporal) call the same `run` through `executeNode`, so nothing
 * here may depend on which engine is driving.
 */
import type { z } from 'zod';

/** Resources one node of a step needs; the engine reserves them before `run` starts. */
export interface Resources {
  /** CPU slots (threads the activity may use). */
  cpus: number;
  /** Whole GPUs; the engine assigns concrete device ids in `ctx.devices.gpus`. */
  gpus: number;
  /** Resident memory in MiB (advisory pool accounting). */
  memoryMb: number;
}

export const DEFAULT_RESOURCES: Resources = { cpus: 1, gpus: 0, memoryMb: 512 };

/** A committed artifact of an upstream node, as seen by a downstream activity. */
export interface InputArtifact {
  /** The step that produced it. */
  step: string;
  /** Item id within that step's matrix ('' when the step has no matrix). */
  item: string;
  /** The matrix values of that item (empty object when none). */
  matrix: Record<string, unknown>;
  /** Content-addressed cache key. */
  key: string;
  /** Absolute directory holding the artifact's files (read-only). */
  dir: string;
  /** The small JSON summary the producing activity returned. */
  summary: unknown;
}

export interface ProgressUpdate {
  /** 0..1 when known. */
  fraction?: number;
  message?: string;
  /** Numeric live metrics (loss, step, tokens/s...). Shown in progress output and Temporal details. */
  metrics?: Record<string, number>;
}

export interface ActivityContext {
  /** Identity of the node being run. */
  node: { runId: string; step: string; item: string; key: string };
  /** Empty directory to write outputs into; it becomes the artifact on success (atomic rename). */
  outDir: string;
  /** Upstream artifacts keyed by step name (a fanned-out upstream gives several). */
  inputs: Record<string, InputArtifact[]>;
  /** Throttled by the engine; cheap to call often. */
  progress(update: ProgressUpdate): void;
  /** Aborted on cancellation (SIGINT, Temporal cancel). Long loops must check it. */
  signal: AbortSignal;
  /** Assigned resources: GPU device ids are exclusive to this node while it runs. */
  devices: { gpus: number[]; cpus: number };
  /**
   * Durable scratch directory for this node's key that survives failures and retries (checkpoints
   * for resumable training live here). Not created in advance: `mkdir -p` it before writing. Removed
   * once the artifact commits.
   */
  scratchDir: string;
  /** State the previous attempt recorded with `checkpoint` (Temporal: last heartbeat details). */
  resumeState?: unknown;
  /** Record resumable state (e.g. `{step, path}`); engines persist it (heartbeat details on Temporal). */
  checkpoint(state: unknown): void;
  log(message: string): void;
  /** 1-based attempt number. */
  attempt: number;
}

export interface ActivityDefinition<P extends z.ZodTypeAny = z.ZodTypeAny> {
  /** Referenced by `uses:` in dag.yaml. */
  name: string;
  /** Bump when the outputs for the same params would change: it is part of every cache key. */
  version: string;
  description: string;
  /** Parameters after profile/override/matrix merging; unknown keys are errors (use `.strict()`). */
  params: P;
  /** Default resources; dag.yaml `resources:` overrides per step. */
  resources?: Partial<Resources>;
  /** Produces files in ctx.outDir and returns a small JSON summary stored in the lineage record. */
  run(params: z.infer<P>, ctx: ActivityContext): Promise<unknown>;
}

export type AnyActivity = ActivityDefinition<z.ZodTypeAny>;

/** Helper that keeps the params type inferred at the definition site. */
export function defineActivity<P extends z.ZodTypeAny>(def: ActivityDefinition<P>): ActivityDefinition<P> {
  return def;
}

/** Thrown by activities for errors a retry cannot fix (bad input): engines do not retry these. */
export class NonRetryableError extends Error {
  readonly nonRetryable = true;
  constructor(message: string) {
    super(message);
    this.name = 'NonRetryableError';
  }
}

export class CancelledError extends Error {
  constructor(message = 'cancelled') {
    super(message);
    this.name = 'CancelledError';
  }
}

/** Throws CancelledError when the signal has fired; call inside long loops. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new CancelledError(String(signal.reason ?? 'cancelled'));
}
