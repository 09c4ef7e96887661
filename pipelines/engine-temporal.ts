/**
 * The Temporal engine, client side: starts the pipeline workflow for a plan (or attaches to the run
 * of the same plan that is already going), streams its progress as engine events, and returns the
 * summary. Workers (`pipeline worker`) do the work; they share the artifact store with this client.
 */
import { ApplicationFailure, CancelledFailure, Client, Connection, WorkflowFailedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import type { EngineEvent } from './engine-events';
import type { Plan } from './plan-types';
import { DEFAULT_TASK_QUEUE_PREFIX, pipelineWorkflowId, SA_PLAN, SA_RUN, SA_STATUS, workflowQueue } from './temporal/naming';
import { ProgressFollower } from './temporal/progress';
import type { EngineTuning, PipelineInput, PipelineResult } from '../workflows/types';

export interface TemporalRunOptions {
  plan: Plan;
  dagFile: string;
  storeRoot: string;
  runId: string;
  address?: string;
  namespace?: string;
  taskQueuePrefix?: string;
  keepGoing: boolean;
  onEvent: (e: EngineEvent) => void;
  /** Aborting cancels the run on the server (activities get their AbortSignal), unless detachOnAbort. */
  signal: AbortSignal;
  /** Stop following on abort but leave the run going (attach again later with the same command). */
  detachOnAbort?: boolean;
  /** Tuning of the workflows (window, chunk size, timeouts); tests shorten timeouts. */
  tuning?: Partial<EngineTuning>;
  /** How often the workers' event files are read (default 250 ms). */
  pollIntervalMs?: number;
  /** One-line notices (attached to an existing run, where to watch it). */
  onMessage?: (line: string) => void;
}

export interface TemporalRunResult {
  failed: string[];
  succeeded: number;
  cached: number;
  skipped: string[];
  cancelled: boolean;
  /** The run that actually executed: another client's when we attached to it. */
  runId: string;
  workflowId: string;
  attached: boolean;
}

/** Below Temporal's default 2 MB payload limit, with room for the rest of the start request. */
const MAX_PLAN_BYTES = 1.8 * 2 ** 20;

export function temporalAddress(address?: string): string {
  return address ?? process.env.TEMPORAL_ADDRESS ?? 'localhost:7233';
}

export async function runOnTemporal(opts: TemporalRunOptions): Promise<TemporalRunResult> {
  const address = temporalAddress(opts.address);
  const connection = await Connection.connect({ address }).catch((err: Error) => {
    throw new Error(`cannot reach Temporal at ${address}: ${err.message} (start one with \`pipeline server\`, or set --address / TEMPORAL_ADDRESS)`);
  });
  try {
    const client = new Client({ connection, namespace: opts.namespace ?? process.env.TEMPORAL_NAMESPACE ?? 'default' });
    const { handle, runId, attached } = await startOrAttach(client, opts);
    if (attached) opts.onMessage?.(`attached to the running run ${runId} of this plan (workflow ${handle.workflowId})`);
    else opts.onMessage?.(`started run ${runId} on Temporal (workflow ${handle.workflowId})`);
    const follower = new ProgressFollower(opts.plan, opts.storeRoot, runId, opts.onEvent, opts.pollIntervalMs);
    follower.start();
    const detach = new AbortController();
    const onAbort = () => {
      if (opts.detachOnAbort) detach.abort();
      else void handle.cancel().catch(() => undefined);
    };
    opts.signal.addEventListener('abort', onAbort, { once: true });
    if (opts.signal.aborted) onAbort();
    let outcome: { result?: PipelineResult; cancelled: boolean } = { cancelled: true };
    try {
      outcome = await waitForOutcome(handle, detach.signal);
    } finally {
      opts.signal.removeEventListener('abort', onAbort);
      await follower.stop(outcome.result);
    }
    const result = outcome.result;
    const failed = result ? result.failed.map((f) => f.id) : [...follower.terminal].filter(([, t]) => t === 'failed').map(([id]) => id);
    const count = (t: string) => [...follower.terminal.values()].filter((x) => x === t).length;
    return {
      failed,
      succeeded: result?.succeeded ?? count('succeeded'),
      cached: result?.cached ?? count('cached'),
      skipped: result?.skipped ?? opts.plan.nodes.filter((n) => !follower.terminal.has(n.id)).map((n) => n.id),
      cancelled: outcome.cancelled,
      runId,
      workflowId: handle.workflowId,
      attached,
    };
  } finally {
    await connection.close();
  }
}

async function startOrAttach(client: Client, opts: TemporalRunOptions): Promise<{ handle: WorkflowHandle; runId: string; attached: boolean }> {
  const { plan } = opts;
  const workflowId = pipelineWorkflowId(plan.planHash);
  try {
    const desc = await client.workflow.getHandle(workflowId).describe();
    if (desc.status.name === 'RUNNING') {
      return { handle: client.workflow.getHandle(workflowId, desc.runId), runId: memoRunId(desc.memo) ?? opts.runId, attached: true };
    }
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  // The plan is the workflow's input; Temporal refuses payloads over 2 MB (and warns from 512 KB).
  const planBytes = Buffer.byteLength(JSON.stringify(plan));
  if (planBytes > MAX_PLAN_BYTES) {
    throw new Error(
      `the plan is ${(planBytes / 2 ** 20).toFixed(1)} MiB as JSON, over the ${MAX_PLAN_BYTES / 2 ** 20} MiB a Temporal workflow input may hold; ` +
        'run fewer targets at once (pipeline run <step> ...) or use the local engine',
    );
  }
  const input: PipelineInput = {
    runId: opts.runId,
    plan,
    keepGoing: opts.keepGoing,
    tuning: { ...(opts.tuning ?? {}), taskQueuePrefix: opts.taskQueuePrefix ?? opts.tuning?.taskQueuePrefix ?? DEFAULT_TASK_QUEUE_PREFIX },
  };
  const handle = await client.workflow.start('pipelineWorkflow', {
    workflowId,
    taskQueue: workflowQueue(input.tuning!.taskQueuePrefix!),
    args: [input],
    memo: { runId: opts.runId, planHash: plan.planHash, dagFile: opts.dagFile, storeRoot: opts.storeRoot },
    typedSearchAttributes: [
      { key: SA_RUN, value: opts.runId },
      { key: SA_PLAN, value: plan.planHash },
      { key: SA_STATUS, value: 'running' },
    ],
    staticSummary: `pipeline ${plan.targets.join(' ')} · profile ${plan.profile} · ${plan.nodes.length} node(s) · run ${opts.runId}`,
    staticDetails: `DAG \`${opts.dagFile}\`, store \`${opts.storeRoot}\`, plan \`${plan.planHash}\`${opts.keepGoing ? ', keep-going' : ''}`,
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
  });
  // Another client may have won the race to start it: its run id is in the memo.
  const desc = await handle.describe();
  const runId = memoRunId(desc.memo) ?? opts.runId;
  return { handle: client.workflow.getHandle(workflowId, desc.runId), runId, attached: runId !== opts.runId };
}

function memoRunId(memo: Record<string, unknown> | undefined): string | undefined {
  return typeof memo?.runId === 'string' ? memo.runId : undefined;
}

/** Waits for the workflow's end, riding out server restarts and connection drops. */
async function waitForOutcome(handle: WorkflowHandle, detach: AbortSignal): Promise<{ result?: PipelineResult; cancelled: boolean }> {
  const detached = new Promise<{ detached: true }>((resolve) => {
    if (detach.aborted) resolve({ detached: true });
    detach.addEventListener('abort', () => resolve({ detached: true }), { once: true });
  });
  for (;;) {
    const settled = handle.result().then(
      (value: PipelineResult) => ({ value }),
      (error: unknown) => ({ error }),
    );
    const r = await Promise.race([settled, detached]);
    if ('detached' in r) return { cancelled: true };
    if ('value' in r) return { result: r.value, cancelled: false };
    const err = r.error;
    if (err instanceof WorkflowFailedError) {
      if (err.cause instanceof CancelledFailure) return { cancelled: true };
      if (err.cause instanceof ApplicationFailure && err.cause.details?.[0]) return { result: err.cause.details[0] as PipelineResult, cancelled: false };
      throw err;
    }
    // Unavailable / deadline exceeded while the server restarts: keep waiting.
    await new Promise((r) => setTimeout(r, 1000));
  }
}
