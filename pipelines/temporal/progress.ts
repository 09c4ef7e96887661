/**
 * Follows a pipeline run on Temporal for the terminal: reads the node events workers write into the
 * shared store (event-log.ts) and passes them on in the local engine's vocabulary; at the end,
 * reconciles with the workflow's result (items that failed without a worker saying so, e.g. lost
 * workers, and items never handed to a worker because an upstream failed).
 */
import type { EngineEvent } from '../engine-events';
import type { Plan, PlanNode } from '../plan-types';
import type { PipelineResult } from '../../workflows/types';
import { EventReader, eventDir } from './event-log';

type Terminal = 'cached' | 'succeeded' | 'failed' | 'skipped';
const TERMINAL = new Set<string>(['cached', 'succeeded', 'failed', 'skipped']);

export class ProgressFollower {
  private readonly byId: Map<string, PlanNode>;
  private readonly reader: EventReader;
  private readonly retriedTo = new Map<string, number>();
  readonly terminal = new Map<string, Terminal>();
  private stopped = false;
  private loop?: Promise<void>;
  private wake?: () => void;

  constructor(
    plan: Plan,
    storeRoot: string,
    runId: string,
    private readonly onEvent: (e: EngineEvent) => void,
    private readonly intervalMs = 250,
  ) {
    this.byId = new Map(plan.nodes.map((n) => [n.id, n]));
    this.reader = new EventReader(eventDir(storeRoot, runId));
  }

  start(): void {
    const at = Date.now();
    for (const n of this.byId.values()) this.emit(n, { type: 'queued', at });
    this.loop = (async () => {
      while (!this.stopped) {
        this.drain();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.intervalMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    })();
  }

  /** Stops following and reads what the workers wrote last. */
  async stop(result?: PipelineResult): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    this.drain();
    if (!result) return;
    const now = Date.now();
    for (const f of result.failed) {
      const n = this.byId.get(f.id);
      if (n && this.terminal.get(f.id) !== 'failed') this.emit(n, { type: 'failed', error: f.error, at: now });
    }
    for (const id of result.skipped) {
      const n = this.byId.get(id);
      if (n && !this.terminal.has(id)) this.emit(n, { type: 'skipped', error: 'not run: an upstream item failed or the run stopped', at: now });
    }
  }

  private drain(): void {
    let events: EngineEvent[];
    try {
      events = this.reader.read();
    } catch {
      return; // a half-visible file on a shared filesystem: read it next time
    }
    for (const e of events) {
      const node = this.byId.get(e.nodeId);
      if (!node || this.terminal.has(e.nodeId)) continue;
      const { nodeId: _id, step: _s, item: _i, key: _k, ...rest } = e;
      if (e.type === 'retried') this.retriedTo.set(e.nodeId, e.attempt ?? 2);
      if (e.type === 'started' && (e.attempt ?? 1) > 1 && (this.retriedTo.get(e.nodeId) ?? 1) < e.attempt!) {
        // The previous attempt's worker died without a word: say so before the new start.
        this.retriedTo.set(e.nodeId, e.attempt!);
        this.emit(node, { type: 'retried', attempt: e.attempt, error: 'previous attempt lost (worker stopped heartbeating)', at: e.at });
      }
      this.emit(node, rest);
    }
  }

  private emit(node: PlanNode, e: Omit<EngineEvent, 'nodeId' | 'step' | 'item' | 'key'>): void {
    if (TERMINAL.has(e.type)) this.terminal.set(node.id, e.type as Terminal);
    const event: EngineEvent = { nodeId: node.id, step: node.step, item: node.item, key: node.key, ...e };
    for (const k of Object.keys(event) as (keyof EngineEvent)[]) if (event[k] === undefined) delete event[k];
    this.onEvent(event);
  }
}
