/** Shared setup for orchestrator tests: temp stores, test DAG paths, planning shortcuts. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createRegistry } from '../../activities/index';
import { parseDag, planDag } from '../../pipelines/dag-loader';
import type { Overrides } from '../../pipelines/planner';
import { ArtifactStore } from '../../pipelines/store';

export const REPO = path.resolve(__dirname, '..', '..');
export const DAGS = path.join(REPO, 'test', 'fixtures', 'dags');

export function tempDir(prefix = 'bp-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function tempStore(): ArtifactStore {
  return new ArtifactStore(path.join(tempDir(), 'store'));
}

export function planText(text: string, opts: { profile?: string; overrides?: Overrides; targets?: string[] } = {}) {
  return planDag(parseDag(text, 'dag.yaml'), createRegistry(), opts);
}

export function planFile(file: string, opts: { profile?: string; overrides?: Overrides; targets?: string[] } = {}) {
  return planText(fs.readFileSync(file, 'utf8'), opts);
}

/** Every file of every committed artifact (lineage excluded): what "same results" means. */
export function artifactContents(store: ArtifactStore): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const key of [...store.committedKeys()].sort()) {
    const dir = store.artifactDir(key);
    const files: Record<string, string> = {};
    const walk = (d: string, rel: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        if (e.name === '.lineage.json') continue;
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p, path.join(rel, e.name));
        else files[path.join(rel, e.name)] = fs.readFileSync(p, 'utf8');
      }
    };
    walk(dir, '');
    out[key] = files;
  }
  return out;
}
