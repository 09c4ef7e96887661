/**
 * The Temporal engine with real worker processes on different task queues: GPU nodes only on the GPU
 * worker and never more at once than its GPUs; a worker killed with SIGKILL mid-node (the run goes on
 * elsewhere, resumed from the node's last checkpoint); the dev server restarted mid-run (SQLite).
 */
import * as fs from 'fs';
import * as path from 'path';
import { createRegistry } from '../activities/index';
import { executePlanLocally } from '../pipelines/engine-local';
import { runOnTemporal, type TemporalRunOptions } from '../pipelines/engine-temporal';
import type { Plan } from '../pipelines/plan-types';
import { ArtifactStore } from '../pipelines/store';
import { artifactFiles, planFromYaml, spawnWorker, startTestServer, waitFor, type TestServer, type WorkerProcess } from './helpers/temporal-server';

const PREFIX = 'workers-test-';
let ts: TestServer;
let storeRoot: string;
let cpuWorker: WorkerProcess;
let gpuWorker: WorkerProcess;
let spareCpuWorker: WorkerProcess;
let seq = 0;

function runOpts(plan: Plan, extra: Partial<TemporalRunOptions> = {}): TemporalRunOptions {
  return {
    plan,
    dagFile: 'test-dag.yaml',
    storeRoot,
    runId: `wrun-${Date.now().toString(36)}-${seq++}`,
    address: ts.server.address,
    taskQueuePrefix: PREFIX,
    keepGoing: false,
    onEvent: () => undefined,
    signal: new AbortController().signal,
    // Short heartbeat timeout: a killed worker's node is retried within seconds.
    tuning: { heartbeatTimeoutMs: 3000, retryInitialMs: 200 },
    pollIntervalMs: 250,
    ...extra,
  };
}

beforeAll(async () => {
  ts = await startTestServer();
  storeRoot = path.join(ts.dir, 'store');
  const common = ['--store', storeRoot, '--address', ts.server.address, '--task-queue-prefix', PREFIX];
  cpuWorker = spawnWorker([...common, '--cpus', '2', '--queues', 'pipeline,cpu', '--drain-seconds', '1']);
  gpuWorker = spawnWorker([...common, '--cpus', '0', '--gpus', '0,1']);
  spareCpuWorker = spawnWorker([...common, '--cpus', '1', '--queues', 'cpu', '--drain-seconds', '1']);
  await Promise.all([cpuWorker.ready, gpuWorker.ready, spareCpuWorker.ready]);
}, 120_000);

afterAll(async () => {
  await Promise.all([cpuWorker, gpuWorker, spareCpuWorker].map((w) => w?.stop()));
  await ts?.stop();
}, 60_000);

test('GPU nodes run only on the GPU worker, never more at once than its GPUs', async () => {
  const plan = planFromYaml(`
version: 1
steps:
  prep:
    uses: builtin.echo
    matrix: { i: [1, 2, 3, 4] }
    params: { value: "\${matrix.i}" }
  train:
    uses: builtin.devices
    needs: [prep]
    matrix: { i: [1, 2, 3, 4] , lr: [1, 2] }
    resources: { gpus: 1 }
    params: { holdMs: 300, tag: "train-\${matrix.i}-\${matrix.lr}" }
  wide:
    uses: builtin.devices
    needs: [prep]
    matrix: { j: [1, 2] }
    resources: { gpus: 2 }
    params: { holdMs: 200, tag: "wide-\${matrix.j}" }
`);
  const result = await runOnTemporal(runOpts(plan));
  expect(result.failed).toEqual([]);
  const store = new ArtifactStore(storeRoot);
  const records = plan.nodes
    .filter((n) => n.step !== 'prep')
    .map((n) => ({ step: n.step, ...JSON.parse(fs.readFileSync(path.join(store.artifactDir(n.key), 'devices.json'), 'utf8')) }));
  for (const r of records) expect(r.pid).toBe(gpuWorker.proc.pid);
  for (const n of plan.nodes.filter((n) => n.step === 'prep')) expect(store.lineage(n.key)!.pid).not.toBe(gpuWorker.proc.pid);
  for (const r of records.filter((r) => r.step === 'wide')) expect(r.gpus).toEqual([0, 1]);
  for (const r of records.filter((r) => r.step === 'train')) expect([[0], [1]]).toContainEqual(r.gpus);
  expect(new Set(plan.nodes.map((n) => n.key)).size).toBe(plan.nodes.length);
  // At every start, the GPUs held by overlapping nodes are distinct and at most two.
  for (const r of records) {
    const overlapping = records.filter((o) => o.startedAt <= r.startedAt && o.endedAt > r.startedAt);
    const held = overlapping.flatMap((o) => o.gpus as number[]);
    expect(held.length).toBeLessThanOrEqual(2);
    expect(new Set(held).size).toBe(held.length);
  }
  // Both GPUs were used side by side at some point (the pool is not serialising everything).
  expect(records.some((r) => records.some((o) => o !== r && o.startedAt <= r.startedAt && o.endedAt > r.startedAt))).toBe(true);
});

test('a worker killed with SIGKILL mid-node: retried on another worker, resumed from its checkpoint, same artifact', async () => {
  const yaml = `
version: 1
steps:
  train:
    uses: builtin.count
    params: { n: 60, stepMs: 50 }
    retries: 0
`;
  const plan = planFromYaml(yaml);
  const node = plan.nodes[0];
  const store = new ArtifactStore(storeRoot);
  const statePath = path.join(store.scratchDir(node.key), 'count.json');
  const lockPath = path.join(storeRoot, 'locks', `${node.key}.lock`);
  const run = runOnTemporal(runOpts(plan));
  const readState = () => (fs.existsSync(statePath) ? (JSON.parse(fs.readFileSync(statePath, 'utf8')).i as number) : 0);
  await waitFor('the counter to pass step 15', () => readState() >= 15, 60_000, 20);
  const holder = JSON.parse(fs.readFileSync(lockPath, 'utf8')).pid as number;
  const victim = [cpuWorker, spareCpuWorker].find((w) => w.proc.pid === holder)!;
  expect(victim).toBeDefined();
  victim.proc.kill('SIGKILL');
  await new Promise<void>((resolve) => (victim.proc.exitCode !== null || victim.proc.signalCode !== null ? resolve() : victim.proc.once('exit', () => resolve())));
  const checkpointAtKill = readState();
  expect(checkpointAtKill).toBeGreaterThanOrEqual(15);
  expect(checkpointAtKill).toBeLessThan(60);

  const result = await run;
  expect(result.failed).toEqual([]);
  const lineage = store.lineage(node.key)!;
  expect(lineage.pid).not.toBe(holder);
  expect(lineage.attempt).toBe(2);
  // The retry started where the killed attempt's last checkpoint left off.
  expect(lineage.summary).toEqual({ n: 60, resumedFrom: checkpointAtKill });

  // Identical to an uninterrupted run (local engine, fresh store).
  const localRoot = path.join(ts.dir, 'local-kill');
  const local = executePlanLocally(planFromYaml(yaml.replace('stepMs: 50', 'stepMs: 50')), { store: new ArtifactStore(localRoot), registry: createRegistry(), runId: 'local', cpus: 1, gpus: [], memoryMb: 1024, keepGoing: false });
  expect((await local.done).failed).toEqual([]);
  expect(artifactFiles(storeRoot, node.key)).toEqual(artifactFiles(localRoot, node.key));

  // Keep two CPU workers for the next test.
  const common = ['--store', storeRoot, '--address', ts.server.address, '--task-queue-prefix', PREFIX];
  if (victim === cpuWorker) cpuWorker = spawnWorker([...common, '--cpus', '2', '--queues', 'pipeline,cpu', '--drain-seconds', '1']);
  else spareCpuWorker = spawnWorker([...common, '--cpus', '1', '--queues', 'cpu', '--drain-seconds', '1']);
  await Promise.all([cpuWorker.ready, spareCpuWorker.ready]);
});

test('a worker stopped gracefully (SIGTERM) mid-node hands the node over to another worker', async () => {
  const plan = planFromYaml(`
version: 1
steps:
  train:
    uses: builtin.count
    params: { n: 120, stepMs: 40 }
`);
  const node = plan.nodes[0];
  const store = new ArtifactStore(storeRoot);
  const statePath = path.join(store.scratchDir(node.key), 'count.json');
  const run = runOnTemporal(runOpts(plan));
  await waitFor('the counter to pass step 10', () => fs.existsSync(statePath) && JSON.parse(fs.readFileSync(statePath, 'utf8')).i >= 10, 60_000, 20);
  const holder = JSON.parse(fs.readFileSync(path.join(storeRoot, 'locks', `${node.key}.lock`), 'utf8')).pid as number;
  const victim = [cpuWorker, spareCpuWorker].find((w) => w.proc.pid === holder)!;
  await victim.stop();
  const result = await run;
  expect(result.failed).toEqual([]);
  const lineage = store.lineage(node.key)!;
  expect(lineage.pid).not.toBe(holder);
  expect(lineage.attempt).toBe(2);
  expect((lineage.summary as { resumedFrom: number }).resumedFrom).toBeGreaterThanOrEqual(10);
  const common = ['--store', storeRoot, '--address', ts.server.address, '--task-queue-prefix', PREFIX];
  if (victim === cpuWorker) cpuWorker = spawnWorker([...common, '--cpus', '2', '--queues', 'pipeline,cpu', '--drain-seconds', '1']);
  else spareCpuWorker = spawnWorker([...common, '--cpus', '1', '--queues', 'cpu', '--drain-seconds', '1']);
  await Promise.all([cpuWorker.ready, spareCpuWorker.ready]);
});

test('restarting the dev server mid-run (SQLite persistence): the run completes', async () => {
  const plan = planFromYaml(`
version: 1
steps:
  long:
    uses: builtin.count
    params: { n: 50, stepMs: 60 }
  after:
    uses: builtin.echo
    needs: [long]
    matrix: { i: [1, 2, 3] }
    params: { value: "\${matrix.i}" }
`);
  const store = new ArtifactStore(storeRoot);
  const long = plan.nodes.find((n) => n.step === 'long')!;
  const statePath = path.join(store.scratchDir(long.key), 'count.json');
  const run = runOnTemporal(runOpts(plan));
  await waitFor('the long node to be running', () => fs.existsSync(statePath), 60_000, 20);
  await ts.server.restart();
  const result = await run;
  expect(result).toMatchObject({ failed: [], succeeded: 4 });
  expect(plan.nodes.every((n) => store.has(n.key))).toBe(true);
});
