/**
 * Scheduling overhead per node: Temporal engine vs the local engine, on empty activities (both go
 * through executeNode and commit a real, empty artifact, so the difference is the engine's).
 *
 *   npx tsx bench/temporal-overhead.ts [--n 1000] [--tiny]
 *
 * Starts a real Temporal dev server (SQLite) and an in-process worker on this machine, so server,
 * worker and client share its cores. --tiny also times the `tiny` profile of dag.yaml on both engines.
 * Prints the numbers and writes them to bench/results/temporal-overhead.txt.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { z } from 'zod';
import { ALL_ACTIVITIES, createRegistry } from '../activities/index';
import { defineActivity } from '../pipelines/activity';
import { loadDag, parseDag, planDag } from '../pipelines/dag-loader';
import { executePlanLocally } from '../pipelines/engine-local';
import { runOnTemporal } from '../pipelines/engine-temporal';
import type { Plan } from '../pipelines/plan-types';
import { ArtifactStore } from '../pipelines/store';
import { DevServer } from '../pipelines/temporal/dev-server';
import { startPipelineWorker } from '../pipelines/temporal/worker';

const noop = defineActivity({
  name: 'bench.noop',
  version: '1',
  description: 'does nothing',
  params: z.object({ i: z.number(), sweep: z.string() }).strict(),
  async run() {
    return null;
  },
});
const registry = createRegistry([...ALL_ACTIVITIES, noop]);
const SLOTS = 8;

function sweep(n: number, tag: string): Plan {
  const items = Array.from({ length: n }, (_, i) => i).join(',');
  const yaml = `version: 1\nsteps:\n  ${tag}:\n    uses: bench.noop\n    matrix: { i: [${items}] }\n    params: { i: "\${matrix.i}", sweep: ${tag} }\n`;
  return planDag(parseDag(yaml, `${tag}.yaml`), registry);
}

async function main() {
  const { values } = parseArgs({ options: { n: { type: 'string', default: '1000' }, tiny: { type: 'boolean', default: false }, pragma: { type: 'string', multiple: true }, config: { type: 'string', multiple: true }, memory: { type: 'boolean', default: false } } });
  const n = Number(values.n);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-temporal-'));
  const lines: string[] = [`# npx tsx bench/temporal-overhead.ts ${process.argv.slice(2).join(' ')}  (${new Date().toISOString()})`];
  const say = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  say(`host: ${os.cpus().length} cores, ${os.cpus()[0].model}; node ${process.version}; server, worker and client on this host`);

  const local = async (plan: Plan, root: string, runId: string) => {
    const t0 = performance.now();
    const s = await executePlanLocally(plan, { store: new ArtifactStore(root), registry, runId, cpus: SLOTS, gpus: [], memoryMb: 1 << 20, keepGoing: false }).done;
    if (s.failed.length) throw new Error(`local run failed: ${s.failed.join(', ')}`);
    return performance.now() - t0;
  };

  const server = await DevServer.start({ dbFile: values.memory ? undefined : path.join(dir, 'temporal.sqlite'), sqlitePragmas: values.pragma, dynamicConfig: values.config, headless: true });
  say(`dev server: ${values.memory ? 'in-memory' : `SQLite file${values.pragma?.length ? ` (pragmas ${values.pragma.join(', ')})` : ''}`}${values.config?.length ? `, dynamic config ${values.config.join(', ')}` : ''}`);
  const storeRoot = path.join(dir, 'store-temporal');
  const worker = await startPipelineWorker({ address: server.address, storeRoot, gpus: [], cpus: SLOTS, registry, taskQueuePrefix: 'bench-', logLevel: 'ERROR' });
  const temporal = async (plan: Plan, runId: string, window: number) => {
    const t0 = performance.now();
    const r = await runOnTemporal({
      plan, dagFile: 'bench', storeRoot, runId, address: server.address, taskQueuePrefix: 'bench-', keepGoing: false,
      onEvent: () => undefined, signal: new AbortController().signal, tuning: { window, chunkSize: 500 }, pollIntervalMs: 1000,
    });
    if (r.failed.length) throw new Error(`temporal run failed: ${r.failed.join(', ')}`);
    return performance.now() - t0;
  };
  try {
    // The first sweep after a worker starts is much slower per node than later ones (measured and
    // printed); the comparison below is between warm engines.
    const cold = await temporal(sweep(200, 'warmup'), 'warmup', 64);
    say(`temporal engine, first 200-node sweep after the worker started (cold): ${cold.toFixed(0)} ms = ${(cold / 200).toFixed(2)} ms/node`);
    await local(sweep(200, 'warmup'), path.join(dir, 'store-local-warm'), 'warmup');

    const plan = sweep(n, 'empty');
    const tLocal = await local(plan, path.join(dir, 'store-local'), 'local');
    say(`local engine,    ${n} empty nodes, ${SLOTS} slots:            ${tLocal.toFixed(0)} ms = ${(tLocal / n).toFixed(2)} ms/node`);
    const tTemporal = await temporal(plan, 'temporal-w64', 64);
    say(`temporal engine, ${n} empty nodes, ${SLOTS} slots, window 64: ${tTemporal.toFixed(0)} ms = ${(tTemporal / n).toFixed(2)} ms/node`);
    say(`temporal / local: ${(tTemporal / tLocal).toFixed(1)}x; extra scheduling cost ${((tTemporal - tLocal) / n).toFixed(2)} ms/node`);
    const t8 = await temporal(sweep(n, 'empty8'), 'temporal-w8', SLOTS);
    say(`temporal engine, ${n} empty nodes, ${SLOTS} slots, window ${SLOTS}: ${t8.toFixed(0)} ms = ${(t8 / n).toFixed(2)} ms/node`);
    const cached = await temporal(plan, 'temporal-cached', 64);
    say(`temporal engine, all ${n} cached (one cache-lookup activity per chunk): ${cached.toFixed(0)} ms`);
    const m = Math.min(n, 100);
    const seqPlan = sweep(m, 'sequential');
    const tSeq = await temporal(seqPlan, 'temporal-w1', 1);
    say(`temporal engine, ${m} empty nodes one at a time (window 1): ${tSeq.toFixed(0)} ms = ${(tSeq / m).toFixed(1)} ms/node (activity round trip latency)`);

    if (values.tiny) {
      if (!fs.existsSync('dag.yaml')) say('tiny DAG: dag.yaml not found, skipped');
      else {
        const tinyPlan = planDag(loadDag('dag.yaml'), registry, { profile: 'tiny' });
        const a = await local(tinyPlan, path.join(dir, 'tiny-local'), 'tiny-local');
        const b = await temporal(tinyPlan, 'tiny-temporal', 64);
        say(`tiny DAG (${tinyPlan.nodes.length} nodes): local ${(a / 1000).toFixed(1)} s, temporal ${(b / 1000).toFixed(1)} s`);
      }
    }
  } finally {
    await worker.shutdown();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', 'temporal-overhead.txt'), lines.join('\n') + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
