/**
 * One topic-control run (PAPER.md §6.3): localize the topic in the senses, build the quantile weights
 * for the strength, sample with annealing, decode and score. Shared by the `control.topic` activity
 * and `pipeline eval topic`.
 */
import type { Tokenizer } from '../../../datasets/tokenizer/types';
import type { LanguageModel } from '../../../native/types';
import { scoreSamples, meanNllFromLogProbs, type NllScorer, type RunScore, type SampleScore } from '../classifier/score';
import type { TopicClassifier } from '../classifier/classifier';
import type { ControlModel } from '../model';
import { requireSenses } from '../model';
import { deriveSeed } from '../util/rng';
import type { AnnealingOptions } from './anneal';
import { generateTopicSamples } from './generate';
import { localizeOnModel, projectionStatsByForward, quantileWeights, scoresFromColumns, strengthWeights, type LocalizeNorm, type ProjectionStats } from './localize';
import { bagTargetIds } from './topics';

export interface TopicRunOptions {
  topic: string;
  label: string;
  bag: string[];
  strength: number;
  samples: number;
  batchSize: number;
  totalLength: number;
  seed: number;
  localizeNorm: LocalizeNorm;
  annealing: AnnealingOptions;
  /** Identity of the model for the normaliser cache (e.g. its checkpoint directory). */
  modelKey: string;
  sampler?: 'recompute' | 'kv-cache';
  /**
   * Target ids of every topic that will run on this model: their projections are recorded in the one
   * normaliser pass, so later topics need no further pass over the sense vectors.
   */
  allTargetIds?: number[];
  signal?: AbortSignal;
  onProgress?: (message: string, fraction: number) => void;
}

export interface TopicRunResult {
  texts: string[];
  tokens: number[][];
  /** Sampled ids ≥ the tokenizer's vocabulary (padding rows), decoded as ''. */
  padTokens: number[];
  targetIds: number[];
  quantiles?: { q95: number; q80: number; q60: number };
  samples: SampleScore[];
  run: RunScore;
  seconds: { localize: number; generate: number; score: number };
}

const statsCache = new Map<string, ProjectionStats>();

/** Decodes a sample keeping specials; ids outside the tokenizer's vocabulary (padding) become ''. */
export function decodeSample(tokenizer: Tokenizer, ids: number[]): { text: string; pad: number } {
  const kept = ids.filter((id) => id < tokenizer.vocabSize);
  return { text: tokenizer.decode(kept), pad: ids.length - kept.length };
}

/** Mean next-token NLL of a text under a language model (its own tokenizer; truncated to its context). */
export function nllScorerFor(model: LanguageModel, tokenizer: Tokenizer): NllScorer {
  return async (text: string) => {
    const tokens = tokenizer.encode(text).slice(0, model.config.nPositions);
    if (tokens.length < 2) return NaN;
    return meanNllFromLogProbs(tokens, await model.logProbs(Int32Array.from(tokens)), model.config.realVocabSize);
  };
}

export async function runTopic(
  model: ControlModel,
  tokenizer: Tokenizer,
  classifier: TopicClassifier,
  nll: NllScorer | undefined,
  opts: TopicRunOptions,
): Promise<TopicRunResult> {
  const { config } = model;
  const k = config.numSenses ?? 0;
  const targetIds = bagTargetIds(opts.bag, (t) => tokenizer.encode(t));
  const weights = strengthWeights(opts.strength);
  const t0 = Date.now();
  let delta: Float32Array | undefined;
  let maxDelta = Math.max(...weights);
  let quantiles: TopicRunResult['quantiles'];
  if (weights.some((w) => w !== 1)) {
    const fetch = requireSenses(model, 'topic control');
    const skipRow = (v: number) => v === tokenizer.eosId || v >= config.realVocabSize || v >= tokenizer.vocabSize;
    const cacheKey = `${opts.modelKey}|${config.vocabSize}|${k}`;
    let cached = statsCache.get(cacheKey);
    if (!cached) {
      cached = await projectionStatsByForward(model, config.vocabSize, k, skipRow, {
        signal: opts.signal,
        recordColumns: [...targetIds, ...(opts.allTargetIds ?? [])],
        onProgress: (f) => opts.onProgress?.('localize', f),
      });
      statsCache.set(cacheKey, cached);
    }
    const scores =
      scoresFromColumns(cached, targetIds, opts.localizeNorm, skipRow) ??
      (await localizeOnModel(fetch, model.outputEmbeddings(), config.vocabSize, k, config.nEmbd, targetIds, opts.localizeNorm, skipRow, { stats: cached })).scores;
    const q = quantileWeights(scores, weights);
    delta = q.delta;
    maxDelta = q.maxDelta;
    quantiles = { q95: q.q95, q80: q.q80, q60: q.q60 };
  }
  const t1 = Date.now();
  const sequences = await generateTopicSamples(model, {
    delta,
    maxDelta,
    samples: opts.samples,
    batchSize: opts.batchSize,
    prompt: [tokenizer.eosId],
    totalLength: opts.totalLength,
    seed: deriveSeed(opts.seed, opts.topic, opts.strength),
    annealing: opts.annealing,
    sampler: opts.sampler,
    signal: opts.signal,
    onBatch: (done, total) => opts.onProgress?.('generate', done / total),
  });
  const t2 = Date.now();
  const decoded = sequences.map((s) => decodeSample(tokenizer, s));
  const texts = decoded.map((d) => d.text);
  const scored = await scoreSamples(texts, opts.label, opts.bag, classifier, nll);
  const t3 = Date.now();
  return {
    texts,
    tokens: sequences,
    padTokens: decoded.map((d) => d.pad),
    targetIds,
    quantiles,
    samples: scored.samples,
    run: scored.run,
    seconds: { localize: (t1 - t0) / 1000, generate: (t2 - t1) / 1000, score: (t3 - t2) / 1000 },
  };
}
