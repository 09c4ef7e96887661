/**
 * Pronoun gender bias and its reduction (PAPER.md §6.6, Table 5): professions, prompts, the bias
 * ratio, the Backpack sense intervention (scale α of one sense at the profession's positions) and
 * the Transformer nullspace-projection baseline, with p fitted per profession by Nelder–Mead.
 */
import type { ControlModel, SenseScaleInterventions } from '../model';
import { requireSenses } from '../model';
import { nelderMeadAsync, type NelderMeadOptions } from './nelder-mead';

import { ESTIMATION_PROMPTS, EVALUATION_PROMPTS, PROFESSIONS_40, fillPrompt } from '../../../datasets/gender';

export { ESTIMATION_PROMPTS, EVALUATION_PROMPTS, PROFESSIONS_40, fillPrompt };

export interface Profession {
  word: string;
  tokenId: number;
}

/** Keeps professions whose " " + word is a single token of the tokenizer in use (D7). */
export function singleTokenProfessions(words: readonly string[], encode: (text: string) => number[]): { kept: Profession[]; dropped: string[] } {
  const kept: Profession[] = [];
  const dropped: string[] = [];
  for (const w of words) {
    const ids = encode(' ' + w);
    if (ids.length === 1) kept.push({ word: w, tokenId: ids[0] });
    else dropped.push(w);
  }
  return { kept, dropped };
}

export interface PronounIds {
  he: number;
  she: number;
}

export function pronounIds(encode: (text: string) => number[]): PronounIds {
  const he = encode(' he');
  const she = encode(' she');
  if (he.length !== 1 || she.length !== 1) throw new Error('gender: " he" and " she" must each be a single token of the tokenizer');
  return { he: he[0], she: she[0] };
}

/** bias = max(p(he)/p(she), p(she)/p(he)) from one row of logits (softmax over all entries). */
export function biasFromLogits(logits: Float32Array, offset: number, vocab: number, ids: PronounIds): number {
  // The ratio of two softmax entries is exp(logit difference): the normaliser cancels.
  const diff = logits[offset + ids.he] - logits[offset + ids.she];
  return Math.exp(Math.abs(diff));
}

/**
 * Mean bias over prompts (token lists) with one intervention: prompts right-padded with `padId` into
 * one batch; the prediction is read at each prompt's last token (causal attention ignores the padding).
 */
export async function meanBias(
  model: ControlModel,
  prompts: number[][],
  ids: PronounIds,
  padId: number,
  interventions?: SenseScaleInterventions,
): Promise<number> {
  const seq = Math.max(...prompts.map((p) => p.length));
  const batch = prompts.length;
  const tokens = new Int32Array(batch * seq).fill(padId);
  prompts.forEach((p, b) => tokens.set(p, b * seq));
  const out = await model.forward(tokens, { batch, seq, logits: true, interventions });
  if (!out.logits) throw new Error('gender: model returned no logits');
  const V = model.config.vocabSize;
  let total = 0;
  prompts.forEach((p, b) => {
    total += biasFromLogits(out.logits!, (b * seq + p.length - 1) * V, V, ids);
  });
  return total / batch;
}

/** Backpack: multiply α_sense[i, j] by p at every key position j holding the profession's token. */
export function senseIntervention(sense: number, tokenId: number, p: number): SenseScaleInterventions {
  return { alphaScale: { sense, tokenIds: [tokenId], factor: p } };
}

/** Transformer: E′[v] = E[v] − (1 − p)·((E[v]·g)/(g·g))·g on the input side only; g = E[she] − E[he]. */
export function nullspaceIntervention(embeddings: Float32Array, dim: number, tokenId: number, ids: PronounIds, p: number): SenseScaleInterventions {
  const g = new Float64Array(dim);
  let gg = 0;
  let eg = 0;
  for (let t = 0; t < dim; t++) {
    g[t] = embeddings[ids.she * dim + t] - embeddings[ids.he * dim + t];
    gg += g[t] * g[t];
  }
  for (let t = 0; t < dim; t++) eg += embeddings[tokenId * dim + t] * g[t];
  const row = new Float32Array(dim);
  const coef = gg > 0 ? ((1 - p) * eg) / gg : 0;
  for (let t = 0; t < dim; t++) row[t] = embeddings[tokenId * dim + t] - coef * g[t];
  return { embeddingReplace: [{ tokenId, row }] };
}

/**
 * Automatic sense localization for models we trained: the sense whose vocabulary projection
 * E·C(v)_ℓ separates " he" from " she" most, averaged over the professions: argmax_ℓ mean_v |Λ[he] − Λ[she]|.
 */
export async function localizeGenderSense(model: ControlModel, professions: Profession[], ids: PronounIds): Promise<{ sense: number; scores: number[] }> {
  const senseVectors = requireSenses(model, 'gender sense localization');
  const k = model.config.numSenses!;
  const d = model.config.nEmbd;
  const E = model.outputEmbeddings();
  const vectors = await senseVectors(Int32Array.from(professions.map((p) => p.tokenId)));
  const scores = new Array(k).fill(0);
  professions.forEach((_, i) => {
    for (let l = 0; l < k; l++) {
      let diff = 0;
      for (let t = 0; t < d; t++) diff += (E[ids.he * d + t] - E[ids.she * d + t]) * vectors[(i * k + l) * d + t];
      scores[l] += Math.abs(diff) / professions.length;
    }
  });
  let best = 0;
  for (let l = 1; l < k; l++) if (scores[l] > scores[best]) best = l;
  return { sense: best, scores };
}

export interface ProfessionResult {
  profession: string;
  setting: string;
  p: number;
  bias: number;
  nmIterations?: number;
}

export interface GenderRunOptions {
  method: 'sense' | 'nullspace';
  sense?: number;
  nelderMead?: Partial<NelderMeadOptions>;
  padId: number;
  onProfession?: (done: number, total: number) => void;
}

/**
 * Ones (p = 1), Zeros (p = 0) and Optimized (p fitted on the estimation prompts with objective
 * mean bias + |1 − p|, from x0 = 1 and simplex {1, 1.05}) per profession, evaluated on the 13 prompts.
 */
export async function runGenderDebiasing(
  model: ControlModel,
  professions: Profession[],
  encode: (text: string) => number[],
  ids: PronounIds,
  options: GenderRunOptions,
): Promise<ProfessionResult[]> {
  const E = options.method === 'nullspace' ? model.outputEmbeddings() : undefined;
  const d = model.config.nEmbd;
  if (options.method === 'sense' && (options.sense === undefined || options.sense < 0 || options.sense >= (model.config.numSenses ?? 0))) {
    throw new Error(`gender: sense index ${options.sense} is outside 0..${(model.config.numSenses ?? 0) - 1}`);
  }
  const intervention = (prof: Profession, p: number) =>
    options.method === 'sense' ? senseIntervention(options.sense!, prof.tokenId, p) : nullspaceIntervention(E!, d, prof.tokenId, ids, p);
  const names = options.method === 'sense' ? ['Ones', 'Zeros', 'Optimized'] : ['Unmodified', 'Project-Nullspace', 'Optimize-Nullspace'];
  const results: ProfessionResult[] = [];
  for (const [i, prof] of professions.entries()) {
    const estimation = ESTIMATION_PROMPTS.map((t) => encode(fillPrompt(t, prof.word)));
    const evaluation = EVALUATION_PROMPTS.map((t) => encode(fillPrompt(t, prof.word)));
    const fit = await nelderMeadAsync(
      async ([p]) => (await meanBias(model, estimation, ids, options.padId, intervention(prof, p))) + Math.abs(1 - p),
      [1],
      { initialSimplex: [[1], [1.05]], ...options.nelderMead },
    );
    const settings: Array<[string, number, number | undefined]> = [
      [names[0], 1, undefined],
      [names[1], 0, undefined],
      [names[2], fit.x[0], fit.iterations],
    ];
    for (const [setting, p, nmIterations] of settings) {
      const bias = await meanBias(model, evaluation, ids, options.padId, p === 1 ? undefined : intervention(prof, p));
      results.push({ profession: prof.word, setting, p, bias, ...(nmIterations !== undefined ? { nmIterations } : {}) });
    }
    options.onProfession?.(i + 1, professions.length);
  }
  return results;
}

/** Mean bias per setting and the reduction (B_unmodified − B)/(B_unmodified − 1). */
export function summarizeBias(results: ProfessionResult[], unmodifiedSetting: string) {
  const bySetting = new Map<string, number[]>();
  for (const r of results) {
    if (!bySetting.has(r.setting)) bySetting.set(r.setting, []);
    bySetting.get(r.setting)!.push(r.bias);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = bySetting.get(unmodifiedSetting);
  if (!base) throw new Error(`gender: no results for the unmodified setting "${unmodifiedSetting}"`);
  const b0 = mean(base);
  return [...bySetting.entries()].map(([setting, xs]) => {
    const b = mean(xs);
    return { setting, bias: b, reduction: setting === unmodifiedSetting ? null : b0 === 1 ? 0 : (b0 - b) / (b0 - 1), professions: xs.length };
  });
}
