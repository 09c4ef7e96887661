/**
 * A whole pipeline run: walks the plan step by step (a step starts once every step it reads from is
 * done), fans each step out to one child workflow per chunk of items, and sums up what failed.
 * Only plan nodes and artifact keys pass through here; activities read and write the store.
 */
import {
  ApplicationFailure,
  ChildWorkflowFailure,
  ParentClosePolicy,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  isCancellation,
} from '@temporalio/workflow';
import type { PlanNode } from '../pipelines/plan-types';
import { SA_ITEM, SA_PLAN, SA_RUN, SA_STATUS, SA_STEP, stepWorkflowId, workflowQueue } from '../pipelines/temporal/naming';
import { failureMessage } from './format';
import { stepWorkflow } from './step';
import {
  DEFAULT_TUNING,
  progressQuery,
  type ChildRef,
  type FailedItem,
  type PipelineInput,
  type PipelineProgress,
  type PipelineResult,
  type StepOutcome,
  type UpstreamRef,
} from './types';

type StepStatus = PipelineProgress['steps'][number];

/** Keeps a search attribute value under the server's per-value size limit. */
const MAX_ITEM_ATTRIBUTE_CHARS = 1500;

export async function pipelineWorkflow(input: PipelineInput): Promise<PipelineResult> {
  const tuning = { ...DEFAULT_TUNING, ...(input.tuning ?? {}) };
  const { plan, runId } = input;
  const byId = new Map(plan.nodes.map((n) => [n.id, n]));
  const stepOrder: string[] = [];
  const nodesOf = new Map<string, PlanNode[]>();
  const dependsOn = new Map<string, Set<string>>();
  for (const node of plan.nodes) {
    if (!nodesOf.has(node.step)) {
      stepOrder.push(node.step);
      nodesOf.set(node.step, []);
      dependsOn.set(node.step, new Set());
    }
    nodesOf.get(node.step)!.push(node);
    for (const id of node.needs) dependsOn.get(node.step)!.add(byId.get(id)!.step);
  }

  const status = new Map<string, StepStatus>();
  for (const step of stepOrder) {
    status.set(step, { step, status: 'waiting', total: nodesOf.get(step)!.length, succeeded: 0, cached: 0, failed: 0, skipped: 0 });
  }
  const children: ChildRef[] = [];
  const failed: FailedItem[] = [];
  const notRun = new Set<string>();
  const failedIds = new Set<string>();
  let succeeded = 0;
  let cached = 0;
  let finished = false;
  setHandler(progressQuery, () => ({ runId, planHash: plan.planHash, children, steps: [...status.values()], done: finished }));
  const showDetails = () => setCurrentDetails(runDetails(input, [...status.values()], failed));

  const runStep = async (step: string): Promise<void> => {
    const st = status.get(step)!;
    const blocked = nodesOf.get(step)!.filter((n) => n.needs.some((id) => failedIds.has(id) || notRun.has(id)));
    for (const n of blocked) notRun.add(n.id);
    st.skipped += blocked.length;
    const runnable = nodesOf.get(step)!.filter((n) => !notRun.has(n.id));
    const chunks: PlanNode[][] = [];
    for (let i = 0; i < runnable.length; i += tuning.chunkSize) chunks.push(runnable.slice(i, i + tuning.chunkSize));
    st.status = chunks.length ? 'running' : 'skipped';
    showDetails();
    await Promise.all(
      chunks.map(async (nodes, part) => {
        const outcome = await runChunk(step, nodes, part, chunks.length);
        succeeded += outcome.succeeded;
        cached += outcome.cached;
        st.succeeded += outcome.succeeded;
        st.cached += outcome.cached;
        st.failed += outcome.failed.length;
        st.skipped += outcome.skipped.length;
        for (const f of outcome.failed) {
          failed.push(f);
          failedIds.add(f.id);
        }
        for (const id of outcome.skipped) notRun.add(id);
        showDetails();
      }),
    );
    if (chunks.length) st.status = 'done';
  };

  const runChunk = async (step: string, nodes: PlanNode[], part: number, parts: number): Promise<StepOutcome> => {
    const upstream = new Map<string, UpstreamRef>();
    for (const n of nodes) {
      for (const id of n.needs) {
        const u = byId.get(id)!;
        upstream.set(id, { id, step: u.step, item: u.item, matrix: u.matrix, key: u.key });
      }
    }
    const workflowId = stepWorkflowId(runId, step, part, parts);
    const ref: ChildRef = { workflowId, step, part, nodes: nodes.length, status: 'running' };
    children.push(ref);
    const items = nodes.map((n) => n.item).filter(Boolean);
    const first = nodes[0];
    try {
      const child = await startChild(stepWorkflow, {
        workflowId,
        taskQueue: workflowQueue(tuning.taskQueuePrefix),
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        staticSummary: `${step}${parts > 1 ? ` part ${part + 1}/${parts}` : ''} · ${nodes.length} item(s) · ${first.uses} · profile ${plan.profile}`,
        staticDetails: stepDetails(step, nodes, plan.profile),
        typedSearchAttributes: [
          { key: SA_RUN, value: runId },
          { key: SA_PLAN, value: plan.planHash },
          { key: SA_STEP, value: step },
          { key: SA_ITEM, value: JSON.stringify(items).length <= MAX_ITEM_ATTRIBUTE_CHARS ? items : [] },
          { key: SA_STATUS, value: 'running' },
        ],
        args: [{ runId, profile: plan.profile, planHash: plan.planHash, step, part, parts, nodes, upstream: [...upstream.values()], keepGoing: input.keepGoing, tuning }],
      });
      return await child.result();
    } catch (err) {
      if (isCancellation(err)) throw err;
      const outcome = err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure ? (err.cause.details?.[0] as StepOutcome | undefined) : undefined;
      if (outcome) return outcome;
      // The child itself broke (terminated, timed out): every node it held counts as failed.
      const error = failureMessage(err);
      return { succeeded: 0, cached: 0, failed: nodes.map((n) => ({ id: n.id, error })), skipped: [] };
    } finally {
      ref.status = 'done';
    }
  };

  const running = new Map<string, Promise<void>>();
  const isSettled = (step: string) => ['done', 'skipped'].includes(status.get(step)!.status);
  showDetails();
  for (;;) {
    for (const step of stepOrder) {
      const st = status.get(step)!;
      if (st.status !== 'waiting' || ![...dependsOn.get(step)!].every(isSettled)) continue;
      if (failed.length && !input.keepGoing) {
        st.status = 'skipped';
        st.skipped = st.total;
        for (const n of nodesOf.get(step)!) notRun.add(n.id);
        continue;
      }
      st.status = 'running';
      running.set(step, runStep(step).finally(() => running.delete(step)));
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }

  finished = true;
  showDetails();
  const result: PipelineResult = { runId, planHash: plan.planHash, succeeded, cached, failed, skipped: [...notRun] };
  upsertSearchAttributes([{ key: SA_STATUS, value: failed.length ? 'failed' : 'succeeded' }]);
  if (failed.length) {
    throw ApplicationFailure.create({
      type: 'PipelineItemsFailed',
      message: `${failed.length} item(s) failed: ${failed.slice(0, 5).map((f) => f.id).join(', ')}${failed.length > 5 ? ', ...' : ''}`,
      nonRetryable: true,
      details: [result],
    });
  }
  return result;
}

function stepDetails(step: string, nodes: PlanNode[], profile: string): string {
  const n = nodes[0];
  const lines = [`**${step}** runs \`${n.uses}@${n.version}\` (profile \`${profile}\`), resources ${JSON.stringify(n.resources)}`, '', '| item | key |', '|---|---|'];
  for (const node of nodes.slice(0, 50)) lines.push(`| ${node.item || '(single)'} | \`${node.key.slice(0, 12)}\` |`);
  if (nodes.length > 50) lines.push(`| ... ${nodes.length - 50} more | |`);
  return lines.join('\n');
}

function runDetails(input: PipelineInput, steps: StepStatus[], failed: FailedItem[]): string {
  const lines = [
    `Run \`${input.runId}\` · profile \`${input.plan.profile}\` · plan \`${input.plan.planHash.slice(0, 12)}\``,
    '',
    '| step | status | total | succeeded | cached | failed | skipped |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const s of steps) lines.push(`| ${s.step} | ${s.status} | ${s.total} | ${s.succeeded} | ${s.cached} | ${s.failed} | ${s.skipped} |`);
  if (failed.length) lines.push('', `Failed: ${failed.slice(0, 20).map((f) => f.id).join(', ')}${failed.length > 20 ? ', ...' : ''}`);
  return lines.join('\n');
}
