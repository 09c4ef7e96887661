/**
 * BLiMP minimal pairs (PAPER.md §6.1): 67 paradigms × 1,000 pairs, files `blimp/<UID>.jsonl` with fields
 * `sentence_good`, `sentence_bad`. Harness scoring: a pair is correct when LL("", good) > LL("", bad)
 * strictly, where the empty context is [eos] and each sentence is encoded without a leading space.
 * A paradigm's accuracy is the mean over its pairs; the paper's BLiMP number is the mean over the 67
 * paradigm accuracies.
 */
import { loglikelihoodMany, loglikelihoodTokens, type LoglikelihoodRequest } from './harness';
import { checkAborted, type EvalModel, type EvalTokenizer, type RunHooks } from './types';

export const BLIMP_PARADIGMS = [
  'adjunct_island', 'anaphor_gender_agreement', 'anaphor_number_agreement', 'animate_subject_passive',
  'animate_subject_trans', 'causative', 'complex_NP_island', 'coordinate_structure_constraint_complex_left_branch',
  'coordinate_structure_constraint_object_extraction', 'determiner_noun_agreement_1', 'determiner_noun_agreement_2',
  'determiner_noun_agreement_irregular_1', 'determiner_noun_agreement_irregular_2', 'determiner_noun_agreement_with_adj_2',
  'determiner_noun_agreement_with_adj_irregular_1', 'determiner_noun_agreement_with_adj_irregular_2',
  'determiner_noun_agreement_with_adjective_1', 'distractor_agreement_relational_noun',
  'distractor_agreement_relative_clause', 'drop_argument', 'ellipsis_n_bar_1', 'ellipsis_n_bar_2',
  'existential_there_object_raising', 'existential_there_quantifiers_1', 'existential_there_quantifiers_2',
  'existential_there_subject_raising', 'expletive_it_object_raising', 'inchoative', 'intransitive',
  'irregular_past_participle_adjectives', 'irregular_past_participle_verbs', 'irregular_plural_subject_verb_agreement_1',
  'irregular_plural_subject_verb_agreement_2', 'left_branch_island_echo_question', 'left_branch_island_simple_question',
  'matrix_question_npi_licensor_present', 'npi_present_1', 'npi_present_2', 'only_npi_licensor_present', 'only_npi_scope',
  'passive_1', 'passive_2', 'principle_A_c_command', 'principle_A_case_1', 'principle_A_case_2', 'principle_A_domain_1',
  'principle_A_domain_2', 'principle_A_domain_3', 'principle_A_reconstruction', 'regular_plural_subject_verb_agreement_1',
  'regular_plural_subject_verb_agreement_2', 'sentential_negation_npi_licensor_present', 'sentential_negation_npi_scope',
  'sentential_subject_island', 'superlative_quantifiers_1', 'superlative_quantifiers_2', 'tough_vs_raising_1',
  'tough_vs_raising_2', 'transitive', 'wh_island', 'wh_questions_object_gap', 'wh_questions_subject_gap',
  'wh_questions_subject_gap_long_distance', 'wh_vs_that_no_gap', 'wh_vs_that_no_gap_long_distance', 'wh_vs_that_with_gap',
  'wh_vs_that_with_gap_long_distance',
] as const;

export interface BlimpPair {
  good: string;
  bad: string;
}

export function parseBlimp(body: string, where = 'blimp'): BlimpPair[] {
  const pairs: BlimpPair[] = [];
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    let r: { sentence_good?: unknown; sentence_bad?: unknown };
    try {
      r = JSON.parse(line);
    } catch (err) {
      throw new Error(`${where}:${i + 1}: not JSON (${(err as Error).message})`);
    }
    if (typeof r.sentence_good !== 'string' || typeof r.sentence_bad !== 'string') {
      throw new Error(`${where}:${i + 1}: needs string fields "sentence_good" and "sentence_bad"`);
    }
    pairs.push({ good: r.sentence_good, bad: r.sentence_bad });
  }
  return pairs;
}

export interface BlimpParadigmResult {
  paradigm: string;
  acc: number;
  n: number;
}

export interface BlimpResult {
  task: 'blimp';
  /** Mean over paradigms of the paradigm accuracies. */
  acc: number;
  /** Pairs scored over all paradigms. */
  n: number;
  paradigms: BlimpParadigmResult[];
  tokens: number;
}

/** Scores one pair: 1 when the good sentence is strictly more likely. */
export async function scoreBlimpPair(model: EvalModel, tokenizer: EvalTokenizer, pair: BlimpPair): Promise<{ correct: boolean; tokens: number }> {
  const ctx = [tokenizer.eosId];
  const good = tokenizer.encode(pair.good);
  const bad = tokenizer.encode(pair.bad);
  const llGood = (await loglikelihoodTokens(model, ctx, good)).ll;
  const llBad = (await loglikelihoodTokens(model, ctx, bad)).ll;
  return { correct: llGood > llBad, tokens: good.length + bad.length };
}

export async function evaluateBlimp(
  model: EvalModel,
  tokenizer: EvalTokenizer,
  paradigms: ReadonlyArray<{ paradigm: string; pairs: readonly BlimpPair[] }>,
  hooks?: RunHooks,
): Promise<BlimpResult> {
  if (paradigms.length === 0) throw new Error('BLiMP: no paradigms to evaluate');
  const total = paradigms.reduce((s, p) => s + p.pairs.length, 0);
  // every sentence of every pair as one request with the [eos] context, scored in one batched pass
  const requests: LoglikelihoodRequest[] = [];
  let tokens = 0;
  for (const { paradigm, pairs } of paradigms) {
    if (pairs.length === 0) throw new Error(`BLiMP paradigm ${paradigm} has no pairs`);
    for (const pair of pairs) {
      const good = tokenizer.encode(pair.good);
      const bad = tokenizer.encode(pair.bad);
      tokens += good.length + bad.length;
      requests.push({ context: [tokenizer.eosId], continuation: good }, { context: [tokenizer.eosId], continuation: bad });
    }
  }
  checkAborted(hooks);
  const lls = await loglikelihoodMany(model, requests, {
    signal: hooks?.signal,
    onProgress: hooks?.onProgress ? (d) => hooks.onProgress!(Math.floor(d / 2), total) : undefined,
  });
  const results: BlimpParadigmResult[] = [];
  let at = 0;
  for (const { paradigm, pairs } of paradigms) {
    let correct = 0;
    for (let i = 0; i < pairs.length; i++, at += 2) if (lls[at].ll > lls[at + 1].ll) correct++;
    results.push({ paradigm, acc: correct / pairs.length, n: pairs.length });
  }
  return {
    task: 'blimp',
    acc: results.reduce((s, r) => s + r.acc, 0) / results.length,
    n: total,
    paradigms: results,
    tokens,
  };
}
