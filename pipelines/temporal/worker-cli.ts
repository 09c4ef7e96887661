/** `pipeline worker`: serve pipeline activities and workflows from this machine. */
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { temporalAddress } from '../engine-temporal';
import { DEFAULT_TASK_QUEUE_PREFIX } from './naming';
import { defaultQueues, startPipelineWorker, validateQueues } from './worker';
import { parseGpus } from '../cli/common';

const HELP = `usage: pipeline worker [--gpus 0,1] [--cpus N] [--queues pipeline,cpu,gpu,...] [--store dir]
                       [--address host:port] [--namespace ns] [--task-queue-prefix p]

Polls the Temporal task queues of the resource classes this machine can serve and runs pipeline
nodes there (the same activities the local engine runs), writing artifacts to the shared store.
  --gpus 0,1          GPU device ids to hand out (one node per id; gpu-xN nodes take N at once)
  --cpus N            CPU slots for cpu nodes (default: number of cores; 0 = serve no cpu queue)
  --queues list       queue classes to poll: pipeline (workflow tasks), cpu, gpu, gpu-xN
                      (default: pipeline + every class the resources allow)
  --store dir         artifact store shared by all workers and clients (default ./.pipeline or $PIPELINE_STORE)
  --address           Temporal frontend (default $TEMPORAL_ADDRESS or localhost:7233)
  --namespace         Temporal namespace (default $TEMPORAL_NAMESPACE or default)
  --task-queue-prefix prefix of every task queue name (default ${DEFAULT_TASK_QUEUE_PREFIX})
  --drain-seconds N   on SIGTERM/SIGINT, running nodes get N s to finish (default 10); then they are
                      handed to other workers, which resume them from their last checkpoint
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        gpus: { type: 'string' },
        cpus: { type: 'string' },
        queues: { type: 'string' },
        store: { type: 'string' },
        address: { type: 'string' },
        namespace: { type: 'string' },
        'task-queue-prefix': { type: 'string' },
        'drain-seconds': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`pipeline worker: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let gpus: number[];
  let cpus: number;
  let queues: string[];
  let drainMs: number;
  try {
    drainMs = values['drain-seconds'] === undefined ? 10_000 : parseCount(values['drain-seconds'], '--drain-seconds') * 1000;
    gpus = parseGpus(values.gpus);
    cpus = values.cpus === undefined ? os.cpus().length : parseCount(values.cpus, '--cpus');
    queues = values.queues ? values.queues.split(',').map((q) => q.trim()).filter(Boolean) : defaultQueues(cpus, gpus);
    validateQueues(queues, cpus, gpus);
  } catch (err) {
    process.stderr.write(`pipeline worker: ${(err as Error).message}\n`);
    return 2;
  }
  const storeRoot = path.resolve(values.store ?? process.env.PIPELINE_STORE ?? '.pipeline');
  const address = temporalAddress(values.address);
  const worker = await startPipelineWorker({
    address,
    namespace: values.namespace ?? process.env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueuePrefix: values['task-queue-prefix'],
    storeRoot,
    gpus,
    cpus,
    queues,
    drainMs,
  });
  process.stdout.write(
    `pipeline worker ${process.pid}: ${address}, store ${storeRoot}, queues ${worker.taskQueues.join(', ')}` +
      `${gpus.length ? `, GPUs ${gpus.join(',')}` : ''}, ${cpus} CPU slot(s)\n`,
  );
  const stop = () => void worker.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await worker.done;
  return 0;
}


function parseCount(s: string, flag: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} must be a whole number >= 0, got "${s}"`);
  return n;
}
