/**
 * The workflow code bundle every worker loads. Bundling (webpack) takes seconds, so the result is
 * cached in the OS temp dir under a hash of the workflow sources and the SDK version: several
 * workers on one machine, and restarts, reuse it.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeFileAtomic } from '../fs-atomic';

const ROOT = path.resolve(__dirname, '..', '..');
/** What the workflow bundle is built from: workflows/ plus the pure modules it imports. */
const SOURCES = ['workflows', 'pipelines/temporal/naming', 'pipelines/plan-types', 'pipelines/activity'];

let memo: Promise<{ code: string }> | undefined;

export function workflowsPath(): string {
  return require.resolve(path.join(ROOT, 'workflows'));
}

export function workflowBundle(): Promise<{ code: string }> {
  memo ??= loadOrBuild().catch((err) => {
    memo = undefined;
    throw err;
  });
  return memo;
}

async function loadOrBuild(): Promise<{ code: string }> {
  const file = path.join(os.tmpdir(), `backpack-pipeline-workflows-${sourceHash()}.js`);
  if (fs.existsSync(file)) return { code: fs.readFileSync(file, 'utf8') };
  const { bundleWorkflowCode } = await import('@temporalio/worker');
  const { code } = await bundleWorkflowCode({
    workflowsPath: workflowsPath(),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn: (m: string) => console.warn(m), error: (m: string) => console.error(m) },
  });
  writeFileAtomic(file, code);
  return { code };
}

function sourceHash(): string {
  const h = crypto.createHash('sha256');
  h.update(require('@temporalio/workflow/package.json').version);
  const add = (p: string) => {
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const name of fs.readdirSync(p).sort()) add(path.join(p, name));
    else if (/\.(ts|js)$/.test(p) && !p.endsWith('.d.ts')) {
      h.update(path.relative(ROOT, p));
      h.update(fs.readFileSync(p));
    }
  };
  for (const s of SOURCES) {
    const base = path.join(ROOT, s);
    if (fs.existsSync(base)) add(base);
    for (const ext of ['.ts', '.js']) if (fs.existsSync(base + ext)) add(base + ext);
  }
  return h.digest('hex').slice(0, 16);
}
