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
  // Temporal engine (pipelines/temporal/)
  { path: 'worker', summary: 'serve pipeline nodes from this machine on Temporal (--gpus 0,1 --cpus N --queues ...)', load: () => import('./temporal/worker-cli') },
  { path: 'server', summary: 'start a local Temporal dev server (SQLite persistence, search attributes, Web UI)', load: () => import('./temporal/server-cli') },
  // Data (datasets/)
  { path: 'tokenize', summary: 'show token ids and pieces of a text or file (or --decode ids) with gpt2 or a trained tokenizer', load: () => import('../datasets/cli/tokenize') },
  // Evaluations and the report (activities/evaluation, activities/report)
  { path: 'eval owt-val', summary: 'held-out perplexity of a checkpoint over non-overlapping windows of a shard set', load: () => import('../activities/evaluation/cli').then((m) => m.forTask('owt-val')) },
  { path: 'eval lambada', summary: 'LAMBADA (OpenAI) last-word perplexity and accuracy of a checkpoint', load: () => import('../activities/evaluation/cli').then((m) => m.forTask('lambada')) },
  { path: 'eval wikitext', summary: 'WikiText-2 word/byte perplexity of a checkpoint (rolling windows)', load: () => import('../activities/evaluation/cli').then((m) => m.forTask('wikitext')) },
  { path: 'eval blimp', summary: 'BLiMP minimal-pair accuracy of a checkpoint (all 67 paradigms or --subtask)', load: () => import('../activities/evaluation/cli').then((m) => m.forTask('blimp')) },
  { path: 'eval lexsim', summary: 'lexical similarity (Spearman) of sense vectors or embeddings of a checkpoint', load: () => import('../activities/evaluation/cli').then((m) => m.forTask('lexsim')) },
  // Control experiments (activities/control)
  { path: 'eval mauve', summary: 'MAUVE between two text files (featurized by a checkpoint) or two feature matrices (.npy/.parquet)', load: () => import('../activities/control/cli').then((m) => m.forCommand('mauve')) },
  { path: 'eval gender', summary: 'pronoun gender bias of a checkpoint: Backpack sense intervention or GPT-2 nullspace projection (Table 5)', load: () => import('../activities/control/cli').then((m) => m.forCommand('gender')) },
  { path: 'eval topic', summary: 'sense-vector topic control on a Backpack checkpoint: sample at a strength and score the topic', load: () => import('../activities/control/cli').then((m) => m.forCommand('topic')) },
  { path: 'model edit', summary: 'knowledge edit of a Backpack by sense projection (MacBook: Apple to HP) with samples before/after', load: () => import('../activities/control/cli').then((m) => m.forCommand('edit')) },
  { path: 'report', summary: 'print (or --open) the path of the newest report.html', load: () => import('../activities/report/cli') },
  // Checkpoint interop (native/interop)
  { path: 'model inspect', summary: 'format, keys, shapes, dtypes and parameter count of a checkpoint, without loading it', load: () => import('../native/interop/cli').then((m) => m.forCommand('inspect')) },
  { path: 'model import', summary: 'convert a Lightning .ckpt, HF backpack-gpt2 or HF GPT-2 checkpoint to ours', load: () => import('../native/interop/cli').then((m) => m.forCommand('import')) },
  { path: 'model export', summary: 'write one of our checkpoints as a Hugging Face model directory', load: () => import('../native/interop/cli').then((m) => m.forCommand('export')) },
  // Native engine (native/)
  { path: 'model logits', summary: 'next-token logits (padding rows excluded) and mean loss of a checkpoint on --tokens/--text', load: () => import('../native/cli').then((m) => m.forCommand('logits')) },
  { path: 'model senses', summary: 'Backpack sense vectors of --tokens, or top/bottom vocabulary items per sense of --word', load: () => import('../native/cli').then((m) => m.forCommand('senses')) },
  { path: 'model alpha', summary: 'Backpack contextualization weights [sense][query][key] on --tokens/--text', load: () => import('../native/cli').then((m) => m.forCommand('alpha')) },
  { path: 'model generate', summary: 'sample continuations with the KV cache (--greedy or seeded temperature/top-k/top-p)', load: () => import('../native/cli').then((m) => m.forCommand('generate')) },
];
