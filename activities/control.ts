/**
 * Control experiments of the paper (PAPER.md §6.3–§6.8) as activities. Each writes Parquet tables
 * (long form; `results.parquet` rows carry table/row/column so the report places them in Table 12,
 * Figure 2, Table 5, Table 6) and a JSON summary.
 *   control.train_topic_classifier  the TweetTopic classifier the tiny profile scores with
 *   control.topic                   one (topic, strength): localize, anneal, sample, score
 *   control.pplm                    one (topic, step size) of the PPLM-BoW baseline on the Transformer
 *   control.mauve                   one setting's generations vs references (MAUVE)
 *   control.table12                 Table 12 / Figure 2 aggregation over topics and settings
 *   control.gender                  Table 5 (sense intervention / nullspace baseline)
 *   control.edit                    knowledge editing samples and probabilities (Table 6)
 *   control.senses                  top/bottom vocabulary per sense (Tables 1, 3, 13)
 */
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { defineActivity, NonRetryableError, throwIfAborted, type ActivityContext, type AnyActivity, type InputArtifact } from '../pipelines/activity';
import { writeParquetTable } from '../datasets/parquet-table';
import { RESULTS_FILE, resultRow, writeResults, type ResultRow } from './evaluation/results';
import { TWEET_TOPIC_LABELS, TOPICS, bagTargetIds, readBag, topicByName } from './control/topic/topics';
import { openClassifier } from './control/classifier/classifier';
import { evaluateClassifier, readTweetTopic, saveHashedClassifier, trainHashedClassifier } from './control/classifier/train';
import { FEATURE_DEFAULTS } from './control/classifier/features';
import { nllScorerFor, runTopic } from './control/topic/run';
import { checkpointsAmong, classifierAmong, datasetFile, optionalCheckpoint, pickCheckpoint, tokenizerFor, type FoundCheckpoint } from './control/inputs';
import { computeMauve, MAUVE_DEFAULTS } from './control/mauve/mauve';
import { equalise, featurizeTexts, parseReferenceList, referencesFromStream } from './control/mauve/texts';
import { runGender } from './control/gender/run';
import { runEdit, runSenseListings } from './control/edit/run';
import { shardInput, readShardStream } from './evaluation/artifacts';
import type { RunScore, SampleScore } from './control/classifier/score';
import { loadGpt2Weights } from './control/pplm/gpt2';
import { PPLM_DEFAULTS } from './control/pplm/pplm';
import { nativeUnperturbed, runPplm, type PplmEngine } from './control/pplm/run';

export const TEXTS_FILE = 'texts.json';

async function loadNative(dir: string, threads?: number) {
  const { loadModel } = await import('../native/index');
  return loadModel(dir, { threads });
}

async function loadTok(spec: string) {
  const { loadTokenizer } = await import('../datasets/tokenizer/index');
  return loadTokenizer(spec);
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

/** Table 12 / Figure 2 row label of a setting, matching the paper's rows. */
export function table12Row(method: 'backpack' | 'pplm', setting: number): string {
  if (method === 'backpack') return setting === 0 ? 'Backpack unchanged (strength 0)' : `Backpack +${setting}`;
  if (setting === 0) return 'Transformer unchanged';
  return `PPLM-${setting.toFixed(2).replace(/^0/, '')}`;
}

// ---------------------------------------------------------------------------------------------

export const trainTopicClassifierActivity = defineActivity({
  name: 'control.train_topic_classifier',
  version: '1',
  description: 'Train the hashed n-gram logistic-regression TweetTopic classifier (19 labels) and report held-out F1.',
  params: z
    .object({
      seed: z.number().int().default(0),
      epochs: z.number().int().positive().default(20),
      learningRate: z.number().positive().default(0.5),
      l2: z.number().nonnegative().default(1e-6),
      buckets: z.number().int().positive().default(FEATURE_DEFAULTS.buckets),
      positiveWeightPower: z.number().nonnegative().default(0.5),
      /** The last N of the 1,000 English tweets (train, validation, test order) are held out. */
      heldOut: z.number().int().nonnegative().default(200),
    })
    .strict(),
  resources: { cpus: 1, memoryMb: 1024 },
  async run(p, ctx) {
    const rows = [];
    for (const split of ['train', 'validation', 'test']) rows.push(...readTweetTopic(await datasetFile(ctx.inputs, 'tweet_topic', `en_${split}.jsonl`, ctx.signal)));
    if (p.heldOut >= rows.length) throw new NonRetryableError(`heldOut ${p.heldOut} leaves no training data (${rows.length} tweets)`);
    const train = rows.slice(0, rows.length - p.heldOut);
    const test = rows.slice(rows.length - p.heldOut);
    const started = Date.now();
    const classifier = trainHashedClassifier(train, {
      features: { ...FEATURE_DEFAULTS, buckets: p.buckets },
      epochs: p.epochs,
      learningRate: p.learningRate,
      l2: p.l2,
      seed: p.seed,
      positiveWeightPower: p.positiveWeightPower,
    });
    const metrics = test.length ? await evaluateClassifier(classifier, test) : null;
    saveHashedClassifier(ctx.outDir, classifier);
    const summary = { classifier: classifier.id, trainExamples: train.length, heldOut: metrics, seconds: (Date.now() - started) / 1000 };
    writeJson(path.join(ctx.outDir, 'metrics.json'), summary);
    return summary;
  },
});

// ---------------------------------------------------------------------------------------------

const topicParams = z
  .object({
    topic: z.enum(TOPICS.map((t) => t.name) as [string, ...string[]]),
    strength: z.number().int().min(0).max(3),
    samples: z.number().int().positive().default(500),
    batchSize: z.number().int().positive().default(8),
    /** Returned length including the EOS prompt (99 = the paper's max_length 100). */
    totalLength: z.number().int().min(2).default(99),
    seed: z.number().int().default(0),
    localizeNorm: z.enum(['max', 'absmax']).default('max'),
    annealingScaleMode: z.enum(['code', 'paper']).default('code'),
    annealingMixMode: z.enum(['code', 'paper']).default('code'),
    classifier: z.enum(['hashed-logreg', 'tweet-topic-21-multi']).default('hashed-logreg'),
    /** tweet-topic-21-multi: its Hugging Face model directory (default: $PIPELINE_TOPIC_CLASSIFIER_DIR, else the cache). */
    classifierDir: z.string().optional(),
    /** 'recompute' = the paper's sampler (full forward per step); 'kv-cache' = the engine's cached generation (faster, small vocabularies). */
    sampler: z.enum(['recompute', 'kv-cache']).default('recompute'),
    /** Step holding the generating Backpack (default: the only Backpack checkpoint among the inputs). */
    modelStep: z.string().optional(),
    /** Step holding the NLL scoring model (default: the only GPT-2 checkpoint among the inputs; none → no NLL). */
    scorerStep: z.string().optional(),
    tokenizer: z.string().optional(),
    profile: z.string().default(''),
    threads: z.number().int().positive().optional(),
  })
  .strict();

export const topicActivity = defineActivity({
  name: 'control.topic',
  version: '1',
  description: 'Sense-vector topic control for one (topic, strength): localization, quantile weights, annealed sampling, scoring.',
  params: topicParams,
  resources: { cpus: 2, memoryMb: 4096 },
  async run(p, ctx) {
    const found = pickCheckpoint(ctx.inputs, { arch: 'backpack', step: p.modelStep, what: 'control.topic' });
    const model = await loadNative(found.dir, p.threads ?? ctx.devices.cpus);
    const scorerCkpt = optionalCheckpoint(ctx.inputs, { arch: 'gpt2', step: p.scorerStep });
    const scorer = scorerCkpt ? await loadNative(scorerCkpt.dir, p.threads ?? ctx.devices.cpus) : undefined;
    try {
      const tokenizer = await loadTok(tokenizerFor(ctx.inputs, found.dir, p.tokenizer));
      const classifierDir = classifierAmong(ctx.inputs);
      if (p.classifier === 'hashed-logreg' && !classifierDir) throw new NonRetryableError('control.topic: no classifier artifact (classifier.json) among the inputs');
      const classifier = openClassifier(p.classifier, (p.classifier === 'tweet-topic-21-multi' ? p.classifierDir : classifierDir) ?? '');
      const topic = topicByName(p.topic);
      const bag = readBag(await datasetFile(ctx.inputs, 'topic_bags', `${topic.name}.txt`, ctx.signal));
      // Every topic's targets, so the normaliser pass (cached per model in this process) serves all 17.
      const allTargetIds: number[] = [];
      for (const t of TOPICS) allTargetIds.push(...bagTargetIds(readBag(await datasetFile(ctx.inputs, 'topic_bags', `${t.name}.txt`, ctx.signal)), (x) => tokenizer.encode(x)));
      const result = await runTopic(model, tokenizer, classifier, scorer ? nllScorerFor(scorer, await loadTok(tokenizerFor(ctx.inputs, scorerCkpt!.dir, p.tokenizer))) : undefined, {
        topic: topic.name,
        label: topic.label,
        bag,
        strength: p.strength,
        samples: p.samples,
        batchSize: p.batchSize,
        totalLength: p.totalLength,
        seed: p.seed,
        localizeNorm: p.localizeNorm,
        annealing: { scaleMode: p.annealingScaleMode, mixMode: p.annealingMixMode },
        modelKey: found.dir,
        sampler: p.sampler,
        allTargetIds,
        signal: ctx.signal,
        onProgress: (message, fraction) => ctx.progress({ message: `${topic.name} s${p.strength} ${message}`, fraction }),
      });
      const summary = await writeGenerationRun(
        ctx,
        { method: 'backpack', setting: p.strength, topic: topic.name, model: found.label, profile: p.profile, scorer: scorerCkpt?.label ?? null },
        result.texts,
        result.samples,
        result.run,
        result.padTokens,
        {
          label: topic.label,
          targetIds: result.targetIds,
          quantiles: result.quantiles ?? null,
          padTokens: result.padTokens.reduce((a, b) => a + b, 0),
          seconds: result.seconds,
          sampler: p.sampler,
        },
      );
      return summary;
    } finally {
      model.dispose();
      scorer?.dispose();
    }
  },
});

// ---------------------------------------------------------------------------------------------

/** Writes samples.parquet, texts.json, results.parquet and summary.json of one generation run. */
async function writeGenerationRun(
  ctx: ActivityContext,
  run: { method: 'backpack' | 'pplm'; setting: number; topic: string; model: string; profile: string; scorer: string | null },
  texts: string[],
  samples: SampleScore[],
  score: RunScore,
  padTokens: number[] | undefined,
  extra: Record<string, unknown>,
) {
  await writeParquetTable(
    path.join(ctx.outDir, 'samples.parquet'),
    {
      method: { type: 'UTF8' },
      setting: { type: 'DOUBLE' },
      topic: { type: 'UTF8' },
      index: { type: 'INT32' },
      text: { type: 'UTF8' },
      probability: { type: 'DOUBLE' },
      success: { type: 'BOOLEAN' },
      above_30: { type: 'BOOLEAN' },
      words: { type: 'INT32' },
      bag_words: { type: 'INT32' },
      nll: { type: 'DOUBLE', optional: true },
      pad_tokens: { type: 'INT32', optional: true },
    },
    samples.map((s, i) => ({
      method: run.method,
      setting: run.setting,
      topic: run.topic,
      index: i,
      text: texts[i],
      probability: s.probability,
      success: s.success,
      above_30: s.above30,
      words: s.words,
      bag_words: s.bagWords,
      nll: s.nll === null || Number.isNaN(s.nll) ? undefined : s.nll,
      pad_tokens: padTokens?.[i],
    })),
  );
  writeJson(path.join(ctx.outDir, TEXTS_FILE), texts);
  const metrics: Array<[string, number | null]> = [
    ['semantic_success', score.semanticSuccess],
    ['above_30', score.above30],
    ['toks_in_vocab', score.toksInVocab],
    ['mean_nll', score.meanNll],
    ['repetition', score.repetition],
    ['distinct_words', score.distinctWords],
  ];
  const variant = run.method === 'backpack' ? `backpack strength=${run.setting}` : `pplm stepsize=${run.setting}`;
  const rows: ResultRow[] = metrics
    .filter((m): m is [string, number] => m[1] !== null && !Number.isNaN(m[1]))
    .map(([metric, value]) => resultRow({ model: run.model, profile: run.profile, task: 'topic_control', subtask: run.topic, metric, variant, value, n: score.samples, details: JSON.stringify({ classifier: score.classifier, scorer: run.scorer }) }));
  await writeResults(path.join(ctx.outDir, RESULTS_FILE), rows);
  const summary = { method: run.method, setting: run.setting, topic: run.topic, model: run.model, ...score, scorer: run.scorer, ...extra };
  writeJson(path.join(ctx.outDir, 'summary.json'), summary);
  return summary;
}

// ---------------------------------------------------------------------------------------------

export const pplmActivity = defineActivity({
  name: 'control.pplm',
  version: '2',
  description: 'PPLM-BoW baseline on the Transformer for one (topic, step size), scored like the Backpack runs.',
  params: z
    .object({
      topic: z.enum(TOPICS.map((t) => t.name) as [string, ...string[]]),
      stepsize: z.number().nonnegative(),
      samples: z.number().int().positive().default(500),
      /** New tokens after EOS (100 in the paper). */
      length: z.number().int().positive().default(100),
      iterations: z.number().int().nonnegative().default(PPLM_DEFAULTS.iterations),
      window: z.number().int().nonnegative().default(PPLM_DEFAULTS.window),
      gamma: z.number().default(PPLM_DEFAULTS.gamma),
      klScale: z.number().nonnegative().default(PPLM_DEFAULTS.klScale),
      gmScale: z.number().min(0).max(1).default(PPLM_DEFAULTS.gmScale),
      /** native: float32 C++ steps and KV-cache gradients, `batch` samples in lockstep; typescript: the float64 reference. */
      engine: z.enum(['native', 'typescript']).default('native'),
      batch: z.number().int().positive().default(32),
      seed: z.number().int().default(0),
      classifier: z.enum(['hashed-logreg', 'tweet-topic-21-multi']).default('hashed-logreg'),
      /** tweet-topic-21-multi: its Hugging Face model directory (default: $PIPELINE_TOPIC_CLASSIFIER_DIR, else the cache). */
      classifierDir: z.string().optional(),
      /** Step holding the Transformer (default: the only GPT-2 checkpoint among the inputs). */
      modelStep: z.string().optional(),
      /** NLL scoring model step (default: the generating Transformer itself). */
      scorerStep: z.string().optional(),
      tokenizer: z.string().optional(),
      profile: z.string().default(''),
      threads: z.number().int().positive().optional(),
    })
    .strict(),
  resources: { cpus: 2, memoryMb: 4096 },
  async run(p, ctx) {
    const found = pickCheckpoint(ctx.inputs, { arch: 'gpt2', step: p.modelStep, what: 'control.pplm' });
    const model = await loadNative(found.dir, p.threads ?? ctx.devices.cpus);
    const scorerCkpt = p.scorerStep ? pickCheckpoint(ctx.inputs, { step: p.scorerStep, what: 'control.pplm scorer' }) : found;
    const scorer = scorerCkpt.dir === found.dir ? model : await loadNative(scorerCkpt.dir, p.threads ?? ctx.devices.cpus);
    try {
      const tokenizer = await loadTok(tokenizerFor(ctx.inputs, found.dir, p.tokenizer));
      const classifierDir = classifierAmong(ctx.inputs);
      if (p.classifier === 'hashed-logreg' && !classifierDir) throw new NonRetryableError('control.pplm: no classifier artifact (classifier.json) among the inputs');
      const classifier = openClassifier(p.classifier, (p.classifier === 'tweet-topic-21-multi' ? p.classifierDir : classifierDir) ?? '');
      const topic = topicByName(p.topic);
      const bag = readBag(await datasetFile(ctx.inputs, 'topic_bags', `${topic.name}.txt`, ctx.signal));
      const engine: PplmEngine = p.engine === 'typescript' ? { kind: 'typescript', weights: loadGpt2Weights(found.dir), unperturbed: nativeUnperturbed(model) } : { kind: 'native', model, batch: p.batch };
      const result = await runPplm(engine, tokenizer, classifier, nllScorerFor(scorer, await loadTok(tokenizerFor(ctx.inputs, scorerCkpt.dir, p.tokenizer))), {
        topic: topic.name,
        label: topic.label,
        bagWords: bag,
        samples: p.samples,
        seed: p.seed,
        stepsize: p.stepsize,
        iterations: p.iterations,
        window: p.window,
        gamma: p.gamma,
        klScale: p.klScale,
        gmScale: p.gmScale,
        length: p.length,
        signal: ctx.signal,
        onProgress: (done, total) => ctx.progress({ message: `${topic.name} pplm ${p.stepsize} ${done}/${total}`, fraction: done / total }),
      });
      return await writeGenerationRun(
        ctx,
        { method: 'pplm', setting: p.stepsize, topic: topic.name, model: found.label, profile: p.profile, scorer: scorerCkpt.label },
        result.texts,
        result.samples,
        result.run,
        undefined,
        { label: topic.label, bagIds: result.bagIds, secondsPerSample: result.secondsPerSample, meanFinalLoss: result.meanFinalLoss, engine: p.engine },
      );
    } finally {
      model.dispose();
      if (scorer !== model) scorer.dispose();
    }
  },
});

// ---------------------------------------------------------------------------------------------

interface GenerationRun {
  method: 'backpack' | 'pplm';
  setting: number;
  topic: string;
  texts: string[];
  input: InputArtifact;
}

/** Topic/PPLM runs among the inputs (artifacts with texts.json and a summary naming method/setting/topic). */
export function generationRuns(inputs: Record<string, InputArtifact[]>): GenerationRun[] {
  const runs: GenerationRun[] = [];
  for (const step of Object.keys(inputs).sort()) {
    for (const input of inputs[step]) {
      const file = path.join(input.dir, TEXTS_FILE);
      const s = input.summary as { method?: string; setting?: number; topic?: string } | null;
      if (!fs.existsSync(file) || !s || (s.method !== 'backpack' && s.method !== 'pplm') || typeof s.setting !== 'number' || !s.topic) continue;
      runs.push({ method: s.method, setting: s.setting, topic: s.topic, texts: JSON.parse(fs.readFileSync(file, 'utf8')) as string[], input });
    }
  }
  return runs;
}

const mauveParams = z
  .object({
    method: z.enum(['backpack', 'pplm']),
    /** Strength (backpack) or step size (pplm). */
    setting: z.number(),
    /** 'auto': val-100len.json among the inputs if present, else the val shard set (EOS + first 99 tokens per document). */
    references: z.enum(['auto', 'owt-val-100len', 'val-shards']).default('auto'),
    maxReferences: z.number().int().positive().optional(),
    subsample: z.enum(['python-mt', 'none']).default('python-mt'),
    /** D6: cap on the number of predictions (default: |references|, as the authors' code). */
    maxSamples: z.number().int().positive().optional(),
    featurizerStep: z.string().optional(),
    tokenizer: z.string().optional(),
    maxTextLength: z.number().int().positive().default(1024),
    seed: z.number().int().default(MAUVE_DEFAULTS.seed),
    numBuckets: z.union([z.literal('auto'), z.number().int().min(2)]).default('auto'),
    kmeansExplainedVar: z.number().positive().max(1).default(MAUVE_DEFAULTS.kmeansExplainedVar),
    kmeansNumRedo: z.number().int().positive().default(MAUVE_DEFAULTS.kmeansNumRedo),
    kmeansMaxIter: z.number().int().positive().default(MAUVE_DEFAULTS.kmeansMaxIter),
    divergenceCurveDiscretization: z.number().int().min(2).default(MAUVE_DEFAULTS.divergenceCurveDiscretization),
    scalingFactor: z.number().positive().default(MAUVE_DEFAULTS.scalingFactor),
    areaMode: z.enum(['symmetric', 'x-sorted']).default('symmetric'),
    profile: z.string().default(''),
    threads: z.number().int().positive().optional(),
  })
  .strict();

async function referenceTexts(p: z.infer<typeof mauveParams>, ctx: ActivityContext, tokenizer: { eosId: number; decode(ids: number[]): string }): Promise<{ texts: string[]; source: string }> {
  const hasList = Object.values(ctx.inputs).flat().some((i) => fs.existsSync(path.join(i.dir, 'files', 'val-100len.json')) || fs.existsSync(path.join(i.dir, 'val-100len.json')));
  const useList = p.references === 'owt-val-100len' || (p.references === 'auto' && hasList);
  if (useList) {
    const file = await datasetFile(ctx.inputs, 'owt_val_100len', 'val-100len.json', ctx.signal);
    const texts = parseReferenceList(fs.readFileSync(file, 'utf8'), file);
    return { texts: p.maxReferences ? texts.slice(0, p.maxReferences) : texts, source: 'owt val-100len.json' };
  }
  const dir = shardInput(ctx.inputs, 'val');
  if (!dir) throw new NonRetryableError('control.mauve: no references: neither val-100len.json nor a val/ shard set among the inputs');
  const stream = await readShardStream(dir);
  return { texts: referencesFromStream(stream, tokenizer.eosId, (ids) => tokenizer.decode(ids), { prefixTokens: 100, max: p.maxReferences }), source: `val shards ${dir}` };
}

export const mauveActivity = defineActivity({
  name: 'control.mauve',
  version: '1',
  description: 'MAUVE of one setting (Backpack strength or PPLM step size): generations of all topics vs references.',
  params: mauveParams,
  resources: { cpus: 2, memoryMb: 8192 },
  async run(p, ctx) {
    const runs = generationRuns(ctx.inputs).filter((r) => r.method === p.method && Math.abs(r.setting - p.setting) < 1e-9);
    if (runs.length === 0) throw new NonRetryableError(`control.mauve: no ${p.method} generations with setting ${p.setting} among the inputs`);
    runs.sort((a, b) => a.topic.localeCompare(b.topic));
    const predictions = runs.flatMap((r) => r.texts);
    const featurizer: FoundCheckpoint = pickCheckpoint(ctx.inputs, { arch: p.featurizerStep ? undefined : 'gpt2', step: p.featurizerStep, what: 'control.mauve featurizer' });
    const model = await loadNative(featurizer.dir, p.threads ?? ctx.devices.cpus);
    try {
      const tokenizer = await loadTok(tokenizerFor(ctx.inputs, featurizer.dir, p.tokenizer));
      const refs = await referenceTexts(p, ctx, tokenizer);
      let pTexts = predictions;
      // D6: cap the predictions (Python-compatible shuffle, or the first N without subsampling).
      if (p.maxSamples && pTexts.length > p.maxSamples) {
        pTexts = p.subsample === 'python-mt' ? equalise(pTexts, pTexts.slice(0, p.maxSamples), 'python-mt').p : pTexts.slice(0, p.maxSamples);
      }
      const eq = equalise(pTexts, refs.texts, p.subsample);
      ctx.log(`mauve ${p.method} ${p.setting}: ${eq.p.length} predictions vs ${eq.q.length} references (${refs.source}), featurizer ${featurizer.label}`);
      const started = Date.now();
      const pf = await featurizeTexts(model, tokenizer, eq.p, p.maxTextLength, { signal: ctx.signal, onProgress: (f) => ctx.progress({ message: 'featurize P', fraction: f / 2 }) });
      const qf = await featurizeTexts(model, tokenizer, eq.q, p.maxTextLength, { signal: ctx.signal, onProgress: (f) => ctx.progress({ message: 'featurize Q', fraction: 0.5 + f / 2 }) });
      throwIfAborted(ctx.signal);
      const result = computeMauve(pf, qf, {
        numBuckets: p.numBuckets,
        kmeansExplainedVar: p.kmeansExplainedVar,
        kmeansNumRedo: p.kmeansNumRedo,
        kmeansMaxIter: p.kmeansMaxIter,
        divergenceCurveDiscretization: p.divergenceCurveDiscretization,
        scalingFactor: p.scalingFactor,
        seed: p.seed,
        areaMode: p.areaMode,
      });
      const label = table12Row(p.method, p.setting);
      const details = JSON.stringify({ featurizer: featurizer.label, references: refs.source, buckets: result.numBuckets, pca: result.pcaComponents, implementation: 'backpack-pipeline mauve (mauve-text 0.4 defaults)' });
      const rows = [
        resultRow({ model: label, profile: p.profile, task: 'mauve', metric: 'mauve', variant: `${p.method} setting=${p.setting}`, value: result.mauve, n: result.numP, table: 'Table 12', row: label, column: 'MAUVE', details }),
        resultRow({ model: label, profile: p.profile, task: 'mauve', metric: 'mauve', variant: `${p.method} setting=${p.setting}`, value: result.mauve, n: result.numP, table: 'Figure 2', row: label, column: 'MAUVE', details }),
      ];
      await writeResults(path.join(ctx.outDir, RESULTS_FILE), rows);
      await writeParquetTable(
        path.join(ctx.outDir, 'curve.parquet'),
        { point: { type: 'INT32' }, x: { type: 'DOUBLE' }, y: { type: 'DOUBLE' } },
        result.curve.map(([x, y], i) => ({ point: i, x, y })),
      );
      const summary = {
        method: p.method,
        setting: p.setting,
        mauve: result.mauve,
        numP: result.numP,
        numQ: result.numQ,
        buckets: result.numBuckets,
        pcaComponents: result.pcaComponents,
        kmeansIterations: result.kmeansIterations,
        featurizer: featurizer.label,
        references: refs.source,
        topics: runs.length,
        seconds: (Date.now() - started) / 1000,
      };
      writeJson(path.join(ctx.outDir, 'summary.json'), summary);
      return summary;
    } finally {
      model.dispose();
    }
  },
});

// ---------------------------------------------------------------------------------------------

export const table12Activity = defineActivity({
  name: 'control.table12',
  version: '1',
  description: 'Table 12 and Figure 2: semantic success and Toks-in-vocab averaged over topics per setting, with MAUVE.',
  params: z.object({ profile: z.string().default('') }).strict(),
  resources: { cpus: 1, memoryMb: 512 },
  async run(p, ctx) {
    type Acc = { method: 'backpack' | 'pplm'; setting: number; success: number[]; toks: number[]; topics: string[]; nll: number[] };
    const settings = new Map<string, Acc>();
    const mauve = new Map<string, number>();
    const perTopic: Record<string, unknown>[] = [];
    for (const input of Object.values(ctx.inputs).flat()) {
      const s = input.summary as Record<string, unknown> | null;
      if (!s || (s.method !== 'backpack' && s.method !== 'pplm') || typeof s.setting !== 'number') continue;
      const key = `${s.method}|${s.setting}`;
      if (typeof s.mauve === 'number') {
        mauve.set(key, s.mauve);
        continue;
      }
      if (typeof s.semanticSuccess !== 'number' || typeof s.topic !== 'string') continue;
      if (!settings.has(key)) settings.set(key, { method: s.method, setting: s.setting, success: [], toks: [], topics: [], nll: [] });
      const acc = settings.get(key)!;
      acc.success.push(s.semanticSuccess);
      acc.toks.push(Number(s.toksInVocab));
      acc.topics.push(s.topic);
      if (typeof s.meanNll === 'number') acc.nll.push(s.meanNll);
      perTopic.push({ method: s.method, setting: s.setting, topic: s.topic, semantic_success: s.semanticSuccess, toks_in_vocab: Number(s.toksInVocab), mean_nll: typeof s.meanNll === 'number' ? s.meanNll : undefined });
    }
    if (settings.size === 0) throw new NonRetryableError('control.table12: no topic-control or PPLM runs among the inputs');
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const rows: ResultRow[] = [];
    const table: Record<string, unknown>[] = [];
    for (const acc of [...settings.values()].sort((a, b) => a.method.localeCompare(b.method) || a.setting - b.setting)) {
      const label = table12Row(acc.method, acc.setting);
      const key = `${acc.method}|${acc.setting}`;
      const cells: Array<[string, number | undefined]> = [
        ['Sem Acc', mean(acc.success)],
        ['Toks-in-vocab', mean(acc.toks)],
        ['MAUVE', mauve.get(key)],
      ];
      for (const [column, value] of cells) {
        if (value === undefined) continue;
        rows.push(resultRow({ model: label, profile: p.profile, task: 'topic_control', metric: column, variant: `${acc.method} setting=${acc.setting}`, value, n: acc.topics.length, table: 'Table 12', row: label, column }));
        if (column !== 'Toks-in-vocab') rows.push(resultRow({ model: label, profile: p.profile, task: 'topic_control', metric: column, variant: `${acc.method} setting=${acc.setting}`, value, n: acc.topics.length, table: 'Figure 2', row: label, column }));
      }
      table.push({ method: acc.method, setting: acc.setting, row: label, topics: acc.topics.length, sem_acc: mean(acc.success), toks_in_vocab: mean(acc.toks), mauve: mauve.get(key) ?? null, mean_nll: acc.nll.length ? mean(acc.nll) : null });
    }
    // Table 12's MAUVE rows come from here; the mauve steps' own rows are not needed downstream.
    await writeResults(path.join(ctx.outDir, RESULTS_FILE), rows);
    await writeParquetTable(
      path.join(ctx.outDir, 'per-topic.parquet'),
      { method: { type: 'UTF8' }, setting: { type: 'DOUBLE' }, topic: { type: 'UTF8' }, semantic_success: { type: 'DOUBLE' }, toks_in_vocab: { type: 'DOUBLE' }, mean_nll: { type: 'DOUBLE', optional: true } },
      perTopic,
    );
    writeJson(path.join(ctx.outDir, 'table12.json'), table);
    return { settings: table };
  },
});

// ---------------------------------------------------------------------------------------------

export const genderActivity = defineActivity({
  name: 'control.gender',
  version: '1',
  description: 'Table 5: pronoun bias with the Backpack sense intervention (Ones/Zeros/Optimized) or the Transformer nullspace projection.',
  params: z
    .object({
      /** Backpack sense to intervene on (10 for the released Backpack-Small), or 'auto' (localized). */
      sense: z.union([z.number().int().nonnegative(), z.literal('auto')]).default('auto'),
      /** D8: scipy's defaults (200 iterations) unless set (the authors intended 25). */
      nmMaxIter: z.number().int().positive().optional(),
      modelStep: z.string().optional(),
      tokenizer: z.string().optional(),
      profile: z.string().default(''),
      threads: z.number().int().positive().optional(),
    })
    .strict(),
  resources: { cpus: 2, memoryMb: 4096 },
  async run(p, ctx) {
    const checkpoints = p.modelStep ? [pickCheckpoint(ctx.inputs, { step: p.modelStep, what: 'control.gender' })] : checkpointsAmong(ctx.inputs);
    if (checkpoints.length === 0) throw new NonRetryableError('control.gender: no checkpoint among the inputs');
    const rows: ResultRow[] = [];
    const perProfession: Record<string, unknown>[] = [];
    const models: Record<string, unknown>[] = [];
    for (const ckpt of checkpoints) {
      const model = await loadNative(ckpt.dir, p.threads ?? ctx.devices.cpus);
      try {
        const tokenizer = await loadTok(tokenizerFor(ctx.inputs, ckpt.dir, p.tokenizer));
        const nm = p.nmMaxIter ? { maxIterations: p.nmMaxIter } : {};
        const out = await runGender(model, tokenizer, {
          sense: p.sense,
          nelderMead: nm,
          onProgress: (done, total) => ctx.progress({ message: `${ckpt.label} ${done}/${total}`, fraction: done / total }),
        });
        for (const s of out.summary) {
          const details = JSON.stringify({ sense: out.sense ?? null, senseChosen: out.senseChosen, setting: s.setting });
          rows.push(resultRow({ model: ckpt.label, profile: p.profile, task: 'gender_bias', metric: 'bias_ratio', variant: s.setting, value: s.bias, n: s.professions, table: 'Table 5', row: s.paperRow, column: 'ratio', details }));
          if (s.reduction !== null) rows.push(resultRow({ model: ckpt.label, profile: p.profile, task: 'gender_bias', metric: 'reduction', variant: s.setting, value: s.reduction, n: s.professions, table: 'Table 5', row: s.paperRow, column: 'reduction', details }));
        }
        for (const r of out.results) perProfession.push({ model: ckpt.label, arch: out.arch, profession: r.profession, setting: r.setting, p: r.p, bias: r.bias, nm_iterations: r.nmIterations });
        models.push({ model: ckpt.label, arch: out.arch, sense: out.sense ?? null, senseChosen: out.senseChosen, senseScores: out.senseScores ?? null, professions: out.professions.length, dropped: out.dropped, summary: out.summary });
      } finally {
        model.dispose();
      }
    }
    await writeResults(path.join(ctx.outDir, RESULTS_FILE), rows);
    await writeParquetTable(
      path.join(ctx.outDir, 'professions.parquet'),
      { model: { type: 'UTF8' }, arch: { type: 'UTF8' }, profession: { type: 'UTF8' }, setting: { type: 'UTF8' }, p: { type: 'DOUBLE' }, bias: { type: 'DOUBLE' }, nm_iterations: { type: 'INT32', optional: true } },
      perProfession,
    );
    writeJson(path.join(ctx.outDir, 'summary.json'), { models });
    return { models };
  },
});

// ---------------------------------------------------------------------------------------------

export const editActivity = defineActivity({
  name: 'control.edit',
  version: '1',
  description: 'Knowledge editing by sense projection (MacBook: Apple → HP): next-token probabilities and samples before/after.',
  params: z
    .object({
      target: z.string().default('MacBook'),
      remove: z.string().default('Apple'),
      add: z.string().default('HP'),
      prompts: z.array(z.string()).min(1).default(['The MacBook is best known for']),
      samplesPerPrompt: z.number().int().positive().default(5),
      totalLength: z.number().int().min(2).default(99),
      seed: z.number().int().default(0),
      modelStep: z.string().optional(),
      tokenizer: z.string().optional(),
      profile: z.string().default(''),
      threads: z.number().int().positive().optional(),
    })
    .strict(),
  resources: { cpus: 2, memoryMb: 4096 },
  async run(p, ctx) {
    const found = pickCheckpoint(ctx.inputs, { arch: 'backpack', step: p.modelStep, what: 'control.edit' });
    const model = await loadNative(found.dir, p.threads ?? ctx.devices.cpus);
    try {
      const tokenizer = await loadTok(tokenizerFor(ctx.inputs, found.dir, p.tokenizer));
      const out = await runEdit(model, tokenizer, { ...p, signal: ctx.signal });
      await writeParquetTable(
        path.join(ctx.outDir, 'edit-samples.parquet'),
        { table: { type: 'UTF8' }, prompt: { type: 'UTF8' }, condition: { type: 'UTF8' }, sample: { type: 'INT32' }, text: { type: 'UTF8' } },
        out.samples.map((s) => ({ table: 'Table 6', ...s })),
      );
      const rows = out.probes.flatMap((pr) => [
        resultRow({ model: found.label, profile: p.profile, task: 'knowledge_edit', subtask: pr.prompt, metric: `p(${p.remove})`, variant: pr.condition, value: pr.pRemove, n: 1, table: 'Table 6', row: `${pr.condition}: ${pr.prompt}`, column: `p( ${p.remove})` }),
        resultRow({ model: found.label, profile: p.profile, task: 'knowledge_edit', subtask: pr.prompt, metric: `p(${p.add})`, variant: pr.condition, value: pr.pAdd, n: 1, table: 'Table 6', row: `${pr.condition}: ${pr.prompt}`, column: `p( ${p.add})` }),
      ]);
      await writeResults(path.join(ctx.outDir, RESULTS_FILE), rows);
      const summary = { model: found.label, tokens: out.tokens, probes: out.probes, samples: out.samples.length };
      writeJson(path.join(ctx.outDir, 'summary.json'), { ...summary, texts: out.samples });
      return summary;
    } finally {
      model.dispose();
    }
  },
});

export const sensesActivity = defineActivity({
  name: 'control.senses',
  version: '1',
  description: 'Top/bottom vocabulary of each sense for chosen words or sense arithmetic (Tables 1, 3, 13).',
  params: z
    .object({
      words: z.array(z.string()).min(1).default(['science', 'nurse', 'developer', 'MacBook']),
      count: z.number().int().positive().default(20),
      modelStep: z.string().optional(),
      tokenizer: z.string().optional(),
      threads: z.number().int().positive().optional(),
    })
    .strict(),
  resources: { cpus: 1, memoryMb: 2048 },
  async run(p, ctx) {
    const found = pickCheckpoint(ctx.inputs, { arch: 'backpack', step: p.modelStep, what: 'control.senses' });
    const model = await loadNative(found.dir, p.threads ?? ctx.devices.cpus);
    try {
      const tokenizer = await loadTok(tokenizerFor(ctx.inputs, found.dir, p.tokenizer));
      const rows = await runSenseListings(model, tokenizer, p.words, p.count);
      await writeParquetTable(
        path.join(ctx.outDir, 'senses.parquet'),
        { table: { type: 'UTF8' }, model: { type: 'UTF8' }, expression: { type: 'UTF8' }, sense: { type: 'INT32' }, direction: { type: 'UTF8' }, rank: { type: 'INT32' }, token_id: { type: 'INT32' }, token: { type: 'UTF8' }, score: { type: 'DOUBLE' } },
        rows.map((r) => ({ table: 'senses', model: found.label, expression: r.expression, sense: r.sense, direction: r.direction, rank: r.rank, token_id: r.tokenId, token: r.token, score: r.score })),
      );
      return { model: found.label, words: p.words, rows: rows.length };
    } finally {
      model.dispose();
    }
  },
});

export const controlActivities: AnyActivity[] = [
  trainTopicClassifierActivity,
  topicActivity,
  pplmActivity,
  mauveActivity,
  table12Activity,
  genderActivity,
  editActivity,
  sensesActivity,
];

export { TWEET_TOPIC_LABELS };
