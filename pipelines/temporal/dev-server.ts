/**
 * Starts and stops a local Temporal dev server (`temporal server start-dev`): SQLite persistence,
 * the project's search attributes registered, the Web UI on a port. Used by `pipeline server` and
 * by the tests.
 */
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { SEARCH_ATTRIBUTE_TYPES } from './naming';

/** The Temporal CLI release the project is tested with (scripts/install-temporal.sh installs it). */
export const TEMPORAL_CLI_VERSION = '1.5.1';

/** `temporal` from $TEMPORAL_CLI, the PATH, or Go's bin directory; undefined when not installed. */
export function findTemporalCli(): string | undefined {
  const candidates: string[] = [];
  if (process.env.TEMPORAL_CLI) candidates.push(process.env.TEMPORAL_CLI);
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, 'temporal'));
  const gopath = process.env.GOPATH || path.join(os.homedir(), 'go');
  candidates.push(path.join(gopath, 'bin', 'temporal'));
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      if (fs.statSync(c).isFile()) return c;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function installInstructions(): string {
  return [
    'The Temporal CLI (which contains the dev server and Web UI) is not installed.',
    'Install the pinned version with one of:',
    `  scripts/install-temporal.sh                                   # go install, v${TEMPORAL_CLI_VERSION}`,
    `  go install github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}   # then add $(go env GOPATH)/bin to PATH`,
    '  curl -sSf https://temporal.download/cli.sh | sh               # prebuilt binary (latest)',
    'or point TEMPORAL_CLI at an existing `temporal` binary.',
  ].join('\n');
}

export interface DevServerOptions {
  ip?: string;
  /** gRPC port (default: a free one). */
  port?: number;
  /** Web UI port (default: a free one); ignored when headless. */
  uiPort?: number;
  headless?: boolean;
  /** SQLite file: workflows survive restarts. Without it, state is in memory. */
  dbFile?: string;
  /** SQLite pragmas, e.g. `journal_mode=wal`, `synchronous=normal` (fewer fsyncs per history write). */
  sqlitePragmas?: string[];
  /** Server dynamic config, KEY=JSON pairs (`--dynamic-config-value`). */
  dynamicConfig?: string[];
  /** Extra namespaces to create (`default` always exists). */
  namespaces?: string[];
  /** Where the server's own output goes (default: kept in memory, last lines shown on errors). */
  logFile?: string;
  cli?: string;
  /** How long to wait for the server to answer (default 60 s). */
  readyTimeoutMs?: number;
  /** Forward server output to this process's stdout/stderr (the `pipeline server` command). */
  inheritOutput?: boolean;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export class DevServer {
  private proc?: ChildProcess;
  private outputTail = '';
  private logStart = 0; // the log file's size when the current launch began
  private exited?: Promise<number | null>;

  private constructor(
    readonly cli: string,
    readonly ip: string,
    readonly port: number,
    readonly uiPort: number | undefined,
    private readonly args: string[],
    private readonly opts: DevServerOptions,
  ) {}

  get address(): string {
    return `${this.ip}:${this.port}`;
  }

  get uiUrl(): string | undefined {
    return this.uiPort ? `http://${this.ip}:${this.uiPort}` : undefined;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  static async start(opts: DevServerOptions = {}): Promise<DevServer> {
    // Free ports are only free when probed: another process can take one before the server binds it. A start
    // on ports chosen here is retried on fresh ones; ports the caller named are not.
    const attempts = opts.port === undefined && (opts.headless || opts.uiPort === undefined) ? 3 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await DevServer.startOnce(opts);
      } catch (err) {
        if (attempt >= attempts || !/address already in use/.test((err as Error).message)) throw err;
      }
    }
  }

  private static async startOnce(opts: DevServerOptions): Promise<DevServer> {
    const cli = opts.cli ?? findTemporalCli();
    if (!cli) throw new Error(installInstructions());
    const ip = opts.ip ?? '127.0.0.1';
    const port = opts.port ?? (await freePort(ip));
    const uiPort = opts.headless ? undefined : (opts.uiPort ?? (await freePort(ip)));
    const args = ['server', 'start-dev', '--ip', ip, '--port', String(port), '--log-level', 'warn'];
    args.push('--http-port', String(await freePort(ip)), '--metrics-port', String(await freePort(ip)));
    if (uiPort) args.push('--ui-port', String(uiPort));
    else args.push('--headless');
    if (opts.dbFile) {
      fs.mkdirSync(path.dirname(path.resolve(opts.dbFile)), { recursive: true });
      args.push('--db-filename', opts.dbFile);
      for (const p of opts.sqlitePragmas ?? []) args.push('--sqlite-pragma', p);
    }
    for (const ns of opts.namespaces ?? []) args.push('--namespace', ns);
    for (const kv of opts.dynamicConfig ?? []) args.push('--dynamic-config-value', kv);
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTE_TYPES)) args.push('--search-attribute', `${name}=${type}`);
    const server = new DevServer(cli, ip, port, uiPort, args, opts);
    await server.launch();
    return server;
  }

  private async launch(): Promise<void> {
    const out = this.opts.logFile ? fs.openSync(this.opts.logFile, 'a') : undefined;
    if (out !== undefined) this.logStart = fs.fstatSync(out).size;
    const stdio = this.opts.inheritOutput ? 'inherit' : out !== undefined ? ['ignore', out, out] : ['ignore', 'pipe', 'pipe'];
    const proc = spawn(this.cli, this.args, { stdio: stdio as never });
    if (out !== undefined) fs.closeSync(out);
    this.proc = proc;
    const keep = (b: Buffer) => (this.outputTail = (this.outputTail + b.toString()).slice(-4000));
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    await this.waitReady();
  }

  /** Polls until the frontend answers and the project's search attributes are registered. */
  private async waitReady(): Promise<void> {
    const { Connection } = await import('@temporalio/client');
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 60_000);
    let lastError = '';
    let exitCode: number | null | undefined;
    void this.exited!.then((c) => (exitCode = c ?? -1));
    while (Date.now() < deadline) {
      if (exitCode !== undefined) throw new Error(`temporal dev server exited with code ${exitCode}:\n${this.recentOutput()}`);
      try {
        const conn = await Connection.connect({ address: this.address, connectTimeout: 1000 });
        try {
          const res = await conn.operatorService.listSearchAttributes({ namespace: 'default' });
          const known = Object.keys(res.customAttributes ?? {});
          if (Object.keys(SEARCH_ATTRIBUTE_TYPES).every((k) => known.includes(k))) return;
          lastError = 'search attributes not registered yet';
        } finally {
          await conn.close();
        }
      } catch (err) {
        lastError = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`temporal dev server at ${this.address} not ready: ${lastError}\n${this.recentOutput()}`);
  }

  /** The current launch's last output: kept in memory, or the end of what it wrote to its log file. */
  private recentOutput(): string {
    if (!this.opts.logFile) return this.outputTail;
    try {
      return fs.readFileSync(this.opts.logFile).subarray(this.logStart).toString('utf8').slice(-4000);
    } catch {
      return `(no output in ${this.opts.logFile})`;
    }
  }

  /** Resolves with the exit code once the server process ends. */
  wait(): Promise<number | null> {
    return this.exited ?? Promise.resolve(null);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stops and starts the server again on the same ports and database (persistence tests). */
  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    await this.launch();
  }
}
