/**
 * One PPLM run (PAPER.md §6.4): `samples` perturbed samples of EOS + `length` tokens for one topic and
 * step size on the Transformer, scored exactly like the Backpack runs (§6.3 Scoring).
 */
import type { Tokenizer } from '../../../datasets/tokenizer/types';
import type { TopicClassifier } from '../classifier/classifier';
import { scoreSamples, type NllScorer, type RunScore, type SampleScore } from '../classifier/score';
import type { ControlModel } from '../model';
import { decodeSample } from '../topic/run';
import { singleTokenBagIds } from '../topic/topics';
import { Rng, deriveSeed } from '../util/rng';
import type { NativeModel } from '../../../native/index';
import { PplmSession } from '../../../native/pplm';
import type { Gpt2Weights } from './gpt2';
import { pplmSamplesNative } from './native';
import { pplmSample, PPLM_DEFAULTS, type PplmOptions, type UnperturbedModel } from './pplm';

/** The unperturbed next-token distribution from the native engine (softmax over all V logits). */
export function nativeUnperturbed(model: ControlModel): UnperturbedModel {
  return {
    async nextDistribution(tokens: number[]) {
      const out = await model.forward(Int32Array.from(tokens), { batch: 1, seq: tokens.length, logits: true });
      const V = model.config.vocabSize;
      const row = out.logits!.subarray((tokens.length - 1) * V, tokens.length * V);
      let max = -Infinity;
      for (const x of row) if (x > max) max = x;
      const p = new Float64Array(V);
      let z = 0;
      for (let v = 0; v < V; v++) z += p[v] = Math.exp(row[v] - max);
      for (let v = 0; v < V; v++) p[v] /= z;
      return p;
    },
  };
}

export interface PplmRunOptions extends Omit<PplmOptions, 'bag'> {
  topic: string;
  label: string;
  bagWords: string[];
  samples: number;
  seed: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface PplmRunResult {
  texts: string[];
  bagIds: number[];
  samples: SampleScore[];
  run: RunScore;
  secondsPerSample: number;
  meanFinalLoss: number | null;
}

/** Which implementation computes the steps and the KV-cache gradients. */
export type PplmEngine =
  | { kind: 'native'; model: NativeModel; /** samples decoded in lockstep (default 32) */ batch?: number }
  | { kind: 'typescript'; weights: Gpt2Weights; unperturbed: UnperturbedModel };

export async function runPplm(
  engine: PplmEngine,
  tokenizer: Tokenizer,
  classifier: TopicClassifier,
  nll: NllScorer | undefined,
  opts: PplmRunOptions,
): Promise<PplmRunResult> {
  const bagIds = singleTokenBagIds(opts.bagWords, (t) => tokenizer.encode(t));
  if (bagIds.length === 0 && opts.stepsize > 0) throw new Error(`pplm: no word of the ${opts.topic} bag is a single token for this tokenizer`);
  const options: PplmOptions = { ...PPLM_DEFAULTS, ...opts, bag: bagIds };
  const rngFor = (s: number) => new Rng(deriveSeed(opts.seed, 'pplm', opts.topic, opts.stepsize, s));
  const tokens: number[][] = [];
  const losses: number[] = [];
  const started = Date.now();
  if (engine.kind === 'native') {
    const batch = Math.max(1, Math.min(engine.batch ?? 32, opts.samples));
    let session: PplmSession | undefined;
    try {
      for (let s0 = 0; s0 < opts.samples; s0 += batch) {
        const rows = Math.min(batch, opts.samples - s0);
        if (!session || session.rows !== rows) {
          await session?.close();
          session = await PplmSession.open(engine.model, rows, options.length + 1);
        }
        const rngs = Array.from({ length: rows }, (_, i) => rngFor(s0 + i));
        for (const out of await pplmSamplesNative(session, tokenizer.eosId, options, rngs, opts.signal)) {
          tokens.push(out.tokens);
          if (out.losses.length) losses.push(out.losses[out.losses.length - 1]);
        }
        opts.onProgress?.(s0 + rows, opts.samples);
      }
    } finally {
      await session?.close();
    }
  } else {
    for (let s = 0; s < opts.samples; s++) {
      const out = await pplmSample(engine.weights, engine.unperturbed, tokenizer.eosId, options, rngFor(s), opts.signal);
      tokens.push(out.tokens);
      if (out.losses.length) losses.push(out.losses[out.losses.length - 1]);
      opts.onProgress?.(s + 1, opts.samples);
    }
  }
  const secondsPerSample = (Date.now() - started) / 1000 / opts.samples;
  const texts = tokens.map((t) => decodeSample(tokenizer, t).text);
  const scored = await scoreSamples(texts, opts.label, opts.bagWords, classifier, nll);
  return { texts, bagIds, samples: scored.samples, run: scored.run, secondsPerSample, meanFinalLoss: losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : null };
}
