/**
 * Test helpers for the Temporal engine: a real `temporal server start-dev` on free ports with a
 * SQLite file and the project's search attributes, worker processes spawned from the TypeScript
 * sources, and a small test DAG.
 */
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createRegistry, type ActivityRegistry } from '../../activities/index';
import { parseDag, planDag } from '../../pipelines/dag-loader';
import type { Plan } from '../../pipelines/plan-types';
import { DevServer } from '../../pipelines/temporal/dev-server';

const ROOT = path.resolve(__dirname, '..', '..');

export interface TestServer {
  server: DevServer;
  dir: string;
  stop(): Promise<void>;
}

/** One dev server per test file: start in beforeAll, stop in afterAll. */
export async function startTestServer(opts: { ui?: boolean } = {}): Promise<TestServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'temporal-test-'));
  const server = await DevServer.start({ dbFile: path.join(dir, 'temporal.sqlite'), headless: !opts.ui, logFile: path.join(dir, 'server.log') });
  return {
    server,
    dir,
    async stop() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface WorkerProcess {
  proc: ChildProcess;
  output(): string;
  /** Resolves once the worker polls its queues. */
  ready: Promise<void>;
  stop(): Promise<void>;
}

/** Starts `pipeline worker <args>` as a separate node process running the TypeScript sources. */
export function spawnWorker(args: string[], env: Record<string, string> = {}): WorkerProcess {
  const script = `require(${JSON.stringify(path.join(ROOT, 'pipelines/temporal/worker-cli.ts'))}).run(process.argv.slice(1)).then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 1; })`;
  const proc = spawn(process.execPath, ['-r', path.join(__dirname, 'temporal-swc-register.js'), '-e', script, '--', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes('pipeline worker ')) resolve();
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    void exited.then(() => reject(new Error(`worker exited early:\n${out}`)));
  });
  ready.catch(() => undefined);
  return {
    proc,
    output: () => out,
    ready,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

export function planFromYaml(yaml: string, opts: { profile?: string; targets?: string[]; registry?: ActivityRegistry } = {}): Plan {
  const { registry, ...rest } = opts;
  return planDag(parseDag(yaml, 'test-dag.yaml'), registry ?? createRegistry(), rest);
}

/** Every file of a committed artifact except the lineage record (which names the run and timings). */
export function artifactFiles(storeRoot: string, key: string): Record<string, string> {
  const dir = path.join(storeRoot, 'artifacts', key);
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name !== '.lineage.json') out[path.relative(dir, p)] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
