/**
 * Engine events of a Temporal run, written by the workers into the shared store and read by clients:
 * `<store>/runs/<runId>.events/<host>-<pid>.jsonl`, one file per worker process (no two writers share
 * a file, so it works on shared filesystems). Following a run this way costs Temporal nothing;
 * querying busy workflows for progress slowed them down by an order of magnitude (bench/temporal-overhead.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { EngineEvent } from '../engine-events';

export function eventDir(storeRoot: string, runId: string): string {
  if (!/^[A-Za-z0-9._:-]+$/.test(runId)) throw new Error(`run id "${runId}" cannot name a directory`);
  return path.join(storeRoot, 'runs', `${runId}.events`);
}

/** Appends events of any run to this process's file of that run (each line is one write). */
export class EventWriter {
  private readonly fds = new Map<string, number>();
  private readonly name = `${os.hostname().replace(/[^A-Za-z0-9.-]/g, '_')}-${process.pid}.jsonl`;

  constructor(private readonly storeRoot: string) {}

  write(runId: string, event: EngineEvent): void {
    let fd = this.fds.get(runId);
    if (fd === undefined) {
      const dir = eventDir(this.storeRoot, runId);
      fs.mkdirSync(dir, { recursive: true });
      fd = fs.openSync(path.join(dir, this.name), 'a');
      this.fds.set(runId, fd);
    }
    fs.writeSync(fd, JSON.stringify(event) + '\n');
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

/** Reads new complete lines from every worker's file of one run. */
export class EventReader {
  private readonly offsets = new Map<string, number>();
  private readonly partial = new Map<string, string>();

  constructor(private readonly dir: string) {}

  read(): EngineEvent[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir).filter((n) => n.endsWith('.jsonl')).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: EngineEvent[] = [];
    for (const name of names) {
      const file = path.join(this.dir, name);
      const offset = this.offsets.get(name) ?? 0;
      const size = fs.statSync(file).size;
      if (size <= offset) continue;
      const fd = fs.openSync(file, 'r');
      const buf = Buffer.alloc(size - offset);
      try {
        fs.readSync(fd, buf, 0, buf.length, offset);
      } finally {
        fs.closeSync(fd);
      }
      this.offsets.set(name, size);
      const text = (this.partial.get(name) ?? '') + buf.toString('utf8');
      const lines = text.split('\n');
      this.partial.set(name, lines.pop() ?? '');
      for (const line of lines) if (line.trim()) out.push(JSON.parse(line) as EngineEvent);
    }
    return out.sort((a, b) => a.at - b.at);
  }
}
