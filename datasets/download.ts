/**
 * Verified downloads: resumable (HTTP Range on a `.part` file), sha256-checked, atomic (fsync +
 * rename), with progress. A source may be an http(s) URL or a local file path (a directory mirror).
 * A file that fails its checksum is deleted: no artifact is ever left with unverified bytes.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface DownloadRequest {
  /** http(s) URL or local file path. */
  url: string;
  dest: string;
  /** Expected sha256 (hex); 'from-server' trusts the server's X-Linked-Etag (Hugging Face LFS). */
  sha256: string;
  /** Expected size in bytes, when known. */
  size?: number;
  /** Dataset/file name for messages. */
  label?: string;
  onProgress?: (fraction: number, bytes: number, total?: number) => void;
  signal?: AbortSignal;
}

export class ChecksumError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChecksumError';
  }
}

export class MissingSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingSourceError';
  }
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function fsyncAndRename(from: string, to: string): void {
  const fd = fs.openSync(from, 'r+');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(from, to);
}

/** Progress bar on stderr for interactive use (activities pass onProgress instead). */
export function stderrProgress(label: string): (fraction: number, bytes: number, total?: number) => void {
  let last = -1;
  return (fraction, bytes, total) => {
    if (!process.stderr.isTTY) return;
    const pct = Math.floor(fraction * 100);
    if (pct === last) return;
    last = pct;
    const width = 30;
    const filled = Math.round(fraction * width);
    const size = total ? `${(bytes / 1e6).toFixed(1)}/${(total / 1e6).toFixed(1)} MB` : `${(bytes / 1e6).toFixed(1)} MB`;
    process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% ${size}${fraction >= 1 ? '\n' : ''}`);
  };
}

/**
 * Downloads `url` to `dest` unless `dest` already holds the right bytes. Returns the sha256.
 * Interrupted transfers leave `dest.part`; the next call resumes from its end.
 */
export async function downloadFile(req: DownloadRequest): Promise<string> {
  const label = req.label ?? path.basename(req.dest);
  fs.mkdirSync(path.dirname(req.dest), { recursive: true });
  // A server-verified file records its hash beside it, so a later run can re-check it offline.
  const sidecar = `${req.dest}.sha256`;
  if (fs.existsSync(req.dest)) {
    const known = req.sha256 !== 'from-server' ? req.sha256 : fs.existsSync(sidecar) ? fs.readFileSync(sidecar, 'utf8').trim() : null;
    if (known && (await sha256File(req.dest)) === known) return known;
    fs.rmSync(req.dest);
  }
  const part = `${req.dest}.part`;
  let expected = req.sha256;
  if (!/^https?:\/\//.test(req.url)) {
    if (!fs.existsSync(req.url)) throw new MissingSourceError(`${label}: source file ${req.url} does not exist (check PIPELINE_DATA_MIRROR)`);
    fs.copyFileSync(req.url, part);
    req.onProgress?.(1, fs.statSync(part).size, fs.statSync(part).size);
  } else {
    expected = await fetchToPart(req, part, label);
  }
  const actual = await sha256File(part);
  const size = fs.statSync(part).size;
  if ((expected !== 'from-server' && actual !== expected) || (req.size !== undefined && size !== req.size)) {
    fs.rmSync(part, { force: true });
    throw new ChecksumError(
      `${label}: checksum mismatch for ${req.url}: expected sha256 ${expected}${req.size !== undefined ? ` (${req.size} bytes)` : ''}, got ${actual} (${size} bytes); the download was discarded`,
    );
  }
  fsyncAndRename(part, req.dest);
  if (req.sha256 === 'from-server') fs.writeFileSync(sidecar, `${actual}\n`);
  return actual;
}

/** Streams the URL into `part`, resuming from its current length; returns the expected sha256. */
async function fetchToPart(req: DownloadRequest, part: string, label: string): Promise<string> {
  const have = fs.existsSync(part) ? fs.statSync(part).size : 0;
  const headers: Record<string, string> = {};
  if (have > 0) headers.Range = `bytes=${have}-`;
  let res: Response;
  try {
    res = await fetch(req.url, { headers, signal: req.signal });
  } catch (e) {
    throw new Error(`${label}: cannot reach ${req.url} (${(e as Error).message})`);
  }
  if (res.status === 416 && have > 0) {
    // The part file is already complete (or longer than the file): let the checksum decide.
    return serverSha(res, req.sha256);
  }
  if (res.status === 404) throw new MissingSourceError(`${label}: ${req.url} not found (HTTP 404)`);
  if (!res.ok || !res.body) throw new Error(`${label}: ${req.url} answered HTTP ${res.status}`);
  const resumed = res.status === 206;
  const start = resumed ? have : 0;
  const lengthHeader = Number(res.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(lengthHeader) ? start + lengthHeader : req.size;
  const fd = fs.openSync(part, resumed ? 'a' : 'w');
  let bytes = start;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      fs.writeSync(fd, chunk);
      bytes += chunk.length;
      if (total) req.onProgress?.(Math.min(1, bytes / total), bytes, total);
    }
  } catch (e) {
    throw new Error(`${label}: transfer of ${req.url} interrupted after ${bytes} bytes (${(e as Error).message}); run again to resume`);
  } finally {
    fs.closeSync(fd);
  }
  if (total !== undefined && bytes < total) {
    throw new Error(`${label}: transfer of ${req.url} ended early at ${bytes} of ${total} bytes; run again to resume`);
  }
  req.onProgress?.(1, bytes, total);
  return serverSha(res, req.sha256);
}

function serverSha(res: Response, declared: string): string {
  if (declared !== 'from-server') return declared;
  const etag = (res.headers.get('x-linked-etag') ?? '').replace(/"/g, '');
  return /^[0-9a-f]{64}$/.test(etag) ? etag : 'from-server';
}
