/**
 * `pipeline eval <task> --checkpoint <dir|file> [--tokenizer gpt2|<dir>] [--limit N] [--json] ...`:
 * every evaluation of the paper on any checkpoint, the way lm-evaluation-harness is used.
 */
import * as path from 'path';
import { parseArgs } from 'util';
import type { CliCommandModule } from '../../pipelines/commands';
import { readShardStream } from './artifacts';
import { placeRows } from './placement';
import { writeResults } from './results';
import { loadEvalModel, loadEvalTokenizer, tokenizerSpecFor } from './sources';
import { EVAL_TASKS, isEvalTask, runEvalTask, type EvalRequest, type EvalTaskId } from './tasks';
import type { LexsimDatasetId } from './lexsim/datasets';

const USAGE = `usage: pipeline eval <${EVAL_TASKS.join('|')}> --checkpoint <dir|file> [options]
  --tokenizer gpt2|<dir>   tokenizer (default: the checkpoint's, or gpt2 for 50257-id models)
  --limit N                only the first N items (passages, pages, pairs per paradigm, windows, word pairs)
  --file <path>            read the task's data from a file instead of the registry
  --json                   print the metrics as one JSON document
  --out <file.parquet>     also write the long-form results table
  --threads N              CPU threads for the engine
  --device cpu|cuda[:N]    engine device (default cpu)
  owt-val:  --shards <dir> (a shard set, e.g. <data artifact>/val)  [--window 512] [--batch 8]
  blimp:    --subtask <uid> (repeatable; default all 67)
  lexsim:   --dataset simlex999|simverb3500|rg65|ws353 (repeatable; default all)
            --method cos|minpair|maxpair|minall|maxall|cossense<l> (repeatable; default all for the vectors)
            --vectors senses|embedding  --subwords mean|first`;

class UsageError extends Error {}

function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer, got "${v}"`);
  return n;
}

export async function runEval(task: EvalTaskId, argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        checkpoint: { type: 'string' },
        tokenizer: { type: 'string' },
        limit: { type: 'string' },
        file: { type: 'string' },
        json: { type: 'boolean', default: false },
        out: { type: 'string' },
        threads: { type: 'string' },
        device: { type: 'string' },
        shards: { type: 'string' },
        window: { type: 'string' },
        batch: { type: 'string' },
        subtask: { type: 'string', multiple: true },
        dataset: { type: 'string', multiple: true },
        method: { type: 'string', multiple: true },
        vectors: { type: 'string' },
        subwords: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`pipeline eval ${task}: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  let req: EvalRequest;
  try {
    if (!values.checkpoint) throw new UsageError('--checkpoint is required');
    if (values.vectors && values.vectors !== 'senses' && values.vectors !== 'embedding') throw new UsageError('--vectors must be senses or embedding');
    if (values.subwords && values.subwords !== 'mean' && values.subwords !== 'first') throw new UsageError('--subwords must be mean or first');
    if (task === 'owt-val' && !values.shards) throw new UsageError('owt-val needs --shards <dir>');
    req = {
      task,
      limit: positiveInt('limit', values.limit),
      file: values.file,
      windowLength: positiveInt('window', values.window),
      batch: positiveInt('batch', values.batch),
      subtasks: values.subtask,
      datasets: values.dataset as LexsimDatasetId[] | undefined,
      methods: values.method,
      vectors: values.vectors as EvalRequest['vectors'],
      subwords: values.subwords as EvalRequest['subwords'],
    };
  } catch (err) {
    process.stderr.write(`pipeline eval ${task}: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  try {
    const model = await loadEvalModel(values.checkpoint!, { threads: positiveInt('threads', values.threads), device: values.device });
    try {
      const tokenizer = await loadEvalTokenizer(tokenizerSpecFor(values.checkpoint!, values.tokenizer));
      if (values.shards) req.stream = await readShardStream(path.resolve(values.shards));
      const showProgress = !values.json && process.stderr.isTTY;
      const outcome = await runEvalTask(model, tokenizer, req, {
        onProgress: showProgress ? (d, t) => process.stderr.write(`\r${task}: ${d}/${t}`) : undefined,
      });
      if (showProgress) process.stderr.write('\n');
      if (values.out) {
        const label = path.basename(path.resolve(values.checkpoint!));
        const rows = placeRows(outcome.rows, { modelLabel: label, group: 'external', config: model.config });
        await writeResults(path.resolve(values.out), rows.map((r) => ({ ...r, model: label, profile: 'cli' })));
      }
      if (values.json) {
        process.stdout.write(JSON.stringify(outcome.json) + '\n');
      } else {
        for (const r of outcome.rows) {
          const name = [r.task, r.subtask, r.variant, r.metric].filter(Boolean).join(' ');
          process.stdout.write(`${name.padEnd(48)} ${Number.isInteger(r.value) ? r.value : r.value.toFixed(4)}  (n=${r.n})\n`);
        }
        const rate = outcome.tokens > 0 ? `, ${(outcome.tokens / outcome.seconds).toFixed(0)} tokens/s` : '';
        process.stdout.write(`${outcome.seconds.toFixed(1)} s${rate}\n`);
      }
      return 0;
    } finally {
      model.dispose?.();
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`pipeline eval ${task}: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`pipeline eval ${task}: ${(err as Error).message}\n`);
    return 1;
  }
}

/** The command-table module for one task (`pipeline eval lambada ...`). */
export function forTask(task: string): CliCommandModule {
  if (!isEvalTask(task)) throw new Error(`unknown eval task ${task}`);
  return { run: (argv) => runEval(task, argv) };
}
