/**
 * Topic-controlled generation (PAPER.md §6.3): the shared sampler with the annealed sense weights
 * recomputed from the whole current sequence before every forward pass.
 */
import type { ControlModel } from '../model';
import { requireSenses } from '../model';
import { Rng } from '../util/rng';
import { AnnealingState, type AnnealingOptions, ANNEALING_DEFAULTS } from './anneal';
import { sharedSample } from './sampler';

export interface TopicGenerationOptions {
  /** [vocab][k] quantile weights; undefined = the unmodified model (strength 0). */
  delta?: Float32Array;
  maxDelta: number;
  samples: number;
  batchSize: number;
  /** Prompt, usually [eos]. */
  prompt: number[];
  totalLength: number;
  seed: number;
  annealing?: AnnealingOptions;
  /**
   * 'recompute' (default): the paper's sampler, a full forward over the sequence at every step, softmax
   * over all padded logits. 'kv-cache': the engine's cached generation with the same annealed weights
   * recomputed before every step (same distribution up to padding rows, which it never samples; its own
   * random stream); needs all sense vectors in memory, so meant for small vocabularies.
   */
  sampler?: 'recompute' | 'kv-cache';
  signal?: AbortSignal;
  onBatch?: (done: number, total: number) => void;
}

/** Caches C(v) per token id so each step fetches only ids it has not seen. */
export class SenseCache {
  private readonly cache = new Map<number, Float32Array>();
  constructor(
    private readonly fetch: (ids: Int32Array) => Promise<Float32Array>,
    private readonly perToken: number,
  ) {}

  async ensure(ids: Iterable<number>): Promise<void> {
    const missing = [...new Set(ids)].filter((id) => !this.cache.has(id));
    if (missing.length === 0) return;
    const vectors = await this.fetch(Int32Array.from(missing));
    if (vectors.length !== missing.length * this.perToken) {
      throw new Error(`senseVectors returned ${vectors.length} values for ${missing.length} ids (expected ${this.perToken} each)`);
    }
    missing.forEach((id, i) => this.cache.set(id, vectors.slice(i * this.perToken, (i + 1) * this.perToken)));
  }

  get(id: number): Float32Array {
    const v = this.cache.get(id);
    if (!v) throw new Error(`sense vectors of token ${id} were not fetched`);
    return v;
  }
}

export async function generateTopicSamples(model: ControlModel, opts: TopicGenerationOptions): Promise<number[][]> {
  const { samples, batchSize, prompt, totalLength } = opts;
  const rng = new Rng(opts.seed);
  const out: number[][] = [];
  const k = model.config.numSenses ?? 0;
  const d = model.config.nEmbd;
  const embeddings = opts.delta ? model.outputEmbeddings() : undefined;
  const cache = opts.delta ? new SenseCache(requireSenses(model, 'topic control'), k * d) : undefined;
  const annealing = opts.annealing ?? ANNEALING_DEFAULTS;
  // Sense vectors are fetched asynchronously, so the steering happens in a wrapping model's forward.
  // One incremental annealing state per batch row; a new batch (shorter sequence) starts fresh states.
  let states: AnnealingState[] = [];
  const steering: ControlModel = opts.delta
    ? {
        config: model.config,
        outputEmbeddings: () => model.outputEmbeddings(),
        forward: async (tokens, fwd) => {
          await cache!.ensure(tokens);
          if (states.length !== fwd.batch || fwd.seq === prompt.length) {
            states = Array.from({ length: fwd.batch }, () => new AnnealingState((id) => cache!.get(id), embeddings!, d, k, opts.delta!, opts.maxDelta, annealing));
          }
          const scale = new Float32Array(fwd.batch * fwd.seq * k);
          for (let b = 0; b < fwd.batch; b++) {
            states[b].syncTo(tokens.subarray(b * fwd.seq, (b + 1) * fwd.seq));
            scale.set(states[b].weights(), b * fwd.seq * k);
          }
          return model.forward(tokens, { ...fwd, interventions: { ...fwd.interventions, senseScale: scale } });
        },
      }
    : model;
  if (opts.sampler === 'kv-cache') return generateWithCache(model, opts, cache, embeddings);
  while (out.length < samples) {
    const rows = Math.min(batchSize, samples - out.length);
    // Always run full batches (the reference's 63 × 8 for 500) so the random stream matches the count.
    const prompts = Array.from({ length: batchSize }, () => prompt.slice());
    const sequences = await sharedSample(steering, { prompts, totalLength, rng, signal: opts.signal });
    out.push(...sequences.slice(0, rows));
    opts.onBatch?.(out.length, samples);
  }
  return out;
}

async function generateWithCache(model: ControlModel, opts: TopicGenerationOptions, cache: SenseCache | undefined, embeddings: Float32Array | undefined): Promise<number[][]> {
  if (!model.generate) throw new Error("sampler 'kv-cache' needs a model with generate() (the native engine)");
  const { samples, batchSize, prompt, totalLength } = opts;
  const k = model.config.numSenses ?? 0;
  const d = model.config.nEmbd;
  if (cache) {
    const all = new Int32Array(model.config.vocabSize);
    for (let i = 0; i < all.length; i++) all[i] = i;
    for (let start = 0; start < all.length; start += 1024) await cache.ensure(all.subarray(start, start + 1024));
  }
  const out: number[][] = [];
  for (let batch = 0; out.length < samples; batch++) {
    if (opts.signal?.aborted) throw new Error('cancelled');
    const rows = Math.min(batchSize, samples - out.length);
    const states = Array.from({ length: rows }, () =>
      opts.delta ? new AnnealingState((id) => cache!.get(id), embeddings!, d, k, opts.delta!, opts.maxDelta, opts.annealing ?? ANNEALING_DEFAULTS) : undefined,
    );
    const generated = await model.generate({
      prompt: Array.from({ length: rows }, () => Int32Array.from(prompt)),
      maxNewTokens: totalLength - prompt.length,
      seed: (opts.seed + batch * 0x9e3779b1) >>> 0,
      temperature: 1,
      senseScaleFn: opts.delta
        ? (seqs) =>
            seqs.map((s, r) => {
              states[r]!.syncTo(s);
              return states[r]!.weights();
            })
        : undefined,
    });
    out.push(...generated.map((g) => [...prompt, ...Array.from(g)]));
    opts.onBatch?.(out.length, samples);
  }
  return out;
}
