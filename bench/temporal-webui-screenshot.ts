/**
 * Screenshots of the Temporal Web UI following a pipeline run (for docs/), taken with headless
 * Chromium, and a check that the run, its step workflows and their summaries are on the page.
 *
 *   npx tsx bench/temporal-webui-screenshot.ts     (needs /usr/bin/chromium or CHROMIUM=path)
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { chromium } from 'playwright-core';
import { createRegistry } from '../activities/index';
import { parseDag, planDag } from '../pipelines/dag-loader';
import { runOnTemporal } from '../pipelines/engine-temporal';
import { DevServer } from '../pipelines/temporal/dev-server';
import { pipelineWorkflowId } from '../pipelines/temporal/naming';
import { startPipelineWorker } from '../pipelines/temporal/worker';

const DAG = `
version: 1
steps:
  corpus:
    uses: builtin.echo
    params: { value: corpus }
  train:
    uses: builtin.count
    needs: [corpus]
    matrix: { steps: [3000, 4000] }
    resources: { gpus: 1 }
    params: { n: "\${matrix.steps}", stepMs: 50 }
  sweep:
    uses: builtin.fail
    needs: [corpus]
    matrix: { attempts: [1, 2, 3, 9] }
    retries: 3
    params: { succeedOnAttempt: "\${matrix.attempts}", message: "diverged (needs \${matrix.attempts} attempts)" }
`;

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webui-'));
  const server = await DevServer.start({ dbFile: path.join(dir, 'temporal.sqlite') });
  const storeRoot = path.join(dir, 'store');
  const worker = await startPipelineWorker({ address: server.address, storeRoot, gpus: [0, 1], cpus: 2, taskQueuePrefix: 'ui-', logLevel: 'ERROR' });
  const plan = planDag(parseDag(DAG, 'dag.yaml'), createRegistry());
  const runId = `run-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}`;
  const controller = new AbortController();
  const run = runOnTemporal({
    plan, dagFile: 'dag.yaml', storeRoot, runId, address: server.address, taskQueuePrefix: 'ui-', keepGoing: true,
    onEvent: () => undefined, signal: controller.signal, tuning: { retryInitialMs: 200 },
  });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    await new Promise((r) => setTimeout(r, 8000)); // let the sweep fail and training get going
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const query = encodeURIComponent(`PipelineRun="${runId}"`);
    await page.goto(`${server.uiUrl}/namespaces/default/workflows?query=${query}`, { waitUntil: 'load' });
    await page.waitForSelector(`text=${runId}/train`, { timeout: 30_000 });
    const listText = await page.innerText('body');
    for (const id of [pipelineWorkflowId(plan.planHash), `${runId}/corpus`, `${runId}/train`, `${runId}/sweep`]) {
      if (!listText.includes(id)) throw new Error(`workflow ${id} not listed in the Web UI`);
    }
    await page.screenshot({ path: path.join(__dirname, '..', 'docs', 'temporal-web-ui-runs.png') });
    await page.goto(`${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(`${runId}/train`)}`, { waitUntil: 'load' });
    await page.waitForSelector('text=train', { timeout: 30_000 });
    const detail = await page.innerText('body');
    if (!detail.includes('2 item(s)')) throw new Error('step summary not shown on the workflow page');
    await page.screenshot({ path: path.join(__dirname, '..', 'docs', 'temporal-web-ui-step.png'), fullPage: false });
    // Live heartbeat details of the running training nodes (progress, step, resume state, GPU ids).
    await page.click('text=Pending Activities');
    await page.waitForSelector('text=heartbeat', { timeout: 30_000 }).catch(() => undefined);
    await page.waitForTimeout(1500);
    await page.screenshot({ path: path.join(__dirname, '..', 'docs', 'temporal-web-ui-activities.png') });
    // The run's current details: the per-step progress table.
    await page.goto(`${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(pipelineWorkflowId(plan.planHash))}`, { waitUntil: 'load' });
    await page.click('text=User Metadata', { timeout: 30_000 });
    await page.waitForTimeout(1500);
    await page.screenshot({ path: path.join(__dirname, '..', 'docs', 'temporal-web-ui-details.png') });
    console.log('screenshots written to docs/temporal-web-ui-{runs,step,activities,details}.png');
  } finally {
    await browser.close();
    controller.abort();
    await run.catch(() => undefined);
    await worker.shutdown();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
