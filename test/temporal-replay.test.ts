/**
 * Replays committed histories of representative runs (a small DAG, keep-going with a failed item, a
 * chunked sweep across continue-as-new) against the current workflow code: a change that would break
 * runs in flight on a server fails here. Re-record after an intended, versioned change with
 * `RECORD_TEMPORAL_HISTORIES=1 npx jest test/temporal-engine.test.ts`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { workflowBundle } from '../pipelines/temporal/workflow-bundle';

const DIR = path.join(__dirname, 'fixtures', 'temporal-histories');
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.binpb')).sort();

beforeAll(() => {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    /* installed already */
  }
});

function load(file: string) {
  return temporal.api.history.v1.History.decode(fs.readFileSync(path.join(DIR, file)));
}

test('the committed histories cover the pipeline and step workflows', () => {
  const types = new Set(files.map((f) => load(f).events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name));
  expect(types).toEqual(new Set(['pipelineWorkflow', 'stepWorkflow']));
  expect(files.length).toBeGreaterThanOrEqual(5);
});

test.each(files)('replays %s against the current workflow code', async (file) => {
  await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, load(file), file);
});

test('a non-deterministic change of the workflow code fails replay', async () => {
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('./fixtures/temporal-histories/broken-workflows'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
  });
  await expect(Worker.runReplayHistory({ workflowBundle: { code } }, load('basic.pipeline.binpb'))).rejects.toThrow(/[Nn]ondeterminism|[Dd]eterminism/);
}, 120_000);
