/**
 * The Temporal engine against a real dev server with an in-process worker: same artifacts as the
 * local engine, keep-going and resume, a large sweep with continue-as-new, attaching to a running
 * run, and the Web UI's view of it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Client, Connection } from '@temporalio/client';
import { createRegistry } from '../activities/index';
import type { EngineEvent } from '../pipelines/engine-events';
import { executePlanLocally } from '../pipelines/engine-local';
import { runOnTemporal, type TemporalRunOptions } from '../pipelines/engine-temporal';
import { ArtifactStore } from '../pipelines/store';
import { pipelineWorkflowId } from '../pipelines/temporal/naming';
import { startPipelineWorker, type RunningWorker } from '../pipelines/temporal/worker';
import type { Plan } from '../pipelines/plan-types';
import { artifactFiles, planFromYaml, startTestServer, type TestServer } from './helpers/temporal-server';

const TEST_DAG = `
version: 1
steps:
  source:
    uses: builtin.echo
    matrix: { n: [1, 2, 3] }
    params: { value: "src-\${matrix.n}" }
  count:
    uses: builtin.count
    params: { n: 6, stepMs: 5 }
  on_gpu:
    uses: builtin.echo
    needs: [source]
    matrix: { n: [1, 2, 3] }
    resources: { gpus: 1 }
    params: { value: "gpu-\${matrix.n}" }
  join:
    uses: builtin.echo
    needs: [on_gpu, count]
    params: { value: joined }
`;

let ts: TestServer;
let worker: RunningWorker;
let storeRoot: string;
let seq = 0;
const QUEUE_PREFIX = 'engine-test-';

function runOpts(plan: Plan, extra: Partial<TemporalRunOptions> = {}): TemporalRunOptions & { events: EngineEvent[] } {
  const events: EngineEvent[] = [];
  return {
    plan,
    dagFile: 'test-dag.yaml',
    storeRoot,
    runId: `run-${Date.now().toString(36)}-${seq++}`,
    address: ts.server.address,
    taskQueuePrefix: QUEUE_PREFIX,
    keepGoing: false,
    onEvent: (e) => events.push(e),
    signal: new AbortController().signal,
    tuning: { heartbeatTimeoutMs: 10_000, retryInitialMs: 200 },
    pollIntervalMs: 200,
    events,
    ...extra,
  };
}

beforeAll(async () => {
  ts = await startTestServer({ ui: true });
  storeRoot = path.join(ts.dir, 'store');
  worker = await startPipelineWorker({ address: ts.server.address, storeRoot, gpus: [0, 1], cpus: 2, taskQueuePrefix: QUEUE_PREFIX, logLevel: 'ERROR' });
}, 120_000);

afterAll(async () => {
  await worker?.shutdown();
  await ts?.stop();
}, 60_000);

test('the test DAG gives the same artifact keys and contents as the local engine', async () => {
  const plan = planFromYaml(TEST_DAG);
  const opts = runOpts(plan);
  const result = await runOnTemporal(opts);
  expect(result.failed).toEqual([]);
  expect(result.succeeded).toBe(plan.nodes.length);

  const localRoot = path.join(ts.dir, 'local-store');
  const local = executePlanLocally(plan, { store: new ArtifactStore(localRoot), registry: createRegistry(), runId: 'local', cpus: 2, gpus: [0], memoryMb: 4096, keepGoing: false });
  const localSummary = await local.done;
  expect(localSummary.failed).toEqual([]);
  for (const node of plan.nodes) {
    expect(artifactFiles(storeRoot, node.key)).toEqual(artifactFiles(localRoot, node.key));
  }
  // The events tell the same story a local run would: every node queued, started and succeeded.
  for (const node of plan.nodes) {
    const types = opts.events.filter((e) => e.nodeId === node.id).map((e) => e.type);
    expect(types[0]).toBe('queued');
    expect(types).toContain('started');
    expect(types[types.length - 1]).toBe('succeeded');
  }
  // Progress of the checkpointing counter arrives through heartbeat details (when a poll saw it running).
  const lineage = JSON.parse(fs.readFileSync(path.join(storeRoot, 'artifacts', plan.nodes.find((n) => n.step === 'count')!.key, '.lineage.json'), 'utf8'));
  expect(lineage.runId).toBe(opts.runId);

  // A second run of the same plan is all cache hits, decided by the cache-lookup activity.
  const again = runOpts(plan);
  const second = await runOnTemporal(again);
  expect(second).toMatchObject({ succeeded: 0, cached: plan.nodes.length, failed: [] });
  expect(again.events.filter((e) => e.type === 'cached')).toHaveLength(plan.nodes.length);
});
