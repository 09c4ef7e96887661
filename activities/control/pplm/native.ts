/**
 * PPLM-BoW on the native engine: the algorithm of pplm.ts (PAPER.md §6.4) driven over a native PplmSession,
 * several samples decoded in lockstep (one session row each; every row has its own random stream, running
 * gradient norms and perturbation, so a sample does not depend on its batch). The engine computes logits and
 * dLoss/dDelta in float32; the loss, its gradient w.r.t. the logits, the normalised steps, the fusion and
 * the sampling stay here in float64, exactly as in the TypeScript reference.
 */
import { throwIfAborted } from '../../../pipelines/activity';
import type { PplmSession } from '../../../native/pplm';
import type { Rng } from '../util/rng';
import { fuseLogits, logSumExp, pplmLoss, sampleIndex, softmax, type PplmOptions } from './pplm';

const SMALL = 1e-15;

/** Cache positions PPLM perturbs at past length T: the first `window` once T > window, else all (PAPER.md §6.4). */
export function perturbedPositions(T: number, window: number): number {
  return window > 0 && T > window ? window : T;
}

export interface NativeSample {
  tokens: number[];
  /** Loss of the last perturbation iteration at every perturbed token. */
  losses: number[];
}

/**
 * One PPLM sample per generator in `rngs` (EOS + `length` tokens each), on a session with exactly that many
 * rows. The session is reset first.
 */
export async function pplmSamplesNative(session: PplmSession, eosId: number, options: PplmOptions, rngs: Rng[], signal?: AbortSignal): Promise<NativeSample[]> {
  const B = session.rows;
  if (rngs.length !== B) throw new Error(`pplm: ${rngs.length} random streams for a session of ${B} rows`);
  if (options.length + 1 > session.capacity) throw new Error(`pplm: EOS + ${options.length} tokens exceed the session capacity ${session.capacity}`);
  const V = session.vocabSize;
  const Lyr = session.layers;
  const d = session.width;
  const perturb = options.stepsize > 0 && options.iterations > 0;
  const samples: NativeSample[] = rngs.map(() => ({ tokens: [eosId], losses: [] }));
  // Running per-row, per-layer gradient norms, carried across iterations and tokens.
  const gradNorms: (number | undefined)[][] = rngs.map(() => new Array(Lyr).fill(undefined));
  await session.reset();
  for (let i = 0; i < options.length; i++) {
    if (signal) throwIfAborted(signal);
    const last = Int32Array.from(samples, (s) => s.tokens[s.tokens.length - 1]);
    const T = session.lengths().past;
    const perturbNow = perturb && T > 0;
    // One pass gives the unperturbed distribution and the first iteration's (undisturbed) forward; without a
    // perturbation it also commits the token, so the step costs one pass in all.
    const joint = await session.jointStep(last, !perturbNow);
    const uLogits = rngs.map((_, b) => joint.clean.subarray(b * V, (b + 1) * V));
    const u = perturbNow ? uLogits.map(unperturbed) : [];
    let logits = joint.past;
    if (perturbNow) {
      const P = perturbedPositions(T, options.window);
      const delta = new Float64Array(session.deltaSize(P));
      const rowSize = Lyr * 2 * P * d;
      const layerSize = 2 * P * d;
      for (let it = 0; it < options.iterations; it++) {
        if (it > 0) logits = await session.perturbedStep(last, Float32Array.from(delta), P, false);
        const dLogits = new Float32Array(B * V);
        for (let b = 0; b < B; b++) {
          const { loss, dLogits: g } = pplmLoss(Float64Array.from(logits.subarray(b * V, (b + 1) * V)), u[b].p, options.bag, options.klScale, u[b].logClamped);
          dLogits.set(g, b * V);
          if (it === options.iterations - 1) samples[b].losses.push(loss);
        }
        const grad = await session.backward(dLogits, P);
        for (let b = 0; b < B; b++) {
          for (let l = 0; l < Lyr; l++) {
            // Norm of this layer's stacked (key, value) gradient over the window (the mask is the P positions).
            const at = b * rowSize + l * layerSize;
            let sq = 0;
            for (let k = 0; k < layerSize; k++) sq += grad[at + k] * grad[at + k];
            const norm = Math.sqrt(sq);
            const prev = gradNorms[b][l];
            const n = prev === undefined ? norm + SMALL : Math.max(prev, norm);
            gradNorms[b][l] = n;
            const factor = options.stepsize / Math.pow(n, options.gamma);
            for (let k = 0; k < layerSize; k++) delta[at + k] -= factor * grad[at + k];
          }
        }
      }
      logits = await session.perturbedStep(last, Float32Array.from(delta), P, true);
    }
    for (let b = 0; b < B; b++) {
      const row = logits.subarray(b * V, (b + 1) * V);
      samples[b].tokens.push(sampleIndex(perturb ? fuseLogits(row, uLogits[b], options.gmScale) : softmax(row), rngs[b]));
    }
  }
  return samples;
}

/** The unperturbed distribution u and log û (û = u + 1e−15·[u ≤ 1e−15]) from its logits, one exp per entry. */
function unperturbed(logits: ArrayLike<number>): { p: Float64Array; logClamped: Float64Array } {
  const lse = logSumExp(logits);
  const p = new Float64Array(logits.length);
  const logClamped = new Float64Array(logits.length);
  for (let v = 0; v < p.length; v++) {
    p[v] = Math.exp(logits[v] - lse);
    logClamped[v] = p[v] <= SMALL ? Math.log(p[v] + SMALL) : logits[v] - lse;
  }
  return { p, logClamped };
}
