/**
 * Orchestrator overhead benchmarks (issue: pipeline backbone). Run: npx tsx bench/backbone.ts
 *  1. planning + cache check of a 100,000-node sweep          (target < 2 s)
 *  2. no-op resume of a 10,000-node run (all cached)           (target < 1 s)
 *  3. per-node engine overhead on empty activities             (target < 2 ms)
 * Prints the numbers; results are not pass/fail (these machines are noisy).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { z } from 'zod';
import { createRegistry } from '../activities/index';
import { builtinActivities } from '../activities/builtin';
import { defineActivity } from '../pipelines/activity';
import { parseDag, planDag } from '../pipelines/dag-loader';
import { executePlanLocally } from '../pipelines/engine-local';
import type { Plan } from '../pipelines/plan-types';
import { ArtifactStore } from '../pipelines/store';

/** An activity that does nothing at all: measures pure engine cost. */
const noop = defineActivity({
  name: 'bench.noop',
  version: '1',
  description: 'does nothing',
  params: z.object({ i: z.number(), j: z.number() }).strict(),
  async run() {
    return null;
  },
});
const registry = createRegistry([...builtinActivities, noop]);

function sweepDag(a: number, b: number): string {
  const xs = Array.from({ length: a }, (_, i) => i).join(',');
  const ys = Array.from({ length: b }, (_, i) => i).join(',');
  return `version: 1\nmatrix_limit: 1000000\nsteps:\n  sweep:\n    uses: bench.noop\n    matrix: { x: [${xs}], y: [${ys}] }\n    params: { i: "\${matrix.x}", j: "\${matrix.y}" }\n`;
}

function time<T>(fn: () => T): [T, number] {
  const t0 = process.hrtime.bigint();
  const r = fn();
  return [r, Number(process.hrtime.bigint() - t0) / 1e6];
}

async function runAll(plan: Plan, store: ArtifactStore, cpus: number) {
  const exec = executePlanLocally(plan, { store, registry, runId: 'bench', cpus, gpus: [], memoryMb: 1 << 20, keepGoing: true });
  return exec.done;
}

async function main() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bp-bench-'));
  const lines: string[] = [`host: ${os.cpus().length} cores, ${os.cpus()[0].model}; node ${process.version}`];
  const say = (s: string) => {
    console.log(s);
    lines.push(s);
  };

  // 1. Planning + cache check, 100,000 nodes.
  const big = parseDag(sweepDag(1000, 100), 'bench.yaml');
  const [plan100k, planMs] = time(() => planDag(big, registry, {}));
  const store = new ArtifactStore(path.join(root, 'store'));
  const [cachedCount, cacheMs] = time(() => {
    const keys = store.committedKeys();
    return plan100k.nodes.filter((n) => keys.has(n.key)).length;
  });
  say(`plan + cache check of ${plan100k.nodes.length} nodes: ${(planMs + cacheMs).toFixed(0)} ms (plan ${planMs.toFixed(0)} ms, cache check ${cacheMs.toFixed(0)} ms, ${cachedCount} cached)  target < 2000 ms`);

  // 3. Per-node overhead: 2,000 empty nodes, executed and committed for real.
  for (const [label, fsync, slots] of [
    ['durable commits (fsync), 1 slot', true, 1],
    ['durable commits (fsync), 8 slots', true, 8],
    ['engine only (PIPELINE_FSYNC=0), 1 slot', false, 1],
  ] as const) {
    const small = planDag(parseDag(sweepDag(100, 20), 'bench.yaml'), registry, {});
    const s = new ArtifactStore(path.join(root, `overhead-${fsync}-${slots}`), { fsync });
    const t0 = process.hrtime.bigint();
    const r = await runAll(small, s, slots);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    say(`execute ${r.succeeded} empty nodes, ${label}: ${ms.toFixed(0)} ms = ${(ms / r.succeeded).toFixed(2)} ms/node  target < 2 ms`);
  }

  // 2. No-op resume of a 10,000-node run.
  const tenK = planDag(parseDag(sweepDag(100, 100), 'bench.yaml'), registry, {});
  const storeB = new ArtifactStore(path.join(root, 'storeB'));
  await runAll(tenK, storeB, os.cpus().length);
  const t1 = Date.now();
  const replanned = planDag(parseDag(sweepDag(100, 100), 'bench.yaml'), registry, {});
  const s2 = await runAll(replanned, storeB, os.cpus().length);
  const resumeMs = Date.now() - t1;
  say(`no-op resume of ${s2.cached} cached nodes (plan + cache check + engine): ${resumeMs} ms  target < 1000 ms`);

  fs.rmSync(root, { recursive: true, force: true });
  const out = path.join(__dirname, 'results', 'backbone.txt');
  fs.writeFileSync(out, `# npx tsx bench/backbone.ts  (${new Date().toISOString()})\n${lines.join('\n')}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
