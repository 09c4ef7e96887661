/**
 * A real HTTP server on 127.0.0.1 that serves a directory (by default the shared data mirror), with
 * Range support, for tests that download "over the network" through the same code path users take.
 * Knobs simulate bad networks: `cutAfterBytes` drops the connection mid-transfer (once per path).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { SHARED_DATA } from './shared-data';

export { SHARED_DATA };

export interface MirrorServerOptions {
  /** Paths (relative, '/'-separated) whose first response is cut after this many bytes. */
  cutAfterBytes?: Record<string, number>;
  /** Send each file's sha256 as X-Linked-Etag, as the Hugging Face hub does for LFS files. */
  linkedEtag?: boolean;
}

export interface RequestLog { path: string; range: string | null; status: number }

export interface MirrorServer {
  /** Base URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
  url: string;
  requests: RequestLog[];
  close(): Promise<void>;
}

export async function startMirrorServer(root: string = SHARED_DATA, options: MirrorServerOptions = {}): Promise<MirrorServer> {
  const requests: RequestLog[] = [];
  const cutsLeft = new Map(Object.entries(options.cutAfterBytes ?? {}));
  const rootAbs = path.resolve(root);
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent((req.url ?? '/').split('?')[0]).replace(/^\/+/, '');
    const file = path.resolve(rootAbs, rel);
    const range = req.headers.range ?? null;
    const log = (status: number) => requests.push({ path: rel, range, status });
    if (!file.startsWith(rootAbs + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      log(404);
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const size = fs.statSync(file).size;
    let start = 0;
    let end = size - 1;
    let status = 200;
    if (range) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!m || Number(m[1]) >= size) {
        log(416);
        res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
        return;
      }
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      status = 206;
    }
    const headers: Record<string, string | number> = { 'content-length': end - start + 1, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    if (options.linkedEtag) headers['x-linked-etag'] = `"${createHash('sha256').update(fs.readFileSync(file)).digest('hex')}"`;
    log(status);
    res.writeHead(status, headers);
    const cut = cutsLeft.get(rel);
    if (cut !== undefined) {
      cutsLeft.delete(rel);
      const data = fs.readFileSync(file).subarray(start, Math.min(end + 1, start + cut));
      res.write(data, () => setTimeout(() => res.destroy(), 20));
      return;
    }
    fs.createReadStream(file, { start, end }).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
