/** Starting the local Temporal dev server when a port it needs is taken. */
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { DevServer } from '../pipelines/temporal/dev-server';

/** A plain TCP listener on a free port; release() also drops the connections it accepted (the readiness probe's). */
async function occupyPort(): Promise<{ port: number; release(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const blocker = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  return {
    port: (blocker.address() as net.AddressInfo).port,
    async release() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => blocker.close(resolve));
    },
  };
}

test('a dev server whose port is taken fails with the reason from its own log, not an empty message', async () => {
  const { port, release } = await occupyPort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'temporal-port-'));
  const logFile = path.join(dir, 'server.log');
  try {
    // a port the caller names is not swapped for another: the start fails once, with the server's words
    const started = DevServer.start({ port, headless: true, logFile, readyTimeoutMs: 30_000 });
    await expect(started).rejects.toThrow(/exited with code \d+:[\s\S]*address already in use/);
  } finally {
    await release();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test('a second launch reports only its own output from a shared log file', async () => {
  const { port, release } = await occupyPort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'temporal-port-'));
  const logFile = path.join(dir, 'server.log');
  fs.writeFileSync(logFile, 'an earlier run wrote this line\n');
  try {
    const err = await DevServer.start({ port, headless: true, logFile, readyTimeoutMs: 30_000 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/address already in use/);
    expect((err as Error).message).not.toContain('an earlier run wrote this line');
    expect(fs.readFileSync(logFile, 'utf8')).toContain('an earlier run wrote this line');
  } finally {
    await release();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
