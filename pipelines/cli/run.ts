/** `pipeline run` and `pipeline resume`. */
import * as os from 'os';
import type { EngineEvent, EngineSummary } from '../engine-events';
import { executePlanLocally } from '../engine-local';
import { createRunRecord, newRunId, readRunRecord, saveRunRecord, type RunRecord, type RunRequest } from '../run-record';
import { dagPath, makePlan, openStore, parse, parseGpus, PLAN_OPTIONS, UsageError } from './common';
import { createRenderer } from './render';

const RUN_OPTIONS = {
  ...PLAN_OPTIONS,
  'keep-going': { type: 'boolean', short: 'k', default: false },
  jobs: { type: 'string', short: 'j' },
  gpus: { type: 'string' },
  memory: { type: 'string' },
  engine: { type: 'string' },
  address: { type: 'string' },
  namespace: { type: 'string' },
  run: { type: 'string' },
  resume: { type: 'boolean', default: false },
} as const;

const USAGE = `usage: pipeline run [targets|all] [options]
       pipeline resume [--run <id>] [options]   (reuses the run's options unless given again)
  --profile P            profile of dag.yaml (default: the DAG's default_profile, tiny)
  --set step.param=V     override a param (repeatable); step.matrix.key=[a,b] sets a matrix row
  -k, --keep-going       keep running independent nodes after a failure
  -j, --jobs N           CPU slots (default: number of cores)
  --gpus 0,1             GPU device ids the engine may assign (default: none)
  --memory MiB           memory pool (default: total memory)
  --engine local|temporal  (default local; temporal uses TEMPORAL_ADDRESS or --address)
  --json                 NDJSON events instead of progress bars
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, RUN_OPTIONS);
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const store = openStore(values);
  // Outputs of killed runs (dead pids) are garbage: clear them before starting.
  store.cleanStaleTemps();
  // Execution options given now; a resumed run falls back to the ones it was started with.
  const given: Partial<RunRequest> = {
    ...(values['keep-going'] ? { keepGoing: true } : {}),
    ...(values.jobs !== undefined ? { jobs: positiveInt(values.jobs, '--jobs') } : {}),
    ...(values.gpus !== undefined ? { gpus: values.gpus } : {}),
    ...(values.memory !== undefined ? { memoryMb: positiveInt(values.memory, '--memory') } : {}),
    ...(values.address !== undefined ? { address: values.address } : {}),
    ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
    ...(values.engine !== undefined ? { engine: values.engine as RunRequest['engine'] } : {}),
  };
  if (given.gpus !== undefined) parseGpus(given.gpus); // refuse a bad list before anything is recorded
  let request: RunRequest;
  if (values.resume) {
    const previous = readRunRecord(store, values.run);
    if (!previous) throw new UsageError(`no run to resume in ${store.root}${values.run ? ` (run ${values.run})` : ''}`);
    request = { ...previous.request, ...given };
  } else {
    request = {
      dagFile: dagPath(values),
      profile: values.profile ?? '',
      sets: values.set ?? [],
      targets: positionals.length ? positionals : ['all'],
      engine: 'local',
      ...given,
    };
  }
  if (request.engine !== 'local' && request.engine !== 'temporal') throw new UsageError(`--engine must be local or temporal, got "${request.engine}"`);
  const { plan, registry } = makePlan(request.dagFile, request.profile || undefined, request.sets, request.targets);
  request.profile = plan.profile;
  const runId = newRunId();
  const record = createRunRecord(store, runId, request, plan);

  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`\n${sig} again: exiting immediately\n`);
      process.exit(130);
    }
    process.stderr.write(`\n${sig}: cancelling running nodes (again to exit immediately)\n`);
    controller.abort(new Error(`received ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const mode = values.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain';
  const renderer = createRenderer(mode, plan.nodes.length);
  const recorder = new RecordUpdater(store, record);
  const onEvent = (e: EngineEvent) => {
    recorder.apply(e);
    renderer.event(e);
  };
  const started = Date.now();
  let summary: EngineSummary;
  try {
    if (request.engine === 'temporal') {
      const { runOnTemporal } = await import('../engine-temporal');
      const result = await runOnTemporal({
        plan,
        dagFile: request.dagFile,
        storeRoot: store.root,
        runId,
        address: request.address ?? process.env.TEMPORAL_ADDRESS,
        namespace: request.namespace ?? process.env.TEMPORAL_NAMESPACE,
        keepGoing: request.keepGoing ?? false,
        onEvent,
        onMessage: (line) => process.stderr.write(`${line}\n`),
        signal: controller.signal,
      });
      summary = { succeeded: result.succeeded, cached: result.cached, failed: result.failed, skipped: result.skipped, cancelled: result.cancelled };
    } else {
      const gpus = parseGpus(request.gpus);
      const jobs = request.jobs ?? os.cpus().length;
      const memoryMb = request.memoryMb ?? Math.floor(os.totalmem() / 2 ** 20);
      const exec = executePlanLocally(plan, {
        store,
        registry,
        runId,
        cpus: jobs,
        gpus,
        memoryMb,
        keepGoing: request.keepGoing ?? false,
        signal: controller.signal,
        retryBaseMs: process.env.PIPELINE_RETRY_BASE_MS ? Number(process.env.PIPELINE_RETRY_BASE_MS) : undefined,
      });
      exec.events$.subscribe(onEvent);
      summary = await exec.done;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  record.status = summary.cancelled ? 'cancelled' : summary.failed.length ? 'failed' : 'succeeded';
  recorder.flush();
  renderer.finish(summary, Date.now() - started);
  return summary.failed.length || summary.cancelled ? 1 : 0;
}

function positiveInt(s: string, flag: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag} must be a positive integer, got "${s}"`);
  return n;
}

/** Keeps the run record in step with events, writing it at most twice a second. */
class RecordUpdater {
  private dirty = false;
  private timer: NodeJS.Timeout;
  constructor(private readonly store: ReturnType<typeof openStore>, private readonly record: RunRecord) {
    this.timer = setInterval(() => this.dirty && this.flush(), 500);
    this.timer.unref();
  }
  apply(e: EngineEvent) {
    const n = this.record.nodes[e.nodeId];
    if (!n) return;
    if (e.type === 'started') {
      n.status = 'running';
      n.attempts = e.attempt ?? n.attempts + 1;
    } else if (e.type === 'succeeded' || e.type === 'cached' || e.type === 'failed' || e.type === 'skipped') {
      n.status = e.type;
      if (e.error) n.error = e.error;
      if (e.durationMs !== undefined) n.durationMs = e.durationMs;
    }
    if (e.type !== 'progress') this.dirty = true;
  }
  flush() {
    this.dirty = false;
    saveRunRecord(this.store, this.record);
    if (this.record.status !== 'running') clearInterval(this.timer);
  }
}
