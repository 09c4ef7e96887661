/**
 * CLI command table. Each command lives in the module that owns its feature and is loaded lazily,
 * so `pipeline plan` does not pay for loading the native engine. Add one entry per command.
 * A command path may have several words ("model inspect"); the longest match wins.
 */
export interface CliCommandModule {
  /** Receives the arguments after the command words; returns the process exit code. */
  run(argv: string[]): Promise<number>;
}

export interface CliCommand {
  path: string;
  summary: string;
  load(): Promise<CliCommandModule>;
}

export const COMMANDS: CliCommand[] = [
  // Orchestrator (pipelines/)
  { path: 'plan', summary: 'show the nodes a run would execute, cached or not, and why', load: () => import('./cli/plan') },
  { path: 'run', summary: 'run targets (or all) on the local or Temporal engine', load: () => import('./cli/run') },
  { path: 'resume', summary: 'rerun the last run: cached nodes are skipped, failed items retried', load: () => import('./cli/run') },
  { path: 'status', summary: 'state of the last run (or --run <id>)', load: () => import('./cli/status') },
  { path: 'explain', summary: 'key inputs, lineage and rerun reason of one node', load: () => import('./cli/explain') },
  { path: 'gc', summary: 'remove artifacts not reachable from recent runs and stale temp dirs', load: () => import('./cli/gc') },
];
