/**
 * One experiment of PAPER.md §6 on a given checkpoint, without writing a DAG:
 *   pipeline eval mauve   --p <texts> --q <texts> --featurizer <ckpt> | --p-features <f> --q-features <f>
 *   pipeline eval gender  --checkpoint <ckpt> [--sense N|auto]
 *   pipeline eval topic   --checkpoint <ckpt> --topic <name> --strength 0..3 --classifier <dir>
 *   pipeline model edit   --checkpoint <ckpt> [--target MacBook --remove Apple --add HP] [--prompt ...]
 * Each prints a short human summary, or exactly one JSON document with --json.
 * Exit codes: 0 ok, 1 failure, 2 usage error.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import type { CliCommandModule } from '../../pipelines/commands';
import { readParquetRows, writeParquetTable } from '../../datasets/parquet-table';
import { computeMauve, MAUVE_DEFAULTS, type FeatureMatrix, type MauveOptions } from './mauve/mauve';
import { readNpy } from './mauve/npy';
import { equalise, featurizeTexts, parseReferenceList } from './mauve/texts';
import { checkpointFromPath, datasetFile } from './inputs';
import { tokenizerSpecFor } from '../evaluation/sources';
import { runGender } from './gender/run';
import { runEdit } from './edit/run';
import { nllScorerFor, runTopic } from './topic/run';
import { TOPICS, readBag, topicByName } from './topic/topics';
import { openClassifier, type ClassifierProvider } from './classifier/classifier';

class UsageError extends Error {}

type Options = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string; default?: string | boolean }>;

function parse(name: string, usage: string, argv: string[], options: Options) {
  try {
    const { values } = parseArgs({ args: argv, options: { ...options, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } }, strict: true, allowPositionals: false });
    return values as Record<string, string | boolean | string[] | undefined>;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${usage}`);
  }
}

function int(name: string, v: unknown, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${String(v)}"`);
  return n;
}

function num(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${String(v)}"`);
  return n;
}

function print(json: boolean, doc: unknown, human: string): void {
  process.stdout.write(json ? JSON.stringify(doc, null, 2) + '\n' : human.endsWith('\n') ? human : human + '\n');
}

async function loadModel(dir: string, threads?: number) {
  const { loadModel: load } = await import('../../native/index');
  return load(dir, { threads });
}

async function loadTok(spec: string) {
  const { loadTokenizer } = await import('../../datasets/tokenizer/index');
  return loadTokenizer(spec);
}

/** Texts from .json (list of strings), .jsonl ({"text": ...} per line) or plain text (one per line). */
export function readTexts(file: string): string[] {
  if (!fs.existsSync(file)) throw new UsageError(`${file}: no such file`);
  const raw = fs.readFileSync(file, 'utf8');
  if (file.endsWith('.json')) return parseReferenceList(raw, file);
  const lines = raw.split('\n').filter((l) => l.trim().length > 0);
  if (file.endsWith('.jsonl')) {
    return lines.map((l, i) => {
      const obj = JSON.parse(l) as { text?: unknown };
      if (typeof obj.text !== 'string') throw new Error(`${file}:${i + 1}: needs a string field "text"`);
      return obj.text;
    });
  }
  return lines;
}

/** Feature matrices from .npy (2-D float) or Parquet (a list column "features", else all numeric columns). */
export async function readFeatures(file: string): Promise<FeatureMatrix> {
  if (!fs.existsSync(file)) throw new UsageError(`${file}: no such file`);
  if (file.endsWith('.npy')) return readNpy(file);
  if (!file.endsWith('.parquet')) throw new UsageError(`${file}: features must be .npy or .parquet`);
  const rows = await readParquetRows(file);
  if (rows.length === 0) throw new Error(`${file}: no rows`);
  const listColumn = Array.isArray(rows[0].features) ? 'features' : undefined;
  const numeric = listColumn ? [] : Object.keys(rows[0]).filter((k) => typeof rows[0][k] === 'number');
  const toVector = (r: Record<string, unknown>, i: number): number[] => {
    const v = listColumn ? (r[listColumn] as unknown[]).map(Number) : numeric.map((k) => Number(r[k]));
    if (v.some((x) => !Number.isFinite(x))) throw new Error(`${file}: row ${i} has a non-numeric feature`);
    return v;
  };
  const first = toVector(rows[0], 0);
  if (first.length === 0) throw new Error(`${file}: no feature columns (a list column "features" or numeric columns)`);
  const data = new Float64Array(rows.length * first.length);
  rows.forEach((r, i) => {
    const v = i === 0 ? first : toVector(r, i);
    if (v.length !== first.length) throw new Error(`${file}: row ${i} has ${v.length} features, row 0 has ${first.length}`);
    data.set(v, i * first.length);
  });
  return { rows: rows.length, dim: first.length, data };
}

// ---------------------------------------------------------------------------------------------

const MAUVE_USAGE = `usage: pipeline eval mauve (--p <texts> --q <texts> --featurizer <ckpt> | --p-features <f> --q-features <f>) [options]
  texts: .json (list of strings), .jsonl ({"text": ...}) or .txt (one per line); features: .npy or .parquet
  --tokenizer gpt2|<dir>    featurizer tokenizer (default: the checkpoint's)
  --max-text-length N       tokens per text fed to the featurizer (default 1024)
  --subsample python-mt|none  equalise |P| and |Q| like the authors (default python-mt)
  --num-buckets auto|N      clusters (default auto = max(2, round(min(|P|,|Q|)/10)))
  --seed N (25)  --kmeans-num-redo N (5)  --kmeans-max-iter N (500)  --explained-var X (0.9)
  --scaling X (5)  --discretization N (25)  --area symmetric|x-sorted
  --save-features <dir>     write p.npy and q.npy   --json   --threads N`;

async function mauveCommand(argv: string[]): Promise<number> {
  const v = parse('mauve', MAUVE_USAGE, argv, {
    p: { type: 'string' }, q: { type: 'string' }, featurizer: { type: 'string' }, tokenizer: { type: 'string' },
    'p-features': { type: 'string' }, 'q-features': { type: 'string' }, 'max-text-length': { type: 'string' },
    subsample: { type: 'string' }, 'num-buckets': { type: 'string' }, seed: { type: 'string' }, 'kmeans-num-redo': { type: 'string' },
    'kmeans-max-iter': { type: 'string' }, 'explained-var': { type: 'string' }, scaling: { type: 'string' }, discretization: { type: 'string' },
    area: { type: 'string' }, 'save-features': { type: 'string' }, threads: { type: 'string' },
  });
  if (v.help) return print(false, null, MAUVE_USAGE), 0;
  const subsample = (v.subsample as string | undefined) ?? 'python-mt';
  if (subsample !== 'python-mt' && subsample !== 'none') throw new UsageError('--subsample must be python-mt or none');
  const area = (v.area as string | undefined) ?? 'symmetric';
  if (area !== 'symmetric' && area !== 'x-sorted') throw new UsageError('--area must be symmetric or x-sorted');
  const buckets = v['num-buckets'] === undefined || v['num-buckets'] === 'auto' ? 'auto' : int('num-buckets', v['num-buckets'], 2)!;
  const options: Partial<MauveOptions> = {
    numBuckets: buckets,
    seed: int('seed', v.seed, 0) ?? MAUVE_DEFAULTS.seed,
    kmeansNumRedo: int('kmeans-num-redo', v['kmeans-num-redo']) ?? MAUVE_DEFAULTS.kmeansNumRedo,
    kmeansMaxIter: int('kmeans-max-iter', v['kmeans-max-iter']) ?? MAUVE_DEFAULTS.kmeansMaxIter,
    kmeansExplainedVar: num('explained-var', v['explained-var']) ?? MAUVE_DEFAULTS.kmeansExplainedVar,
    scalingFactor: num('scaling', v.scaling) ?? MAUVE_DEFAULTS.scalingFactor,
    divergenceCurveDiscretization: int('discretization', v.discretization, 2) ?? MAUVE_DEFAULTS.divergenceCurveDiscretization,
    areaMode: area,
  };
  let pf: FeatureMatrix;
  let qf: FeatureMatrix;
  let source: Record<string, unknown>;
  if (v['p-features'] || v['q-features']) {
    if (!v['p-features'] || !v['q-features']) throw new UsageError('--p-features and --q-features go together');
    if (v.p || v.q || v.featurizer) throw new UsageError('give either texts (--p/--q/--featurizer) or features (--p-features/--q-features), not both');
    pf = await readFeatures(v['p-features'] as string);
    qf = await readFeatures(v['q-features'] as string);
    source = { pFeatures: v['p-features'], qFeatures: v['q-features'] };
  } else {
    if (!v.p || !v.q || !v.featurizer) throw new UsageError(`--p, --q and --featurizer are required (or --p-features/--q-features)\n${MAUVE_USAGE}`);
    const ckpt = checkpointFromPath(v.featurizer as string);
    const eq = equalise(readTexts(v.p as string), readTexts(v.q as string), subsample);
    const model = await loadModel(ckpt.dir, int('threads', v.threads));
    try {
      const tokenizer = await loadTok((v.tokenizer as string | undefined) ?? tokenizerSpecFor(ckpt.dir));
      const maxLen = int('max-text-length', v['max-text-length']) ?? 1024;
      pf = await featurizeTexts(model, tokenizer, eq.p, maxLen);
      qf = await featurizeTexts(model, tokenizer, eq.q, maxLen);
    } finally {
      model.dispose();
    }
    source = { p: v.p, q: v.q, featurizer: ckpt.dir };
    if (v['save-features']) {
      const { writeNpy } = await import('./mauve/npy');
      writeNpy(path.join(v['save-features'] as string, 'p.npy'), pf);
      writeNpy(path.join(v['save-features'] as string, 'q.npy'), qf);
    }
  }
  const r = computeMauve(pf, qf, options);
  const doc = { mauve: r.mauve, numP: r.numP, numQ: r.numQ, numBuckets: r.numBuckets, pcaComponents: r.pcaComponents, kmeansIterations: r.kmeansIterations, curve: r.curve, options: { ...MAUVE_DEFAULTS, ...options }, ...source };
  print(!!v.json, doc, `MAUVE ${r.mauve.toFixed(4)}  (|P| ${r.numP}, |Q| ${r.numQ}, ${r.numBuckets} buckets, ${r.pcaComponents} PCA components)`);
  return 0;
}

// ---------------------------------------------------------------------------------------------

const GENDER_USAGE = `usage: pipeline eval gender --checkpoint <ckpt> [options]
  Backpack: sense intervention (Ones / Zeros / Optimized); GPT-2: nullspace projection (PAPER.md §6.6)
  --sense N|auto        sense to scale (default auto: the one separating he/she most; 10 for Backpack-Small)
  --nm-max-iter N       Nelder–Mead iteration cap (default scipy's 200; the authors intended 25)
  --tokenizer gpt2|<dir>  --out <file.parquet> (per-profession rows)  --json  --threads N`;

async function genderCommand(argv: string[]): Promise<number> {
  const v = parse('gender', GENDER_USAGE, argv, { checkpoint: { type: 'string' }, sense: { type: 'string' }, 'nm-max-iter': { type: 'string' }, tokenizer: { type: 'string' }, out: { type: 'string' }, threads: { type: 'string' } });
  if (v.help) return print(false, null, GENDER_USAGE), 0;
  if (!v.checkpoint) throw new UsageError(`--checkpoint is required\n${GENDER_USAGE}`);
  const sense = v.sense === undefined || v.sense === 'auto' ? 'auto' : int('sense', v.sense, 0)!;
  const ckpt = checkpointFromPath(v.checkpoint as string);
  const model = await loadModel(ckpt.dir, int('threads', v.threads));
  try {
    const tokenizer = await loadTok((v.tokenizer as string | undefined) ?? tokenizerSpecFor(ckpt.dir));
    const maxIt = int('nm-max-iter', v['nm-max-iter']);
    const out = await runGender(model, tokenizer, { sense, nelderMead: maxIt ? { maxIterations: maxIt } : {} });
    if (v.out) {
      await writeParquetTable(
        v.out as string,
        { profession: { type: 'UTF8' }, setting: { type: 'UTF8' }, p: { type: 'DOUBLE' }, bias: { type: 'DOUBLE' } },
        out.results.map((r) => ({ profession: r.profession, setting: r.setting, p: r.p, bias: r.bias })),
      );
    }
    const lines = out.summary.map((s) => `${s.paperRow.padEnd(34)} bias ${s.bias.toFixed(3)}${s.reduction === null ? '' : `  reduction ${(100 * s.reduction).toFixed(1)}%`}`);
    print(!!v.json, { checkpoint: ckpt.dir, ...out }, [`${out.professions.length} single-token professions${out.sense !== undefined ? `, sense ${out.sense} (${out.senseChosen})` : ''}`, ...lines].join('\n'));
    return 0;
  } finally {
    model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------

const TOPIC_USAGE = `usage: pipeline eval topic --checkpoint <backpack ckpt> --topic <name> --strength 0..3 --classifier <dir> [options]
  topics: ${TOPICS.map((t) => t.name).join(', ')}
  --classifier <dir>       hashed-logreg: a classifier trained by control.train_topic_classifier;
                           tweet-topic-21-multi: the Hugging Face model directory (default: $PIPELINE_TOPIC_CLASSIFIER_DIR
                           or ~/.cache/backpack-pipeline/models/cardiffnlp--tweet-topic-21-multi)
  --provider hashed-logreg|tweet-topic-21-multi
  --bag <file>             bag of words (default: the registry's topic_bags file)
  --samples N (20)  --batch N (8)  --length N (99, incl. EOS)  --seed N (0)
  --norm max|absmax  --annealing-scale code|paper  --annealing-mix code|paper
  --sampler recompute|kv-cache  (default recompute: the paper's full forward per step)
  --scorer <gpt2 ckpt>     mean NLL under this model   --show N (print N samples)
  --tokenizer gpt2|<dir>  --json  --threads N`;

async function topicCommand(argv: string[]): Promise<number> {
  const v = parse('topic', TOPIC_USAGE, argv, {
    checkpoint: { type: 'string' }, topic: { type: 'string' }, strength: { type: 'string' }, classifier: { type: 'string' }, provider: { type: 'string' },
    bag: { type: 'string' }, samples: { type: 'string' }, batch: { type: 'string' }, length: { type: 'string' }, seed: { type: 'string' },
    norm: { type: 'string' }, sampler: { type: 'string' }, 'annealing-scale': { type: 'string' }, 'annealing-mix': { type: 'string' }, scorer: { type: 'string' }, show: { type: 'string' },
    tokenizer: { type: 'string' }, threads: { type: 'string' },
  });
  if (v.help) return print(false, null, TOPIC_USAGE), 0;
  if (!v.checkpoint || !v.topic || v.strength === undefined) throw new UsageError(`--checkpoint, --topic and --strength are required\n${TOPIC_USAGE}`);
  let topic;
  try {
    topic = topicByName(v.topic as string);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const strength = int('strength', v.strength, 0)!;
  if (strength > 3) throw new UsageError('--strength must be 0, 1, 2 or 3');
  const provider = ((v.provider as string | undefined) ?? 'hashed-logreg') as ClassifierProvider;
  if (provider !== 'hashed-logreg' && provider !== 'tweet-topic-21-multi') throw new UsageError('--provider must be hashed-logreg or tweet-topic-21-multi');
  if (provider === 'hashed-logreg' && !v.classifier) throw new UsageError('--classifier <dir> is required for provider hashed-logreg');
  const enumOpt = <T extends string>(name: string, value: unknown, allowed: T[], dflt: T): T => {
    if (value === undefined) return dflt;
    if (!allowed.includes(value as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}`);
    return value as T;
  };
  const norm = enumOpt('norm', v.norm, ['max', 'absmax'], 'max');
  const scaleMode = enumOpt('annealing-scale', v['annealing-scale'], ['code', 'paper'], 'code');
  const mixMode = enumOpt('annealing-mix', v['annealing-mix'], ['code', 'paper'], 'code');
  const sampler = enumOpt('sampler', v.sampler, ['recompute', 'kv-cache'], 'recompute');
  const ckpt = checkpointFromPath(v.checkpoint as string);
  const threads = int('threads', v.threads);
  const model = await loadModel(ckpt.dir, threads);
  const scorerCkpt = v.scorer ? checkpointFromPath(v.scorer as string) : undefined;
  const scorer = scorerCkpt ? await loadModel(scorerCkpt.dir, threads) : undefined;
  try {
    const tokenizer = await loadTok((v.tokenizer as string | undefined) ?? tokenizerSpecFor(ckpt.dir));
    const classifier = openClassifier(provider, (v.classifier as string | undefined) ?? '');
    const bag = readBag((v.bag as string | undefined) ?? (await datasetFile({}, 'topic_bags', `${topic.name}.txt`)));
    const nll = scorer ? nllScorerFor(scorer, await loadTok(tokenizerSpecFor(scorerCkpt!.dir))) : undefined;
    const r = await runTopic(model, tokenizer, classifier, nll, {
      topic: topic.name,
      label: topic.label,
      bag,
      strength,
      samples: int('samples', v.samples) ?? 20,
      batchSize: int('batch', v.batch) ?? 8,
      totalLength: int('length', v.length, 2) ?? 99,
      seed: int('seed', v.seed, 0) ?? 0,
      localizeNorm: norm,
      annealing: { scaleMode, mixMode },
      modelKey: ckpt.dir,
      sampler,
    });
    const show = int('show', v.show, 0) ?? 0;
    const human = [
      `${topic.name} strength ${strength}: semantic success ${(100 * r.run.semanticSuccess).toFixed(1)}%  above_30 ${(100 * r.run.above30).toFixed(1)}%  Toks-in-vocab ${(100 * r.run.toksInVocab).toFixed(2)}%` +
        `${r.run.meanNll !== null ? `  mean NLL ${r.run.meanNll.toFixed(3)}` : ''}  distinct words ${r.run.distinctWords}  (${r.run.samples} samples, ${r.run.classifier})`,
      ...r.texts.slice(0, show).map((t, i) => `--- ${i} (P=${r.samples[i].probability.toFixed(3)})\n${t}`),
    ].join('\n');
    print(!!v.json, { checkpoint: ckpt.dir, topic: topic.name, strength, ...r.run, quantiles: r.quantiles ?? null, targetIds: r.targetIds, seconds: r.seconds, samples: r.samples.map((s, i) => ({ ...s, text: r.texts[i] })) }, human);
    return 0;
  } finally {
    model.dispose();
    scorer?.dispose();
  }
}

// ---------------------------------------------------------------------------------------------

const EDIT_USAGE = `usage: pipeline model edit --checkpoint <backpack ckpt> [options]
  Sense-vector projection edit (PAPER.md §6.7): the target's senses lose their component along
  --remove and give --add the logit contribution it had.
  --target W (MacBook)  --remove W (Apple)  --add W (HP)   (each must be a single token with a leading space)
  --prompt TEXT (repeatable; default "The MacBook is best known for")
  --samples N (3)  --length N (99 tokens incl. prompt)  --seed N (0)  --tokenizer gpt2|<dir>  --json  --threads N`;

async function editCommand(argv: string[]): Promise<number> {
  const v = parse('edit', EDIT_USAGE, argv, {
    checkpoint: { type: 'string' }, target: { type: 'string' }, remove: { type: 'string' }, add: { type: 'string' }, prompt: { type: 'string', multiple: true },
    samples: { type: 'string' }, length: { type: 'string' }, seed: { type: 'string' }, tokenizer: { type: 'string' }, threads: { type: 'string' },
  });
  if (v.help) return print(false, null, EDIT_USAGE), 0;
  if (!v.checkpoint) throw new UsageError(`--checkpoint is required\n${EDIT_USAGE}`);
  const ckpt = checkpointFromPath(v.checkpoint as string);
  const model = await loadModel(ckpt.dir, int('threads', v.threads));
  try {
    const tokenizer = await loadTok((v.tokenizer as string | undefined) ?? tokenizerSpecFor(ckpt.dir));
    const target = (v.target as string | undefined) ?? 'MacBook';
    const opts = {
      target,
      remove: (v.remove as string | undefined) ?? 'Apple',
      add: (v.add as string | undefined) ?? 'HP',
      prompts: (v.prompt as string[] | undefined) ?? [`The ${target} is best known for`],
      samplesPerPrompt: int('samples', v.samples) ?? 3,
      totalLength: int('length', v.length, 2) ?? 99,
      seed: int('seed', v.seed, 0) ?? 0,
    };
    const r = await runEdit(model, tokenizer, opts);
    const human = r.probes
      .map((p) => `${p.condition.padEnd(6)} ${JSON.stringify(p.prompt)}  p( ${opts.remove}) ${p.pRemove.toExponential(3)}  p( ${opts.add}) ${p.pAdd.toExponential(3)}`)
      .concat(r.samples.map((s) => `[${s.condition} ${s.sample}] ${s.text}`))
      .join('\n');
    print(!!v.json, { checkpoint: ckpt.dir, ...opts, ...r }, human);
    return 0;
  } finally {
    model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------

const COMMANDS: Record<string, { name: string; run(argv: string[]): Promise<number> }> = {
  mauve: { name: 'eval mauve', run: mauveCommand },
  gender: { name: 'eval gender', run: genderCommand },
  topic: { name: 'eval topic', run: topicCommand },
  edit: { name: 'model edit', run: editCommand },
};

export function forCommand(which: keyof typeof COMMANDS): CliCommandModule {
  const cmd = COMMANDS[which];
  return {
    async run(argv: string[]): Promise<number> {
      try {
        return await cmd.run(argv);
      } catch (err) {
        process.stderr.write(`pipeline ${cmd.name}: ${(err as Error).message}\n`);
        return err instanceof UsageError ? 2 : 1;
      }
    },
  };
}
