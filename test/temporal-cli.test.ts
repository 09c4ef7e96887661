/** `pipeline server` and `pipeline worker` as a user runs them. */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Connection } from '@temporalio/client';
import { freePort } from '../pipelines/temporal/dev-server';
import { SEARCH_ATTRIBUTE_TYPES } from '../pipelines/temporal/naming';
import { run as serverCommand } from '../pipelines/temporal/server-cli';
import { run as workerCommand } from '../pipelines/temporal/worker-cli';

const ROOT = path.resolve(__dirname, '..');

async function captureStderr(fn: () => Promise<number>): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await fn(), stderr };
  } finally {
    process.stderr.write = write;
  }
}

test('pipeline server without the Temporal CLI says exactly how to install it', async () => {
  const saved = { PATH: process.env.PATH, GOPATH: process.env.GOPATH, TEMPORAL_CLI: process.env.TEMPORAL_CLI, HOME: process.env.HOME };
  process.env.PATH = '/nonexistent';
  process.env.GOPATH = '/nonexistent';
  process.env.HOME = '/nonexistent';
  delete process.env.TEMPORAL_CLI;
  try {
    const { code, stderr } = await captureStderr(() => serverCommand([]));
    expect(code).toBe(1);
    expect(stderr).toContain('go install github.com/temporalio/cli/cmd/temporal@v1.5.1');
    expect(stderr).toContain('scripts/install-temporal.sh');
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test('pipeline worker rejects bad resource flags with usage errors', async () => {
  expect(await captureStderr(() => workerCommand(['--gpus', '0,0']))).toMatchObject({ code: 2, stderr: expect.stringContaining('lists a device twice') });
  expect(await captureStderr(() => workerCommand(['--cpus=1.5']))).toMatchObject({ code: 2, stderr: expect.stringContaining('--cpus must be') });
  expect(await captureStderr(() => workerCommand(['--queues', 'pipeline,gpu-x2', '--gpus', '0']))).toMatchObject({ code: 2, stderr: expect.stringContaining('queue gpu-x2 needs at least 2 GPU id(s)') });
  expect(await captureStderr(() => workerCommand(['--bogus']))).toMatchObject({ code: 2, stderr: expect.stringContaining('--bogus') });
});

test('pipeline server starts a dev server with a SQLite file and the search attributes, and stops on SIGINT', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pipeline-server-'));
  const port = await freePort();
  const uiPort = await freePort();
  const db = path.join(dir, 'temporal.sqlite');
  const script = `require(${JSON.stringify(path.join(ROOT, 'pipelines/temporal/server-cli.ts'))}).run(process.argv.slice(1)).then((c) => process.exit(c))`;
  const proc = spawn(process.execPath, ['-r', path.join(__dirname, 'helpers', 'temporal-swc-register.js'), '-e', script, '--', '--port', String(port), '--ui-port', String(uiPort), '--db-filename', db], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (b) => (out += b));
  proc.stderr.on('data', (b) => (out += b));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  try {
    for (let i = 0; i < 600 && !out.includes('Ctrl-C to stop'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain(`address  127.0.0.1:${port}`);
    expect(out).toContain(`Web UI   http://127.0.0.1:${uiPort}`);
    const conn = await Connection.connect({ address: `127.0.0.1:${port}` });
    const attrs = await conn.operatorService.listSearchAttributes({ namespace: 'default' });
    await conn.close();
    expect(Object.keys(attrs.customAttributes ?? {})).toEqual(expect.arrayContaining(Object.keys(SEARCH_ATTRIBUTE_TYPES)));
    expect((await fetch(`http://127.0.0.1:${uiPort}/`)).status).toBe(200);
    expect(fs.existsSync(db)).toBe(true);
    proc.kill('SIGINT');
    expect(await exited).toBe(0);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 90_000);
