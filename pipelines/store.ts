/**
 * The artifact store (DESIGN.md principle 3): content-addressed, immutable directories.
 *
 * Layout under the root (default ./.pipeline):
 *   artifacts/<key>/          committed artifacts: the activity's files + .lineage.json + .complete
 *   tmp/<key>.<pid>.<rand>/   in-flight outputs; renamed into artifacts/ on success (atomic)
 *   scratch/<key>/            resumable state of an unfinished node (training checkpoints)
 *   locks/<key>.lock          one writer per key across processes and hosts
 *   runs/<run>.json           run records (for resume / status)
 *
 * A directory under artifacts/ only ever appears by rename of a fully written, fsynced temp dir, so
 * "exists" means "complete". Several machines may share the root over a shared filesystem; the API is
 * small so an object-store backend can implement it later.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fsyncPathAsync, fsyncTreeAsync, readJsonIfExists, writeFileAtomic } from './fs-atomic';

export interface Lineage {
  key: string;
  runId: string;
  step: string;
  item: string;
  uses: string;
  version: string;
  params: Record<string, unknown>;
  inputs: { step: string; item: string; key: string }[];
  summary: unknown;
  codeVersion: string;
  host: string;
  pid: number;
  attempt: number;
  startedAt: string;
  endedAt: string;
  durationMs: number;
}

export const LINEAGE_FILE = '.lineage.json';
export const COMPLETE_FILE = '.complete';
/** A lock not refreshed for this long is considered abandoned (its owner died on another host). */
export const LOCK_STALE_MS = 120_000;
const LOCK_REFRESH_MS = 15_000;

export interface StoreOptions {
  /**
   * fsync artifacts before the rename that publishes them (default true; env PIPELINE_FSYNC=0 turns it
   * off). Without it a kill -9 still never exposes a partial artifact, but a power loss might.
   */
  fsync?: boolean;
}

export class ArtifactStore {
  readonly root: string;
  readonly fsync: boolean;

  constructor(root: string, options: StoreOptions = {}) {
    this.root = path.resolve(root);
    this.fsync = options.fsync ?? process.env.PIPELINE_FSYNC !== '0';
    for (const d of ['artifacts', 'tmp', 'scratch', 'locks', 'runs']) fs.mkdirSync(path.join(this.root, d), { recursive: true });
  }

  artifactDir(key: string): string {
    return path.join(this.root, 'artifacts', key);
  }

  scratchDir(key: string): string {
    return path.join(this.root, 'scratch', key);
  }

  has(key: string): boolean {
    return fs.existsSync(path.join(this.artifactDir(key), COMPLETE_FILE));
  }

  /** All committed keys: one readdir, for fast cache checks of large sweeps. */
  committedKeys(): Set<string> {
    return new Set(fs.readdirSync(path.join(this.root, 'artifacts')));
  }

  lineage(key: string): Lineage | undefined {
    return readJsonIfExists<Lineage>(path.join(this.artifactDir(key), LINEAGE_FILE));
  }

  /** A fresh, empty temp directory for writing the outputs of `key`. */
  createTemp(key: string): string {
    const dir = path.join(this.root, 'tmp', `${key}.${process.pid}.${Math.random().toString(36).slice(2, 10)}`);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /**
   * Seals a temp dir as artifact `key`: writes lineage and the completion marker, fsyncs everything,
   * renames into place. An existing artifact of the same key (uncached rerun) is replaced atomically
   * enough: moved aside first, then removed.
   */
  async commit(key: string, tempDir: string, lineage: Lineage): Promise<void> {
    fs.writeFileSync(path.join(tempDir, LINEAGE_FILE), JSON.stringify(lineage, null, 2));
    fs.writeFileSync(path.join(tempDir, COMPLETE_FILE), `${key}\n`);
    if (this.fsync) await fsyncTreeAsync(tempDir);
    const final = this.artifactDir(key);
    if (fs.existsSync(final)) {
      const aside = path.join(this.root, 'tmp', `${key}.old.${process.pid}.${Date.now()}`);
      fs.renameSync(final, aside);
      fs.renameSync(tempDir, final);
      fs.rmSync(aside, { recursive: true, force: true });
    } else {
      fs.renameSync(tempDir, final);
    }
    if (this.fsync) await fsyncPathAsync(path.join(this.root, 'artifacts'));
  }

  discardTemp(tempDir: string): void {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }

  /**
   * Takes the write lock of `key`. Returns a release function, or undefined when a live owner holds
   * it (the caller waits and re-checks the cache). Stale locks (dead pid on this host, or not
   * refreshed for LOCK_STALE_MS) are broken.
   */
  tryLock(key: string, owner: string): (() => void) | undefined {
    const file = path.join(this.root, 'locks', `${key}.lock`);
    const body = JSON.stringify({ owner, pid: process.pid, host: os.hostname(), at: new Date().toISOString() });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = fs.openSync(file, 'wx');
        fs.writeSync(fd, body);
        fs.closeSync(fd);
        const refresh = setInterval(() => {
          const now = new Date();
          try {
            fs.utimesSync(file, now, now);
          } catch {
            /* released concurrently */
          }
        }, LOCK_REFRESH_MS);
        refresh.unref();
        let released = false;
        return () => {
          if (released) return;
          released = true;
          clearInterval(refresh);
          fs.rmSync(file, { force: true });
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (!this.lockIsStale(file)) return undefined;
        fs.rmSync(file, { force: true });
      }
    }
    return undefined;
  }

  private lockIsStale(file: string): boolean {
    let info: { pid: number; host: string } | undefined;
    let mtime: number;
    try {
      info = JSON.parse(fs.readFileSync(file, 'utf8'));
      mtime = fs.statSync(file).mtimeMs;
    } catch {
      return true; // half-written by a writer that died between open and write
    }
    if (info && info.host === os.hostname()) {
      try {
        process.kill(info.pid, 0);
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === 'ESRCH';
      }
    }
    return Date.now() - mtime > LOCK_STALE_MS;
  }

  /** Resume state of an unfinished node (local engine; Temporal keeps it in heartbeat details). */
  readResumeState(key: string): unknown {
    return readJsonIfExists(path.join(this.scratchDir(key), '.resume.json'));
  }

  writeResumeState(key: string, state: unknown): void {
    fs.mkdirSync(this.scratchDir(key), { recursive: true });
    writeFileAtomic(path.join(this.scratchDir(key), '.resume.json'), JSON.stringify(state));
  }

  clearScratch(key: string): void {
    const dir = this.scratchDir(key);
    if (fs.existsSync(dir)) fs.rmSync(dir, { recursive: true, force: true });
  }

  /** Removes temp dirs whose writer is gone (older than maxAgeMs, or of a dead pid on this host). */
  cleanStaleTemps(maxAgeMs = 24 * 3600_000): string[] {
    const removed: string[] = [];
    const tmpRoot = path.join(this.root, 'tmp');
    for (const name of fs.readdirSync(tmpRoot)) {
      const full = path.join(tmpRoot, name);
      const pid = Number(name.split('.')[1]);
      let dead = false;
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 0);
        } catch (err) {
          dead = (err as NodeJS.ErrnoException).code === 'ESRCH';
        }
      }
      let old = false;
      try {
        old = Date.now() - fs.statSync(full).mtimeMs > maxAgeMs;
      } catch {
        continue;
      }
      if (dead || old) {
        fs.rmSync(full, { recursive: true, force: true });
        removed.push(name);
      }
    }
    return removed;
  }

  /** Deletes committed artifacts not in `keep`; returns the removed keys. */
  removeArtifactsExcept(keep: Set<string>): string[] {
    const removed: string[] = [];
    for (const key of this.committedKeys()) {
      if (keep.has(key)) continue;
      const aside = path.join(this.root, 'tmp', `${key}.gc.${process.pid}`);
      fs.renameSync(this.artifactDir(key), aside);
      fs.rmSync(aside, { recursive: true, force: true });
      removed.push(key);
    }
    return removed;
  }
}
