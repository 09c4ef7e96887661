/**
 * Verified, resumable checkpoint downloads with first-download pinning (PAPER.md §9.1: no hashes
 * are published). Transfers go through the datasets downloader (HTTP Range resume, atomic rename).
 * When neither the caller nor the registry knows the sha256, the server's checksum is used where it
 * sends one, and the result is pinned in `<cache>/pins/`: every later fetch of that URL must match.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { downloadFile, ChecksumError } from '../../datasets/download';
import { writeTextAtomic } from './atomic';

export interface FetchRequest {
  url: string;
  /** Cache directory for checkpoints (files and pins). */
  cacheDir: string;
  /** Subdirectory of the cache (e.g. the model id). */
  group: string;
  file: string;
  sha256?: string;
  size?: number;
  signal?: AbortSignal;
  onProgress?: (fraction: number, bytes: number, total?: number) => void;
}

export interface FetchResult {
  path: string;
  sha256: string;
  size: number;
  /** How the bytes were verified. */
  verifiedBy: 'declared sha256' | 'pinned sha256' | 'first download (now pinned)';
  pinFile: string;
}

interface Pin {
  url: string;
  sha256: string;
  size: number;
  pinnedAt: string;
}

export function pinPath(cacheDir: string, url: string): string {
  return path.join(cacheDir, 'pins', createHash('sha256').update(url).digest('hex').slice(0, 24) + '.json');
}

export function readPin(cacheDir: string, url: string): Pin | undefined {
  const file = pinPath(cacheDir, url);
  if (!fs.existsSync(file)) return undefined;
  const pin = JSON.parse(fs.readFileSync(file, 'utf8')) as Pin;
  if (pin.url !== url || !/^[0-9a-f]{64}$/.test(pin.sha256)) throw new Error(`${file}: corrupt pin record`);
  return pin;
}

export async function fetchCheckpointFile(req: FetchRequest): Promise<FetchResult> {
  const pin = readPin(req.cacheDir, req.url);
  const pinFile = pinPath(req.cacheDir, req.url);
  if (req.sha256 && pin && pin.sha256 !== req.sha256) {
    throw new ChecksumError(`${req.url}: declared sha256 ${req.sha256} differs from the one pinned at first download (${pin.sha256}, ${pinFile})`);
  }
  const sha256 = req.sha256 ?? pin?.sha256;
  const size = req.size ?? pin?.size;
  const dest = path.join(req.cacheDir, req.group, req.file);
  const actual = await downloadFile({
    url: req.url,
    dest,
    sha256: sha256 ?? 'from-server',
    size,
    label: `${req.group}/${req.file}`,
    signal: req.signal,
    onProgress: req.onProgress,
  });
  const bytes = fs.statSync(dest).size;
  if (!sha256) {
    fs.mkdirSync(path.dirname(pinFile), { recursive: true });
    writeTextAtomic(pinFile, JSON.stringify({ url: req.url, sha256: actual, size: bytes, pinnedAt: new Date().toISOString() }, null, 2) + '\n');
  }
  return {
    path: dest,
    sha256: actual,
    size: bytes,
    verifiedBy: req.sha256 ? 'declared sha256' : pin ? 'pinned sha256' : 'first download (now pinned)',
    pinFile,
  };
}

/** Verifies a local file against an optional size and sha256 (streaming). Returns its sha256. */
export async function verifyLocalFile(file: string, expected: { sha256?: string; size?: number }): Promise<{ sha256: string; size: number }> {
  const size = fs.statSync(file).size;
  if (expected.size !== undefined && size !== expected.size) {
    throw new ChecksumError(`${file}: expected ${expected.size} bytes, found ${size}`);
  }
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  const sha256 = hash.digest('hex');
  if (expected.sha256 && sha256 !== expected.sha256) {
    throw new ChecksumError(`${file}: expected sha256 ${expected.sha256}, found ${sha256}`);
  }
  return { sha256, size };
}
