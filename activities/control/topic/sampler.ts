/**
 * The shared sampler of PAPER.md §6 (topic control and knowledge editing): pure ancestral sampling
 * from the softmax over all (padded) logits at temperature 1, no top-k/top-p, with a full forward
 * pass over the whole sequence at every step (no KV cache) so that per-position interventions that
 * depend on the whole current sequence (annealing) are recomputed each step.
 */
import { throwIfAborted } from '../../../pipelines/activity';
import type { ControlModel, SenseScaleInterventions } from '../model';
import { Rng } from '../util/rng';

export interface SharedSamplerOptions {
  /** Prompt tokens, identical length for every row of a batch. */
  prompts: number[][];
  /** Total returned length (prompt included): 99 for the paper's max_length = 100. */
  totalLength: number;
  rng: Rng;
  /** Interventions for the current batch of sequences (all of equal length); undefined = none. */
  interventionsFor?: (sequences: number[][]) => SenseScaleInterventions | undefined;
  signal?: AbortSignal;
}

/** Draws an index from softmax(logits[offset .. offset+vocab)) at temperature 1. */
export function sampleFromLogits(logits: Float32Array, offset: number, vocab: number, rng: Rng): number {
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) if (logits[offset + v] > max) max = logits[offset + v];
  if (!Number.isFinite(max)) throw new Error('sampler: logits contain no finite value');
  let total = 0;
  for (let v = 0; v < vocab; v++) total += Math.exp(logits[offset + v] - max);
  let u = rng.nextFloat() * total;
  for (let v = 0; v < vocab; v++) {
    u -= Math.exp(logits[offset + v] - max);
    if (u < 0) return v;
  }
  // Rounding left a sliver: the last token with non-zero mass.
  for (let v = vocab - 1; v >= 0; v--) if (logits[offset + v] - max > -745) return v;
  return vocab - 1;
}

export async function sharedSample(model: ControlModel, options: SharedSamplerOptions): Promise<number[][]> {
  const { prompts, totalLength, rng } = options;
  if (prompts.length === 0) return [];
  const promptLength = prompts[0].length;
  if (promptLength === 0) throw new Error('sampler: empty prompt');
  if (prompts.some((p) => p.length !== promptLength)) throw new Error('sampler: prompts of one batch must have equal length');
  if (totalLength > model.config.nPositions) {
    throw new Error(`sampler: total length ${totalLength} exceeds the model's ${model.config.nPositions} positions`);
  }
  const vocab = model.config.vocabSize;
  const sequences = prompts.map((p) => p.slice());
  const batch = sequences.length;
  while (sequences[0].length < totalLength) {
    if (options.signal) throwIfAborted(options.signal);
    const seq = sequences[0].length;
    const tokens = new Int32Array(batch * seq);
    sequences.forEach((s, b) => tokens.set(s, b * seq));
    const interventions = options.interventionsFor?.(sequences);
    const out = await model.forward(tokens, { batch, seq, logits: true, interventions });
    if (!out.logits) throw new Error('sampler: model returned no logits');
    for (let b = 0; b < batch; b++) {
      sequences[b].push(sampleFromLogits(out.logits, (b * seq + seq - 1) * vocab, vocab, rng));
    }
  }
  return sequences;
}
