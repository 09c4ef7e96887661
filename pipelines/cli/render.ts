/**
 * Renders engine events: live bars on a TTY, plain lines otherwise, NDJSON with --json.
 */
import type { EngineEvent, EngineSummary } from '../engine-events';

export interface Renderer {
  event(e: EngineEvent): void;
  finish(summary: EngineSummary, wallMs: number): void;
}

export function createRenderer(mode: 'tty' | 'plain' | 'json', total: number, out: NodeJS.WriteStream = process.stdout): Renderer {
  if (mode === 'json') return new JsonRenderer(out);
  if (mode === 'tty') return new TtyRenderer(total, out);
  return new PlainRenderer(total, out);
}

function describe(e: EngineEvent): string {
  return e.nodeId;
}

function metricsText(e: EngineEvent): string {
  const m = e.progress?.metrics ?? {};
  const parts = Object.entries(m).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toPrecision(4)}`);
  if (e.progress?.message) parts.unshift(e.progress.message);
  return parts.join(' ');
}

class JsonRenderer implements Renderer {
  constructor(private readonly out: NodeJS.WriteStream) {}
  event(e: EngineEvent) {
    this.out.write(JSON.stringify({ event: e.type, ...e }) + '\n');
  }
  finish(summary: EngineSummary, wallMs: number) {
    this.out.write(JSON.stringify({ event: 'summary', ...summary, wallMs }) + '\n');
  }
}

class Counts {
  done = 0;
  cached = 0;
  failed = 0;
  skipped = 0;
  constructor(readonly total: number) {}
  apply(e: EngineEvent) {
    if (e.type === 'succeeded') this.done++;
    else if (e.type === 'cached') this.cached++;
    else if (e.type === 'failed') this.failed++;
    else if (e.type === 'skipped') this.skipped++;
  }
  text() {
    const finished = this.done + this.cached + this.failed + this.skipped;
    return `[${finished}/${this.total}] ${this.done} ran, ${this.cached} cached, ${this.failed} failed, ${this.skipped} skipped`;
  }
}

class PlainRenderer implements Renderer {
  private readonly counts: Counts;
  private readonly lastProgress = new Map<string, number>();
  private cachedAnnounced = 0;
  constructor(total: number, private readonly out: NodeJS.WriteStream) {
    this.counts = new Counts(total);
  }
  event(e: EngineEvent) {
    this.counts.apply(e);
    const w = (s: string) => this.out.write(`${new Date(e.at).toISOString().slice(11, 19)} ${s}\n`);
    switch (e.type) {
      case 'started':
        w(`start   ${describe(e)}${e.attempt && e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}${e.gpus?.length ? ` gpus=${e.gpus.join(',')}` : ''}`);
        break;
      case 'progress': {
        const last = this.lastProgress.get(e.nodeId) ?? 0;
        if (e.at - last < 10_000) return;
        this.lastProgress.set(e.nodeId, e.at);
        const pct = e.progress?.fraction !== undefined ? ` ${(e.progress.fraction * 100).toFixed(0)}%` : '';
        w(`  ...   ${describe(e)}${pct} ${metricsText(e)}`);
        break;
      }
      case 'succeeded':
        w(`done    ${describe(e)} (${((e.durationMs ?? 0) / 1000).toFixed(1)} s)  ${this.counts.text()}`);
        break;
      case 'cached':
        this.cachedAnnounced++;
        if (this.cachedAnnounced <= 20) w(`cached  ${describe(e)}`);
        else if (this.cachedAnnounced === 21) w('cached  ... (more cached nodes not listed)');
        break;
      case 'retried':
        w(`retry   ${describe(e)} after attempt ${e.attempt}: ${e.error}`);
        break;
      case 'failed':
        w(`FAILED  ${describe(e)}: ${e.error}`);
        break;
      case 'skipped':
        break;
      default:
        break;
    }
  }
  finish(summary: EngineSummary, wallMs: number) {
    finishText(this.out, summary, wallMs);
  }
}

class TtyRenderer implements Renderer {
  private readonly counts: Counts;
  private readonly active = new Map<string, EngineEvent>();
  private drawn = 0;
  private timer: NodeJS.Timeout;
  constructor(total: number, private readonly out: NodeJS.WriteStream) {
    this.counts = new Counts(total);
    this.timer = setInterval(() => this.draw(), 250);
    this.timer.unref();
  }
  private clear() {
    for (let i = 0; i < this.drawn; i++) this.out.write('\x1b[1A\x1b[2K');
    this.drawn = 0;
  }
  private above(line: string) {
    this.clear();
    this.out.write(line + '\n');
    this.draw();
  }
  private draw() {
    this.clear();
    const cols = this.out.columns ?? 100;
    const lines = [this.counts.text()];
    for (const e of [...this.active.values()].slice(0, 12)) {
      const f = e.progress?.fraction;
      const bar = f === undefined ? '[   ...    ]' : '[' + '#'.repeat(Math.round(f * 10)).padEnd(10, '.') + ']';
      lines.push(`  ${bar} ${describe(e)} ${metricsText(e)}`.slice(0, cols - 1));
    }
    if (this.active.size > 12) lines.push(`  ... ${this.active.size - 12} more running`);
    this.out.write(lines.join('\n') + '\n');
    this.drawn = lines.length;
  }
  event(e: EngineEvent) {
    this.counts.apply(e);
    if (e.type === 'started' || e.type === 'progress') this.active.set(e.nodeId, e);
    else this.active.delete(e.nodeId);
    if (e.type === 'failed') this.above(`FAILED  ${describe(e)}: ${e.error}`);
    else if (e.type === 'retried') this.above(`retry   ${describe(e)} after attempt ${e.attempt}: ${e.error}`);
    else if (e.type === 'succeeded') this.above(`done    ${describe(e)} (${((e.durationMs ?? 0) / 1000).toFixed(1)} s)`);
  }
  finish(summary: EngineSummary, wallMs: number) {
    clearInterval(this.timer);
    this.clear();
    finishText(this.out, summary, wallMs);
  }
}

function finishText(out: NodeJS.WriteStream, s: EngineSummary, wallMs: number) {
  out.write(
    `\n${s.cancelled ? 'cancelled' : s.failed.length ? 'finished with failures' : 'finished'} in ${(wallMs / 1000).toFixed(1)} s: ` +
      `${s.succeeded} ran, ${s.cached} cached, ${s.failed.length} failed, ${s.skipped.length} skipped\n`,
  );
  if (s.failed.length) {
    out.write(`failed items:\n${s.failed.map((id) => `  ${id}`).join('\n')}\nrerun only these (and their downstream) with: pipeline resume\n`);
  }
}
