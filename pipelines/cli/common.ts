/** Option parsing and setup shared by the orchestrator's commands. */
import * as path from 'path';
import { parseArgs, type ParseArgsConfig } from 'util';
import { createRegistry, type ActivityRegistry } from '../../activities/index';
import { loadDag, parseOverrides, planDag, type LoadedDag } from '../dag-loader';
import type { Plan } from '../plan-types';
import { ArtifactStore } from '../store';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const COMMON_OPTIONS = {
  dag: { type: 'string' },
  store: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export const PLAN_OPTIONS = {
  ...COMMON_OPTIONS,
  profile: { type: 'string' },
  set: { type: 'string', multiple: true },
} as const;

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function dagPath(values: { dag?: string }): string {
  return path.resolve(values.dag ?? process.env.PIPELINE_DAG ?? 'dag.yaml');
}

export function openStore(values: { store?: string }): ArtifactStore {
  return new ArtifactStore(values.store ?? process.env.PIPELINE_STORE ?? '.pipeline');
}

export interface PlannedRun {
  loaded: LoadedDag;
  registry: ActivityRegistry;
  plan: Plan;
}

export function makePlan(dagFile: string, profile: string | undefined, sets: string[], targets: string[]): PlannedRun {
  const loaded = loadDag(dagFile);
  const registry = createRegistry();
  const plan = planDag(loaded, registry, { profile, overrides: parseOverrides(sets), targets });
  return { loaded, registry, plan };
}

/** `--gpus 0,1` → device ids (shared by `run` and `worker`). */
export function parseGpus(s: string | undefined): number[] {
  if (!s) return [];
  const ids = s.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
  if (ids.some((n) => !Number.isInteger(n) || n < 0)) throw new UsageError(`--gpus must be a list of device ids like 0,1, got "${s}"`);
  if (new Set(ids).size !== ids.length) throw new UsageError(`--gpus lists a device twice: "${s}"`);
  return ids;
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Fixed-width text table. */
export function table(rows: string[][], header: string[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}
