/**
 * Run records: what a run was asked to do and how each node ended. `resume` replays the request;
 * `status` reads it; `explain` and `plan` compare keys against it to say why a node reruns.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readJsonIfExists, writeFileAtomic } from './fs-atomic';
import type { Plan } from './plan-types';
import type { ArtifactStore } from './store';

export type NodeStatus = 'queued' | 'cached' | 'running' | 'succeeded' | 'failed' | 'skipped';

export interface RunRequest {
  dagFile: string;
  profile: string;
  sets: string[];
  targets: string[];
  engine: 'local' | 'temporal';
  /** Execution options given on the command line; `resume` reuses them unless given again. */
  keepGoing?: boolean;
  jobs?: number;
  gpus?: string;
  memoryMb?: number;
  address?: string;
  namespace?: string;
}

export interface RunRecord {
  id: string;
  request: RunRequest;
  planHash: string;
  status: 'running' | 'succeeded' | 'failed' | 'cancelled';
  createdAt: string;
  updatedAt: string;
  pid: number;
  nodes: Record<string, { key: string; status: NodeStatus; attempts: number; error?: string; durationMs?: number }>;
}

export function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  return `run-${t}-${Math.random().toString(36).slice(2, 6)}`;
}

export function runsDir(store: ArtifactStore): string {
  return path.join(store.root, 'runs');
}

export function createRunRecord(store: ArtifactStore, id: string, request: RunRequest, plan: Plan): RunRecord {
  const now = new Date().toISOString();
  const record: RunRecord = {
    id,
    request,
    planHash: plan.planHash,
    status: 'running',
    createdAt: now,
    updatedAt: now,
    pid: process.pid,
    nodes: Object.fromEntries(plan.nodes.map((n) => [n.id, { key: n.key, status: 'queued' as NodeStatus, attempts: 0 }])),
  };
  saveRunRecord(store, record);
  writeFileAtomic(path.join(runsDir(store), 'LATEST'), id + '\n');
  return record;
}

export function saveRunRecord(store: ArtifactStore, record: RunRecord): void {
  record.updatedAt = new Date().toISOString();
  writeFileAtomic(path.join(runsDir(store), `${record.id}.json`), JSON.stringify(record));
}

export function readRunRecord(store: ArtifactStore, id?: string): RunRecord | undefined {
  const runId = id ?? latestRunId(store);
  if (!runId) return undefined;
  return readJsonIfExists<RunRecord>(path.join(runsDir(store), `${runId}.json`));
}

export function latestRunId(store: ArtifactStore): string | undefined {
  try {
    return fs.readFileSync(path.join(runsDir(store), 'LATEST'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** All run records, newest first. */
export function listRunRecords(store: ArtifactStore): RunRecord[] {
  const out: RunRecord[] = [];
  for (const f of fs.readdirSync(runsDir(store))) {
    if (!f.endsWith('.json')) continue;
    const r = readJsonIfExists<RunRecord>(path.join(runsDir(store), f));
    if (r) out.push(r);
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** The most recent key each node id had in earlier runs (to explain why a key changed). */
export function previousKeys(store: ArtifactStore): Map<string, string> {
  const keys = new Map<string, string>();
  for (const r of listRunRecords(store).reverse()) for (const [id, n] of Object.entries(r.nodes)) keys.set(id, n.key);
  return keys;
}
