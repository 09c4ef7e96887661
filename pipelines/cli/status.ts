/** `pipeline status [--run id]`: how the last (or a given) run stands. */
import { readRunRecord, type NodeStatus } from '../run-record';
import { COMMON_OPTIONS, openStore, parse, printJson, table, UsageError } from './common';

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...COMMON_OPTIONS, run: { type: 'string' } });
  if (values.help) {
    process.stdout.write('usage: pipeline status [--run <id>] [--json]\n');
    return 0;
  }
  const store = openStore(values);
  const record = readRunRecord(store, values.run);
  if (!record) throw new UsageError(`no run recorded in ${store.root}`);
  const counts: Record<NodeStatus, number> = { queued: 0, cached: 0, running: 0, succeeded: 0, failed: 0, skipped: 0 };
  for (const n of Object.values(record.nodes)) counts[n.status]++;
  // A run whose process died (kill -9) still says "running": say so.
  let alive = record.status !== 'running';
  if (record.status === 'running') {
    try {
      process.kill(record.pid, 0);
      alive = true;
    } catch {
      alive = false;
    }
  }
  const status = record.status === 'running' && !alive ? 'interrupted' : record.status;
  const failed = Object.entries(record.nodes).filter(([, n]) => n.status === 'failed');
  if (values.json) {
    printJson({ id: record.id, status, request: record.request, counts, failed: failed.map(([id, n]) => ({ id, error: n.error })), updatedAt: record.updatedAt });
    return 0;
  }
  process.stdout.write(`run ${record.id}: ${status} (profile ${record.request.profile}, engine ${record.request.engine}, updated ${record.updatedAt})\n`);
  process.stdout.write(table(Object.entries(counts).map(([k, v]) => [k, String(v)]), ['state', 'nodes']));
  if (failed.length) process.stdout.write(`\nfailed:\n${failed.map(([id, n]) => `  ${id}: ${n.error ?? ''}`).join('\n')}\n`);
  if (status === 'interrupted' || failed.length) process.stdout.write('\nrerun what is missing with: pipeline resume\n');
  return 0;
}
