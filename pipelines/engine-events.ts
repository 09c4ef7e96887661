/** Events both engines emit while executing a plan; the CLI renders them (bars, lines or JSON). */
import type { ProgressUpdate } from './activity';

export type EngineEventType = 'queued' | 'cached' | 'started' | 'progress' | 'retried' | 'succeeded' | 'failed' | 'skipped';

export interface EngineEvent {
  type: EngineEventType;
  nodeId: string;
  step: string;
  item: string;
  key: string;
  attempt?: number;
  progress?: ProgressUpdate;
  /** GPU ids assigned (started). */
  gpus?: number[];
  error?: string;
  durationMs?: number;
  /** ms since epoch */
  at: number;
}

export interface EngineSummary {
  succeeded: number;
  cached: number;
  /** Node ids that failed (after retries). */
  failed: string[];
  /** Node ids not run because an upstream failed or the run was cancelled. */
  skipped: string[];
  cancelled: boolean;
}
