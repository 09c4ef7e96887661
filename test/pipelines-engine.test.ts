import * as fs from 'fs';
import * as path from 'path';
import { createRegistry } from '../activities/index';
import type { EngineEvent } from '../pipelines/engine-events';
import { executePlanLocally, type LocalEngineOptions } from '../pipelines/engine-local';
import type { Plan } from '../pipelines/plan-types';
import type { ArtifactStore } from '../pipelines/store';
import { artifactContents, DAGS, planFile, planText, tempDir, tempStore } from './helpers/pipeline-fixtures';

async function runPlan(plan: Plan, store: ArtifactStore, opts: Partial<LocalEngineOptions> = {}) {
  const events: EngineEvent[] = [];
  const exec = executePlanLocally(plan, {
    store,
    registry: createRegistry(),
    runId: 'test',
    cpus: 4,
    gpus: [],
    memoryMb: 4096,
    keepGoing: false,
    retryBaseMs: 10,
    ...opts,
  });
  exec.events$.subscribe((e) => events.push(e));
  const summary = await exec.done;
  return { summary, events };
}

describe('local engine', () => {
  test('runs a DAG, then a rerun is fully cached with the same artifacts', async () => {
    const store = tempStore();
    const plan = planFile(path.join(DAGS, 'sweep.yaml'));
    const first = await runPlan(plan, store);
    expect(first.summary).toMatchObject({ succeeded: 8, cached: 0, failed: [], skipped: [] });
    const contents = artifactContents(store);
    expect(Object.keys(contents)).toHaveLength(8);
    const agg = JSON.parse(contents[plan.nodes.find((n) => n.id === 'aggregate')!.key]['value.json']);
    expect(agg.inputs.score.map((r: { item: string }) => r.item)).toEqual(['x=a', 'x=b', 'x=c']);
    const second = await runPlan(plan, store);
    expect(second.summary).toMatchObject({ succeeded: 0, cached: 8 });
    expect(artifactContents(store)).toEqual(contents);
  });

  test('never uses more GPUs than given; each node sees its own device ids', async () => {
    const store = tempStore();
    const plan = planText(`
version: 1
steps:
  gpu:
    uses: builtin.devices
    matrix: { i: [1, 2, 3, 4, 5, 6, 7] }
    params: { holdMs: 60, tag: "g\${matrix.i}" }
    resources: { gpus: 1, cpus: 1 }
  pair:
    uses: builtin.devices
    matrix: { j: [1, 2] }
    params: { holdMs: 60, tag: "p\${matrix.j}" }
    resources: { gpus: 2, cpus: 1 }
`);
    const { summary } = await runPlan(plan, store, { cpus: 8, gpus: [3, 5] });
    expect(summary.failed).toEqual([]);
    const records = plan.nodes.map((n) => JSON.parse(fs.readFileSync(path.join(store.artifactDir(n.key), 'devices.json'), 'utf8')));
    for (const [i, n] of plan.nodes.entries()) expect(records[i].gpus).toHaveLength(n.resources.gpus);
    for (const r of records) for (const g of r.gpus) expect([3, 5]).toContain(g);
    // At no instant do two running nodes hold the same device, nor more than 2 devices in total.
    const edges = records.flatMap((r) => [{ t: r.startedAt, d: r.gpus.length, r }, { t: r.endedAt, d: -r.gpus.length, r }]);
    edges.sort((a, b) => a.t - b.t || a.d - b.d);
    let inUse = 0;
    for (const e of edges) {
      inUse += e.d;
      expect(inUse).toBeLessThanOrEqual(2);
    }
    for (let a = 0; a < records.length; a++)
      for (let b = a + 1; b < records.length; b++) {
        const overlap = records[a].startedAt < records[b].endedAt && records[b].startedAt < records[a].endedAt;
        if (overlap) for (const g of records[a].gpus) expect(records[b].gpus).not.toContain(g);
      }
  });

  test('a node asking for more GPUs than exist fails clearly', async () => {
    const plan = planText(`version: 1\nsteps:\n  big: { uses: builtin.devices, resources: { gpus: 4 } }\n`);
    const { summary, events } = await runPlan(plan, tempStore(), { gpus: [0] });
    expect(summary.failed).toEqual(['big']);
    expect(events.find((e) => e.type === 'failed')!.error).toMatch(/needs 4 GPU\(s\) but the engine has 1/);
  });

  test('retries with backoff until the activity succeeds', async () => {
    const plan = planText(`version: 1\nsteps:\n  flaky: { uses: builtin.fail, params: { succeedOnAttempt: 3 }, retries: 2 }\n`);
    const store = tempStore();
    const { summary, events } = await runPlan(plan, store);
    expect(summary).toMatchObject({ succeeded: 1, failed: [] });
    expect(events.filter((e) => e.type === 'retried').map((e) => e.attempt)).toEqual([1, 2]);
    expect(store.lineage(plan.nodes[0].key)!.attempt).toBe(3);
  });

  const failingSweep = (marker: string) => `
version: 1
steps:
  sweep:
    uses: builtin.fail
    matrix: { i: [0, 1, 2, 3, 4, 5] }
    params: { unlessFileExists: "${marker}\${matrix.i}", value: "\${matrix.i}" }
  per:
    uses: builtin.echo
    needs: [sweep]
    matrix: { i: [0, 1, 2, 3, 4, 5] }
    params: { value: "\${matrix.i}" }
  all:
    uses: builtin.echo
    needs: [per]
`;

  test('keep-going finishes independent items; a rerun reruns only the failed item and its downstream', async () => {
    const dir = tempDir();
    const marker = path.join(dir, 'ok-');
    for (const i of [0, 1, 2, 4, 5]) fs.writeFileSync(marker + i, '');
    const plan = planText(failingSweep(marker));
    const store = tempStore();
    const first = await runPlan(plan, store, { keepGoing: true });
    expect(first.summary.failed).toEqual(['sweep/i=3']);
    expect(first.summary.skipped.sort()).toEqual(['all', 'per/i=3']);
    expect(first.summary.succeeded).toBe(10);
    fs.writeFileSync(marker + 3, '');
    const second = await runPlan(plan, store, { keepGoing: true });
    expect(second.summary).toMatchObject({ succeeded: 3, cached: 10, failed: [] });
    const ran = second.events.filter((e) => e.type === 'succeeded').map((e) => e.nodeId).sort();
    expect(ran).toEqual(['all', 'per/i=3', 'sweep/i=3']);
  });

  test('without keep-going, nothing new starts after a failure', async () => {
    const dir = tempDir();
    const plan = planText(failingSweep(path.join(dir, 'never-')));
    const { summary } = await runPlan(plan, tempStore(), { cpus: 1 });
    expect(summary.failed).toEqual(['sweep/i=0']);
    expect(summary.succeeded).toBe(0);
    expect(summary.skipped).toHaveLength(12);
  });

  test('cancellation aborts running nodes, commits nothing partial, and resume continues from the checkpoint', async () => {
    const plan = planText(`version: 1\nsteps:\n  long: { uses: builtin.count, params: { n: 40, stepMs: 25 } }\n`);
    const store = tempStore();
    const controller = new AbortController();
    const exec = executePlanLocally(plan, { store, registry: createRegistry(), runId: 't', cpus: 1, gpus: [], memoryMb: 1024, keepGoing: false, signal: controller.signal });
    exec.events$.subscribe((e) => {
      if (e.type === 'progress' && (e.progress?.metrics?.step ?? 0) >= 5) controller.abort();
    });
    const summary = await exec.done;
    expect(summary.cancelled).toBe(true);
    expect(store.has(plan.nodes[0].key)).toBe(false);
    expect(fs.readdirSync(path.join(store.root, 'tmp'))).toEqual([]);
    const resumed = await runPlan(plan, store);
    expect(resumed.summary.succeeded).toBe(1);
    const lineage = store.lineage(plan.nodes[0].key)!;
    expect((lineage.summary as { resumedFrom: number }).resumedFrom).toBeGreaterThanOrEqual(5);
  });
});
