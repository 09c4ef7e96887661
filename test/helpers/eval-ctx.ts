/** A real ActivityContext on temp directories, for calling activities directly in tests. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ActivityContext, InputArtifact } from '../../pipelines/activity';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function activityContext(step: string, inputs: Record<string, InputArtifact[]>, outDir = tempDir(`${step}-out-`)): ActivityContext & { logs: string[] } {
  const logs: string[] = [];
  return {
    node: { runId: 'test-run', step, item: '', key: 'k' },
    outDir,
    inputs,
    progress: () => undefined,
    signal: new AbortController().signal,
    devices: { gpus: [], cpus: 2 },
    scratchDir: tempDir(`${step}-scratch-`),
    checkpoint: () => undefined,
    log: (m) => logs.push(m),
    attempt: 1,
    logs,
  };
}

export function inputArtifact(step: string, dir: string, matrix: Record<string, unknown> = {}, item = ''): InputArtifact {
  return { step, item, matrix, key: `${step}-${item}`, dir, summary: null };
}
