/**
 * Evaluation activities (PAPER.md §6.1, §6.2): each evaluates every checkpoint among its inputs on one
 * task and writes `results.parquet` (long form, see evaluation/results.ts) plus `summary.json`.
 * The same task code backs `pipeline eval <task>` (evaluation/cli.ts).
 *   eval.owt_val   held-out perplexity over non-overlapping windows of the `val` shard set (Table 2 col 1, Table 8)
 *   eval.lambada   LAMBADA (OpenAI) last-word PPL and greedy accuracy
 *   eval.wikitext  WikiText-2 word/byte perplexity, bits per byte, rolling windows
 *   eval.blimp     BLiMP minimal pairs, per paradigm and mean over paradigms
 *   eval.lexsim    lexical similarity on SimLex-999, SimVerb-3500, RG-65, WordSim-353 (Table 4)
 */
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { defineActivity, NonRetryableError, throwIfAborted, type ActivityContext, type AnyActivity } from '../pipelines/activity';
import { allInputs, checkpointInputs, readShardStream, shardInput, tokenizerInput } from './evaluation/artifacts';
import { BLIMP_PARADIGMS } from './evaluation/blimp';
import { LEXSIM_DATASETS, type LexsimDatasetId } from './evaluation/lexsim/datasets';
import { modelLabelFrom, placeRows, type ModelGroup } from './evaluation/placement';
import { RESULTS_FILE, writeResults, type ResultRow } from './evaluation/results';
import { loadEvalModel, loadEvalTokenizer, tokenizerSpecFor } from './evaluation/sources';
import { runEvalTask, type EvalRequest, type EvalTaskId } from './evaluation/tasks';

const common = {
  /** Profile name written into every result row (the report labels our numbers with it). */
  profile: z.string().default(''),
  /** main → Table 2, ablation → Table 8, external (imported checkpoints) → Table 4 only. */
  group: z.enum(['main', 'ablation', 'external']).default('main'),
  /** Label for the model in tables; default from the upstream matrix (arch, size, senses). */
  model: z.string().optional(),
  /** 'gpt2' or a tokenizer directory; default: the checkpoint's own tokenizer.json, a tokenizer artifact among the inputs, else gpt2 for 50,257-id models. */
  tokenizer: z.string().optional(),
  /** Evaluate only the first N items (smoke runs). */
  limit: z.number().int().positive().optional(),
  threads: z.number().int().positive().optional(),
  /** Engine device: 'cpu', 'cuda[:N]', or 'auto' (the node's first assigned GPU when it has one, else the CPU). */
  device: z.string().default('auto'),
};

const commonSchema = z.object(common);
type CommonParams = z.infer<typeof commonSchema>;

interface TaskSpec<S extends z.ZodRawShape> {
  task: EvalTaskId;
  description: string;
  extra: S;
  request(params: z.infer<z.ZodObject<S & typeof common>>, ctx: ActivityContext): Promise<Partial<EvalRequest>>;
}

function evalActivity<S extends z.ZodRawShape>(spec: TaskSpec<S>): AnyActivity {
  const params = z.object({ ...common, ...spec.extra }).strict();
  return defineActivity({
    name: `eval.${spec.task.replace('-', '_')}`,
    version: '1',
    description: spec.description,
    params,
    resources: { cpus: 2, memoryMb: 4096 },
    async run(params, ctx) {
      const p = params as unknown as CommonParams;
      const checkpoints = checkpointInputs(ctx.inputs);
      if (checkpoints.length === 0) throw new NonRetryableError(`${ctx.node.step}: no checkpoint (config.json + model.safetensors) among the inputs`);
      const extra = await spec.request(params as never, ctx);
      const rows: ResultRow[] = [];
      const models: Record<string, unknown>[] = [];
      for (const ckpt of checkpoints) {
        throwIfAborted(ctx.signal);
        const device = p.device === 'auto' ? (ctx.devices.gpus.length > 0 ? `cuda:${ctx.devices.gpus[0]}` : 'cpu') : p.device;
        const model = await loadEvalModel(ckpt.dir, { threads: p.threads ?? ctx.devices.cpus, device });
        try {
          const tokSpec = tokenizerSpecFor(ckpt.dir, p.tokenizer, tokenizerInput(ctx.inputs));
          const tokenizer = await loadEvalTokenizer(tokSpec);
          const label = p.model ?? modelLabelFrom(ckpt.input.matrix, model.config.arch, ckpt.input.item || ckpt.input.step);
          ctx.log(`${spec.task}: ${label} (${ckpt.dir}), tokenizer ${tokenizer.name}`);
          const outcome = await runEvalTask(model, tokenizer, { task: spec.task, limit: p.limit, dataDirs: allInputs(ctx.inputs).map((i) => i.dir), ...extra }, {
            signal: ctx.signal,
            onProgress: (done, total) => ctx.progress({ fraction: done / total, message: `${label} ${done}/${total}` }),
          });
          const placed = placeRows(outcome.rows, { modelLabel: label, group: p.group as ModelGroup, config: model.config });
          rows.push(...placed.map((r) => ({ ...r, model: label, profile: p.profile })));
          models.push({ model: label, checkpoint: ckpt.dir, seconds: outcome.seconds, tokens_per_second: outcome.tokens / outcome.seconds, ...outcome.json });
        } finally {
          model.dispose?.();
        }
      }
      await writeResults(path.join(ctx.outDir, RESULTS_FILE), rows);
      fs.writeFileSync(path.join(ctx.outDir, 'summary.json'), JSON.stringify({ task: spec.task, profile: p.profile, models }, null, 2) + '\n');
      return { task: spec.task, rows: rows.length, models };
    },
  });
}

export const owtValActivity = evalActivity({
  task: 'owt-val',
  description: 'Held-out perplexity over non-overlapping windows of the validation token stream (all padded vocabulary rows).',
  extra: {
    /** Which shard set of the data artifact to read. */
    split: z.string().default('val'),
    windowLength: z.number().int().positive().default(512),
    batch: z.number().int().positive().default(8),
  },
  async request(p, ctx) {
    const dir = shardInput(ctx.inputs, p.split);
    if (!dir) throw new NonRetryableError(`${ctx.node.step}: no token shard set "${p.split}/" (meta.json + shard-*.arrow) among the inputs`);
    return { stream: await readShardStream(dir), windowLength: p.windowLength, batch: p.batch };
  },
});

export const lambadaActivity = evalActivity({
  task: 'lambada',
  description: 'LAMBADA (OpenAI) last-word perplexity and greedy accuracy, harness conventions.',
  extra: {},
  async request() {
    return {};
  },
});

export const wikitextActivity = evalActivity({
  task: 'wikitext',
  description: 'WikiText-2 word perplexity, byte perplexity and bits per byte with rolling 512-token windows.',
  extra: { file: z.string().optional() },
  async request(p) {
    return { file: p.file };
  },
});

export const blimpActivity = evalActivity({
  task: 'blimp',
  description: 'BLiMP minimal-pair accuracy per paradigm and the mean over paradigms.',
  extra: { subtasks: z.array(z.enum(BLIMP_PARADIGMS)).optional() },
  async request(p) {
    return { subtasks: p.subtasks };
  },
});

export const lexsimActivity = evalActivity({
  task: 'lexsim',
  description: 'Lexical similarity (Spearman ρ) on SimLex-999, SimVerb-3500, RG-65 and WordSim-353.',
  extra: {
    datasets: z.array(z.enum(Object.keys(LEXSIM_DATASETS) as [LexsimDatasetId, ...LexsimDatasetId[]])).optional(),
    /** Similarity functions: cos, minpair, maxpair, minall, maxall, cossense<ℓ>; default all for the vector kind. */
    methods: z.array(z.string()).optional(),
    /** Default: senses for Backpacks, embedding otherwise. */
    vectors: z.enum(['senses', 'embedding']).optional(),
    subwords: z.enum(['mean', 'first']).default('mean'),
  },
  async request(p) {
    return { datasets: p.datasets, methods: p.methods, vectors: p.vectors, subwords: p.subwords };
  },
});

export const evalActivities: AnyActivity[] = [owtValActivity, lambadaActivity, wikitextActivity, blimpActivity, lexsimActivity];
