/**
 * Names shared by the Temporal client, workers and workflow code: task queues, workflow and activity
 * ids, search attributes. Pure code (no Node APIs): the workflow sandbox imports it.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import type { Resources } from '../activity';
import type { PlanNode } from '../plan-types';

export const DEFAULT_TASK_QUEUE_PREFIX = 'backpack-';

/** Search attributes the project registers on the server (`pipeline server`, test helper). */
export const SEARCH_ATTRIBUTE_TYPES = {
  PipelineRun: 'Keyword',
  PipelinePlan: 'Keyword',
  PipelineStep: 'Keyword',
  PipelineItem: 'KeywordList',
  PipelineStatus: 'Keyword',
} as const;

export const SA_RUN = defineSearchAttributeKey('PipelineRun', 'KEYWORD');
export const SA_PLAN = defineSearchAttributeKey('PipelinePlan', 'KEYWORD');
export const SA_STEP = defineSearchAttributeKey('PipelineStep', 'KEYWORD');
export const SA_ITEM = defineSearchAttributeKey('PipelineItem', 'KEYWORD_LIST');
export const SA_STATUS = defineSearchAttributeKey('PipelineStatus', 'KEYWORD');

/** Workflow tasks (and cheap cache lookups) of every run go here; every worker polls it. */
export function workflowQueue(prefix: string): string {
  return `${prefix}pipeline`;
}

/** Resource class of a node: `cpu`, `gpu` (one device) or `gpu-xN` (N devices on one worker). */
export function resourceClass(resources: Pick<Resources, 'gpus'>): string {
  if (!resources.gpus) return 'cpu';
  return resources.gpus === 1 ? 'gpu' : `gpu-x${resources.gpus}`;
}

export function activityQueue(prefix: string, resources: Pick<Resources, 'gpus'>): string {
  return `${prefix}${resourceClass(resources)}`;
}

/** One pipeline run per plan: the id is derived from the plan hash so a second client attaches. */
export function pipelineWorkflowId(planHash: string): string {
  return `pipeline-${planHash.slice(0, 16)}`;
}

/** `<run>/<step>`, or `<run>/<step>/part-<k>` when a large sweep is split into chunks. */
export function stepWorkflowId(runId: string, step: string, part: number, parts: number): string {
  return parts > 1 ? `${runId}/${step}/part-${String(part).padStart(4, '0')}` : `${runId}/${step}`;
}

/** `<run>/<step>/<item>` (just `<run>/<step>` for a step without a matrix). */
export function nodeActivityId(runId: string, node: Pick<PlanNode, 'step' | 'item'>): string {
  return node.item ? `${runId}/${node.step}/${node.item}` : `${runId}/${node.step}`;
}
