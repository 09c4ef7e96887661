/**
 * `pipeline gc`: keeps the artifacts of the plans of recent runs (and of the current DAG's default
 * plan), removes everything else, and cleans abandoned temp dirs.
 */
import { listRunRecords } from '../run-record';
import { COMMON_OPTIONS, dagPath, makePlan, openStore, parse, printJson, UsageError } from './common';
import * as fs from 'fs';

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...COMMON_OPTIONS, keep: { type: 'string', default: '5' }, 'dry-run': { type: 'boolean', default: false } });
  if (values.help) {
    process.stdout.write('usage: pipeline gc [--keep N (recent runs whose artifacts stay, default 5)] [--dry-run] [--json]\n');
    return 0;
  }
  const keepRuns = Number(values.keep);
  if (!Number.isInteger(keepRuns) || keepRuns < 0) throw new UsageError(`--keep must be a non-negative integer`);
  const store = openStore(values);
  const keep = new Set<string>();
  for (const r of listRunRecords(store).slice(0, keepRuns)) for (const n of Object.values(r.nodes)) keep.add(n.key);
  const dagFile = dagPath(values);
  if (fs.existsSync(dagFile)) {
    for (const n of makePlan(dagFile, undefined, [], ['all']).plan.nodes) keep.add(n.key);
  }
  const all = store.committedKeys();
  const doomed = [...all].filter((k) => !keep.has(k));
  const removed = values['dry-run'] ? doomed : store.removeArtifactsExcept(keep);
  const temps = values['dry-run'] ? [] : store.cleanStaleTemps();
  if (values.json) printJson({ kept: all.size - doomed.length, removed, removedTemps: temps, dryRun: values['dry-run'] });
  else process.stdout.write(`${values['dry-run'] ? 'would remove' : 'removed'} ${removed.length} artifact(s), kept ${all.size - doomed.length}; cleaned ${temps.length} temp dir(s)\n`);
  return 0;
}
