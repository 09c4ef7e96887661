/**
 * The Temporal engine against a real dev server with an in-process worker: same artifacts as the
 * local engine, keep-going and resume, a large sweep with continue-as-new, attaching to a running
 * run, and the Web UI's view of it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { z } from 'zod';
import { ALL_ACTIVITIES, createRegistry } from '../activities/index';
import { defineActivity } from '../pipelines/activity';
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

/** Records the resume state it was started with; its first attempt checkpoints and then fails. */
const resumeProbe = defineActivity({
  name: 'test.resume-probe',
  version: '1',
  description: 'checkpoint, fail once, then report ctx.resumeState',
  params: z.object({ mark: z.string() }).strict(),
  async run(params, ctx) {
    if (ctx.attempt === 1) {
      ctx.checkpoint({ step: 7, mark: params.mark });
      await new Promise((r) => setTimeout(r, 300));
      // Leave only the heartbeat as the carrier of the state.
      fs.rmSync(path.join(ctx.scratchDir, '.resume.json'), { force: true });
      throw new Error('transient failure after a checkpoint');
    }
    fs.writeFileSync(path.join(ctx.outDir, 'resumed.json'), JSON.stringify(ctx.resumeState ?? null));
    return { resumeState: ctx.resumeState ?? null, attempt: ctx.attempt };
  },
});
const registry = createRegistry([...ALL_ACTIVITIES, resumeProbe]);

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
  worker = await startPipelineWorker({ address: ts.server.address, storeRoot, gpus: [0, 1], cpus: 2, taskQueuePrefix: QUEUE_PREFIX, logLevel: 'ERROR', registry });
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
  // The checkpointing counter's progress came through from the worker.
  expect(opts.events.some((e) => e.type === 'progress' && e.nodeId === 'count' && e.progress?.metrics?.step !== undefined)).toBe(true);
  // Progress of the checkpointing counter arrives through heartbeat details (when a poll saw it running).
  const lineage = JSON.parse(fs.readFileSync(path.join(storeRoot, 'artifacts', plan.nodes.find((n) => n.step === 'count')!.key, '.lineage.json'), 'utf8'));
  expect(lineage.runId).toBe(opts.runId);

  // A second run of the same plan is all cache hits, decided by the cache-lookup activity.
  const again = runOpts(plan);
  const second = await runOnTemporal(again);
  expect(second).toMatchObject({ succeeded: 0, cached: plan.nodes.length, failed: [] });
  expect(again.events.filter((e) => e.type === 'cached')).toHaveLength(plan.nodes.length);
  await recordHistories('basic', [pipelineWorkflowId(plan.planHash), `${opts.runId}/count`, `${opts.runId}/on_gpu`, `${opts.runId}/join`], [result.workflowId]);
});

test('a run started locally resumes on Temporal from the shared cache, and the reverse', async () => {
  const yaml = TEST_DAG.replace(/src-/g, 'mixed-').replace(/gpu-/g, 'mixed-gpu-').replace('n: 6', 'n: 7');
  const store = new ArtifactStore(storeRoot);
  const local = (targets: string[]) =>
    executePlanLocally(planFromYaml(yaml, { targets }), { store, registry: createRegistry(), runId: 'local-part', cpus: 2, gpus: [0], memoryMb: 4096, keepGoing: false }).done;
  // Local first: the sources; then Temporal runs the rest and reuses them.
  expect((await local(['source'])).succeeded).toBe(3);
  const plan = planFromYaml(yaml);
  const onTemporal = await runOnTemporal(runOpts(plan));
  expect(onTemporal).toMatchObject({ failed: [], cached: 3, succeeded: plan.nodes.length - 3 });
  // Temporal first: a new target; then the local engine finds everything cached.
  const extended = yaml + `  tail:\n    uses: builtin.echo\n    needs: [join]\n    params: { value: tail }\n`;
  const bigger = planFromYaml(extended);
  expect(await runOnTemporal(runOpts(bigger))).toMatchObject({ failed: [], cached: plan.nodes.length, succeeded: 1 });
  const after = await executePlanLocally(bigger, { store, registry: createRegistry(), runId: 'local-after', cpus: 2, gpus: [0], memoryMb: 4096, keepGoing: false }).done;
  expect(after).toMatchObject({ succeeded: 0, cached: bigger.nodes.length, failed: [] });
});

test('a retried attempt gets the last heartbeat details as its resume state', async () => {
  const plan = planFromYaml(`
version: 1
steps:
  probe:
    uses: test.resume-probe
    retries: 1
    params: { mark: "m-\${Date.now()}" }
`, { registry });
  const opts = runOpts(plan);
  const result = await runOnTemporal(opts);
  expect(result).toMatchObject({ failed: [], succeeded: 1 });
  const lineage = new ArtifactStore(storeRoot).lineage(plan.nodes[0].key)!;
  expect(lineage.summary).toEqual({ attempt: 2, resumeState: { step: 7, mark: plan.nodes[0].params.mark } });
  expect(opts.events.find((e) => e.type === 'retried')).toMatchObject({ nodeId: 'probe', attempt: 2, error: 'transient failure after a checkpoint' });
});

test('cancelling the run reaches the running activity through its AbortSignal', async () => {
  const plan = planFromYaml(`
version: 1
steps:
  long:
    uses: builtin.count
    params: { n: 100000, stepMs: 20 }
`);
  const controller = new AbortController();
  const opts = runOpts(plan, { signal: controller.signal, tuning: { heartbeatTimeoutMs: 2000, retryInitialMs: 200 } });
  const run = runOnTemporal(opts);
  const store = new ArtifactStore(storeRoot);
  const lock = path.join(storeRoot, 'locks', `${plan.nodes[0].key}.lock`);
  for (let i = 0; i < 300 && !opts.events.some((e) => e.type === 'progress'); i++) await new Promise((r) => setTimeout(r, 50));
  expect(fs.existsSync(lock)).toBe(true);
  controller.abort();
  const result = await run;
  expect(result.cancelled).toBe(true);
  // The activity stopped (its lock is released) and nothing was committed.
  for (let i = 0; i < 200 && fs.existsSync(lock); i++) await new Promise((r) => setTimeout(r, 50));
  expect(fs.existsSync(lock)).toBe(false);
  expect(store.has(plan.nodes[0].key)).toBe(false);
});

test('keep-going: a failing item does not stop the others; a resume reruns only it', async () => {
  const marks = path.join(ts.dir, 'marks');
  fs.mkdirSync(marks, { recursive: true });
  const yaml = `
version: 1
steps:
  sweep:
    uses: builtin.fail
    matrix: { i: [1, 2, 3, 4, 5] }
    params: { unlessFileExists: "${marks}/ok-\${matrix.i}", message: "item \${matrix.i} is broken", value: "\${matrix.i}" }
  after:
    uses: builtin.echo
    needs: [sweep]
    params: { value: after }
  other:
    uses: builtin.echo
    params: { value: other }
`;
  for (const i of [1, 2, 4, 5]) fs.writeFileSync(path.join(marks, `ok-${i}`), '');
  const plan = planFromYaml(yaml);
  const first = runOpts(plan, { keepGoing: true });
  const r1 = await runOnTemporal(first);
  expect(r1.failed).toEqual(['sweep/i=3']);
  expect(r1.succeeded).toBe(5); // four sweep items + other
  expect(r1.skipped).toEqual(['after']);
  expect(first.events.find((e) => e.type === 'failed')).toMatchObject({ nodeId: 'sweep/i=3', error: 'item 3 is broken' });
  expect(first.events.find((e) => e.type === 'skipped')?.nodeId).toBe('after');

  // The Web UI (its HTTP API) lists the run's workflows by search attribute, with their summaries.
  await expectVisibleInWebUi(first.runId, plan);

  // Fix the item and resume: the same plan again, where only the failed item and what it blocked run.
  fs.writeFileSync(path.join(marks, 'ok-3'), '');
  const resume = runOpts(plan, { keepGoing: true });
  const r2 = await runOnTemporal(resume);
  expect(r2).toMatchObject({ failed: [], succeeded: 2, cached: 5 });
  const ran = resume.events.filter((e) => e.type === 'succeeded').map((e) => e.nodeId).sort();
  expect(ran).toEqual(['after', 'sweep/i=3']);
  await recordHistories('keep-going', [`${first.runId}/sweep`]);
});

test('a sweep of 120 items runs in chunks that continue as new', async () => {
  const items = Array.from({ length: 120 }, (_, i) => i);
  const plan = planFromYaml(`
version: 1
steps:
  big:
    uses: builtin.echo
    matrix: { i: [${items.join(', ')}] }
    params: { value: "\${matrix.i}" }
`);
  const opts = runOpts(plan, { tuning: { chunkSize: 60, window: 16, maxHistoryEvents: 150, heartbeatTimeoutMs: 10_000 } });
  const result = await runOnTemporal(opts);
  expect(result).toMatchObject({ failed: [], succeeded: 120, cached: 0 });
  const store = new ArtifactStore(storeRoot);
  expect(plan.nodes.every((n) => store.has(n.key))).toBe(true);
  // Every node reported exactly one terminal event, across the continue-as-new boundaries.
  const terminal = opts.events.filter((e) => e.type === 'succeeded').map((e) => e.nodeId);
  expect(new Set(terminal).size).toBe(120);
  expect(terminal).toHaveLength(120);

  const connection = await Connection.connect({ address: ts.server.address });
  try {
    const client = new Client({ connection });
    const statuses: string[] = [];
    for await (const wf of client.workflow.list({ query: `PipelineRun = "${opts.runId}" AND PipelineStep = "big"` })) statuses.push(wf.status.name);
    // Two chunks, each continued as new at least once before completing.
    expect(statuses.filter((s) => s === 'COMPLETED')).toHaveLength(2);
    expect(statuses.filter((s) => s === 'CONTINUED_AS_NEW').length).toBeGreaterThanOrEqual(2);
    await recordHistories('sweep', [`${opts.runId}/big/part-0000`]);
  } finally {
    await connection.close();
  }
});

test('a second client of the same plan attaches to the running run instead of starting a twin', async () => {
  const plan = planFromYaml(`
version: 1
steps:
  slow:
    uses: builtin.count
    params: { n: 30, stepMs: 60 }
`);
  const a = runOpts(plan);
  const first = runOnTemporal(a);
  const connection = await Connection.connect({ address: ts.server.address });
  try {
    const handle = new Client({ connection }).workflow.getHandle(pipelineWorkflowId(plan.planHash));
    for (let i = 0; i < 100; i++) {
      const running = await handle.describe().then((d) => d.status.name === 'RUNNING', () => false);
      if (running) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await connection.close();
  }
  const b = runOpts(plan);
  const messages: string[] = [];
  const second = await runOnTemporal({ ...b, onMessage: (m) => messages.push(m) });
  const firstResult = await first;
  expect(firstResult).toMatchObject({ attached: false, runId: a.runId, succeeded: 1 });
  expect(second).toMatchObject({ attached: true, runId: a.runId, succeeded: 1, failed: [] });
  expect(messages[0]).toContain(`attached to the running run ${a.runId}`);
  // Both clients saw the node finish; only one activity ran (the lineage names the first run).
  expect(b.events.some((e) => e.type === 'succeeded' && e.nodeId === 'slow')).toBe(true);
  const lineage = new ArtifactStore(storeRoot).lineage(plan.nodes[0].key)!;
  expect(lineage.runId).toBe(a.runId);
  expect(lineage.attempt).toBe(1);
});

/** Checks through the Web UI's own HTTP API what a person would see in the browser. */
async function expectVisibleInWebUi(runId: string, plan: Plan): Promise<void> {
  const ui = ts.server.uiUrl!;
  const query = encodeURIComponent(`PipelineRun="${runId}"`);
  const list: any = await (await fetch(`${ui}/api/v1/namespaces/default/workflows?query=${query}`)).json();
  const ids = (list.executions as { execution: { workflowId: string } }[]).map((e) => e.execution.workflowId).sort();
  expect(ids).toEqual([pipelineWorkflowId(plan.planHash), `${runId}/other`, `${runId}/sweep`].sort());
  const describe: any = await (await fetch(`${ui}/api/v1/namespaces/default/workflows/${encodeURIComponent(`${runId}/sweep`)}`)).json();
  const summary = decodePayload(describe.executionConfig.userMetadata.summary);
  expect(summary).toContain('sweep');
  expect(summary).toContain('5 item(s)');
  expect(summary).toContain('profile');
  const attrs = describe.workflowExecutionInfo.searchAttributes.indexedFields;
  expect(decodePayload(attrs.PipelineStep)).toBe('sweep');
  expect(decodePayload(attrs.PipelineStatus)).toBe('failed');
  expect(decodePayload(attrs.PipelineItem)).toEqual(['i=1', 'i=2', 'i=3', 'i=4', 'i=5']);
}

function decodePayload(p: { data: string }): unknown {
  return JSON.parse(Buffer.from(p.data, 'base64').toString('utf8'));
}

/**
 * With RECORD_TEMPORAL_HISTORIES=1, saves the histories of these workflows (every run of each, so
 * continue-as-new chains are kept) as replay fixtures for test/temporal-replay.test.ts.
 */
async function recordHistories(scenario: string, workflowIds: string[], firstRunOnly: string[] = []): Promise<void> {
  if (process.env.RECORD_TEMPORAL_HISTORIES !== '1') return;
  const dir = path.join(__dirname, 'fixtures', 'temporal-histories');
  fs.mkdirSync(dir, { recursive: true });
  const connection = await Connection.connect({ address: ts.server.address });
  try {
    const client = new Client({ connection });
    for (const id of workflowIds) {
      const runs: string[] = [];
      for await (const wf of client.workflow.list({ query: `WorkflowId = "${id}"` })) runs.push(wf.runId);
      const wanted = firstRunOnly.includes(id) ? runs.slice(-1) : runs;
      for (const [i, runId] of wanted.reverse().entries()) {
        // Binary protobuf: the SDK's JSON history loader trips over the two protobufjs copies npm installs.
        const history = temporal.api.history.v1.History.encode(await client.workflow.getHandle(id, runId).fetchHistory()).finish();
        const role = id.includes('/') ? id.split('/').slice(1).join('-') : 'pipeline';
        fs.writeFileSync(path.join(dir, `${scenario}.${role}${wanted.length > 1 ? `.run${i}` : ''}.binpb`), history);
      }
    }
  } finally {
    await connection.close();
  }
}
