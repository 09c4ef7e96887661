/**
 * Atomic file writes: stream into a temporary sibling, fsync it, rename over the target, fsync the
 * directory. A crash leaves either the old file or the new one, never a torn one.
 */
import * as fs from 'fs';
import * as path from 'path';
import { randomBytes } from 'crypto';

/** Calls `write(fd)` on a temp file, then commits it to `target`. Removes the temp file on error. */
export function writeFileAtomic(target: string, write: (fd: number) => void): void {
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    write(fd);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

/** Writes all of `bytes` (fs.writeSync may write less than asked). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += fs.writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, 1 << 30));
  }
}

export function writeTextAtomic(target: string, text: string): void {
  writeFileAtomic(target, (fd) => writeAll(fd, Buffer.from(text, 'utf8')));
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
