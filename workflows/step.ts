/**
 * One step (or one chunk of a large sweep) of a pipeline run: cached nodes are skipped after one
 * batched cache lookup, the rest run as activities through a sliding window, and the chunk continues
 * as new before its history grows too long.
 */
import {
  ApplicationFailure,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { PlanNode } from '../pipelines/plan-types';
import { activityQueue, nodeActivityId, SA_STATUS, workflowQueue } from '../pipelines/temporal/naming';
import { failureMessage } from './format';
import { journalQuery, type NodeLogEntry, type PipelineActivities, type StepInput, type StepOutcome } from './types';

export async function stepWorkflow(input: StepInput): Promise<StepOutcome> {
  const { tuning, runId } = input;
  const outcome: StepOutcome = input.carried
    ? { succeeded: input.carried.succeeded, cached: input.carried.cached, failed: [...input.carried.failed], skipped: [...input.carried.skipped] }
    : { succeeded: 0, cached: 0, failed: [], skipped: [] };
  const journal = new Journal(input.carried?.seq ?? 0);
  setHandler(journalQuery, (since) => journal.since(since));

  const running = new Set<string>();
  const total = input.nodes.length + outcome.succeeded + outcome.cached + outcome.failed.length + outcome.skipped.length;
  const showDetails = () => setCurrentDetails(detailsMarkdown(input, outcome, running, total));

  const lookups = proxyActivities<PipelineActivities>({
    taskQueue: workflowQueue(tuning.taskQueuePrefix),
    startToCloseTimeout: '10 minutes',
    retry: { maximumAttempts: 10, initialInterval: '1 second' },
  });
  const cacheable = input.nodes.filter((n) => n.cache);
  const committed = new Set(
    cacheable.length
      ? await lookups.lookupCache({ keys: cacheable.map((n) => n.key), runId, nodes: cacheable.map((n) => ({ id: n.id, step: n.step, item: n.item, key: n.key })) })
      : [],
  );

  const todo: PlanNode[] = [];
  for (const node of input.nodes) {
    if (node.cache && committed.has(node.key)) {
      outcome.cached++;
      journal.add({ id: node.id, type: 'cached' });
    } else todo.push(node);
  }
  const upstream = new Map(input.upstream.map((u) => [u.id, u]));
  let stop = false;

  const runOne = async (node: PlanNode): Promise<void> => {
    const activities = proxyActivities<PipelineActivities>({
      taskQueue: activityQueue(tuning.taskQueuePrefix, node.resources),
      activityId: nodeActivityId(runId, node),
      summary: `${node.step}${node.item ? ` · ${node.item}` : ''} · ${node.uses} · profile ${input.profile}`,
      startToCloseTimeout: tuning.startToCloseTimeoutMs,
      heartbeatTimeout: tuning.heartbeatTimeoutMs,
      retry: {
        initialInterval: tuning.retryInitialMs,
        backoffCoefficient: 2,
        maximumInterval: '30 seconds',
        // Application errors stop after node.retries (the activity marks them non-retryable); the
        // extra attempts are for workers that died (heartbeat timeouts).
        maximumAttempts: node.retries + 1 + tuning.lostWorkerRetries,
        nonRetryableErrorTypes: ['NonRetryableError'],
      },
    });
    journal.add({ id: node.id, type: 'scheduled' });
    running.add(node.id);
    showDetails();
    const started = Date.now();
    try {
      const result = await activities.runNode({
        runId,
        profile: input.profile,
        node,
        upstream: node.needs.map((id) => upstream.get(id)!),
      });
      if (result.status === 'cached') outcome.cached++;
      else outcome.succeeded++;
      journal.add({ id: node.id, type: result.status, attempt: result.attempt, durationMs: result.durationMs });
    } catch (err) {
      if (isCancellation(err)) throw err;
      const error = failureMessage(err);
      outcome.failed.push({ id: node.id, error });
      journal.add({ id: node.id, type: 'failed', error, durationMs: Date.now() - started });
      if (!input.keepGoing) stop = true;
    } finally {
      running.delete(node.id);
      showDetails();
    }
  };

  let next = 0;
  let roll = false;
  const inflight = new Set<Promise<void>>();
  showDetails();
  for (;;) {
    while (!stop && !roll && inflight.size < tuning.window && next < todo.length) {
      const p: Promise<void> = runOne(todo[next++]).finally(() => inflight.delete(p));
      inflight.add(p);
    }
    if (inflight.size === 0) break;
    await Promise.race(inflight);
    const info = workflowInfo();
    roll = info.continueAsNewSuggested || info.historyLength >= tuning.maxHistoryEvents;
  }

  if (roll && !stop && next < todo.length) {
    const rest = todo.slice(next);
    const needed = new Set(rest.flatMap((n) => n.needs));
    await continueAsNew<typeof stepWorkflow>({
      ...input,
      nodes: rest,
      upstream: input.upstream.filter((u) => needed.has(u.id)),
      carried: { ...outcome, seq: journal.nextSeq },
    });
  }
  for (const node of todo.slice(next)) {
    outcome.skipped.push(node.id);
    journal.add({ id: node.id, type: 'skipped', error: 'an earlier item of the run failed (no --keep-going)' });
  }
  journal.done = true;
  showDetails();
  upsertSearchAttributes([{ key: SA_STATUS, value: outcome.failed.length ? 'failed' : 'succeeded' }]);
  if (outcome.failed.length) {
    throw ApplicationFailure.create({
      type: 'PipelineItemsFailed',
      message: `${outcome.failed.length} of ${total} item(s) of ${input.step} failed: ${outcome.failed.slice(0, 5).map((f) => f.id).join(', ')}${outcome.failed.length > 5 ? ', ...' : ''}`,
      nonRetryable: true,
      details: [outcome],
    });
  }
  return outcome;
}

/** Append-only log of node state changes, read by clients through the `journal` query. */
class Journal {
  private readonly entries: NodeLogEntry[] = [];
  done = false;
  constructor(private readonly firstSeq: number) {}

  get nextSeq(): number {
    return this.firstSeq + this.entries.length;
  }

  add(entry: Omit<NodeLogEntry, 'seq' | 'at'>): void {
    this.entries.push({ ...entry, seq: this.nextSeq, at: Date.now() });
  }

  since(seq: number) {
    const from = Math.max(0, seq - this.firstSeq);
    return { runId: workflowInfo().runId, entries: this.entries.slice(from), nextSeq: this.nextSeq, done: this.done };
  }
}

function detailsMarkdown(input: StepInput, o: StepOutcome, running: Set<string>, total: number): string {
  const doneCount = o.succeeded + o.cached + o.failed.length + o.skipped.length;
  const lines = [
    `**${input.step}**${input.parts > 1 ? ` (part ${input.part + 1} of ${input.parts})` : ''} · profile \`${input.profile}\``,
    '',
    '| total | succeeded | cached | failed | skipped | running | waiting |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    `| ${total} | ${o.succeeded} | ${o.cached} | ${o.failed.length} | ${o.skipped.length} | ${running.size} | ${total - doneCount - running.size} |`,
  ];
  if (running.size) lines.push('', `Running: ${[...running].slice(0, 20).join(', ')}${running.size > 20 ? ', ...' : ''}`);
  if (o.failed.length) {
    lines.push('', '| failed item | error |', '|---|---|');
    for (const f of o.failed.slice(0, 20)) lines.push(`| ${f.id} | ${f.error.replace(/\|/g, '\\|').slice(0, 200)} |`);
  }
  return lines.join('\n');
}
