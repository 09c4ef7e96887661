/**
 * Knowledge editing run (PAPER.md §6.7) and sense listings (§6.8) on a Backpack. Shared by the
 * `control.edit` / `control.senses` activities and `pipeline model edit`.
 */
import type { Tokenizer } from '../../../datasets/tokenizer/types';
import type { ControlModel, SenseScaleInterventions } from '../model';
import { requireSenses } from '../model';
import { sharedSample } from '../topic/sampler';
import { decodeSample } from '../topic/run';
import { Rng, deriveSeed } from '../util/rng';
import { projectSenses, singleToken } from './edit';
import { parseSenseExpression, senseListings } from './senses';

export interface EditOptions {
  target: string;
  remove: string;
  add: string;
  prompts: string[];
  samplesPerPrompt: number;
  totalLength: number;
  seed: number;
  signal?: AbortSignal;
}

export interface EditSample {
  prompt: string;
  condition: 'before' | 'after';
  sample: number;
  text: string;
}

export interface EditProbe {
  prompt: string;
  condition: 'before' | 'after';
  pRemove: number;
  pAdd: number;
}

/** Next-token probabilities of the remove/add words after each prompt, and samples, before and after. */
export async function runEdit(model: ControlModel, tokenizer: Tokenizer, opts: EditOptions) {
  const encode = (t: string) => tokenizer.encode(t);
  const target = singleToken(opts.target, encode, 'target');
  const remove = singleToken(opts.remove, encode, 'remove');
  const add = singleToken(opts.add, encode, 'add');
  const { nEmbd: d, numSenses: k = 0, vocabSize: V } = model.config;
  const E = model.outputEmbeddings();
  const senses = await requireSenses(model, 'knowledge editing')(Int32Array.from([target]));
  const edited = projectSenses(senses, k, d, E.subarray(remove * d, remove * d + d), E.subarray(add * d, add * d + d));
  const editIv: SenseScaleInterventions = { senseReplace: [{ tokenId: target, vectors: edited }] };
  const samples: EditSample[] = [];
  const probes: EditProbe[] = [];
  for (const [pi, prompt] of opts.prompts.entries()) {
    const ids = encode(prompt);
    if (ids.length === 0) throw new Error(`edit: prompt ${JSON.stringify(prompt)} encodes to no tokens`);
    if (!ids.includes(target)) throw new Error(`edit: prompt ${JSON.stringify(prompt)} does not contain the target token " ${opts.target}"`);
    for (const condition of ['before', 'after'] as const) {
      const iv = condition === 'after' ? editIv : undefined;
      const out = await model.forward(Int32Array.from(ids), { batch: 1, seq: ids.length, logits: true, interventions: iv });
      const row = out.logits!.subarray((ids.length - 1) * V, ids.length * V);
      let max = -Infinity;
      for (let v = 0; v < V; v++) if (row[v] > max) max = row[v];
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(row[v] - max);
      probes.push({ prompt, condition, pRemove: Math.exp(row[remove] - max) / z, pAdd: Math.exp(row[add] - max) / z });
      // Same seed before and after: the two columns differ only by the edit.
      const rng = new Rng(deriveSeed(opts.seed, 'edit', pi));
      const seqs = await sharedSample(model, {
        prompts: Array.from({ length: opts.samplesPerPrompt }, () => ids.slice()),
        totalLength: Math.max(opts.totalLength, ids.length + 1),
        rng,
        interventionsFor: () => iv,
        signal: opts.signal,
      });
      seqs.forEach((s, i) => samples.push({ prompt, condition, sample: i, text: decodeSample(tokenizer, s).text }));
    }
  }
  return { tokens: { target, remove, add }, samples, probes };
}

export interface SenseListingRow {
  expression: string;
  sense: number;
  direction: 'top' | 'bottom';
  rank: number;
  tokenId: number;
  token: string;
  score: number;
}

/** Top/bottom vocabulary of every sense for each expression ("science", "+MacBook-Apple"). */
export async function runSenseListings(model: ControlModel, tokenizer: Tokenizer, expressions: string[], count: number): Promise<SenseListingRow[]> {
  const fetch = requireSenses(model, 'sense listings');
  const { nEmbd: d, numSenses: k = 0 } = model.config;
  const E = model.outputEmbeddings();
  const rows = Math.min(model.config.realVocabSize, tokenizer.vocabSize);
  const piece = (id: number) => (tokenizer.decodePiece ? tokenizer.decodePiece(id) : tokenizer.decode([id]));
  const out: SenseListingRow[] = [];
  for (const expression of expressions) {
    const { words, signs } = parseSenseExpression(expression);
    const ids = words.map((w) => {
      const t = tokenizer.encode(' ' + w);
      if (t.length === 0) throw new Error(`senses: "${w}" encodes to no tokens`);
      return t[0];
    });
    const vectors = await fetch(Int32Array.from(ids));
    for (const listing of senseListings(E, rows, d, k, vectors, signs, count)) {
      for (const direction of ['top', 'bottom'] as const) {
        listing[direction].forEach((t, rank) =>
          out.push({ expression, sense: listing.sense, direction, rank, tokenId: t.id, token: piece(t.id), score: t.score }),
        );
      }
    }
  }
  return out;
}
