/**
 * Table 5 for one model: the Backpack sense intervention or the Transformer nullspace baseline over
 * the single-token professions. Shared by `control.gender` and `pipeline eval gender`.
 */
import type { Tokenizer } from '../../../datasets/tokenizer/types';
import type { ControlModel } from '../model';
import type { NelderMeadOptions } from './nelder-mead';
import {
  PROFESSIONS_40,
  localizeGenderSense,
  pronounIds,
  runGenderDebiasing,
  singleTokenProfessions,
  summarizeBias,
  type ProfessionResult,
} from './gender';

export interface GenderRunResult {
  arch: 'backpack' | 'gpt2';
  sense?: number;
  senseScores?: number[];
  senseChosen: 'given' | 'auto' | 'n/a';
  professions: string[];
  dropped: string[];
  results: ProfessionResult[];
  summary: Array<{ setting: string; paperRow: string; bias: number; reduction: number | null; professions: number }>;
}

export async function runGender(
  model: ControlModel,
  tokenizer: Tokenizer,
  opts: { sense: number | 'auto'; nelderMead?: Partial<NelderMeadOptions>; onProgress?: (done: number, total: number) => void },
): Promise<GenderRunResult> {
  const encode = (t: string) => tokenizer.encode(t);
  const ids = pronounIds(encode);
  const { kept, dropped } = singleTokenProfessions(PROFESSIONS_40, encode);
  if (kept.length === 0) throw new Error('gender: no profession is a single token for this tokenizer');
  const arch = model.config.arch;
  if (arch === 'backpack') {
    let sense: number;
    let senseScores: number[] | undefined;
    if (opts.sense === 'auto') {
      const loc = await localizeGenderSense(model, kept, ids);
      sense = loc.sense;
      senseScores = loc.scores;
    } else sense = opts.sense;
    const results = await runGenderDebiasing(model, kept, encode, ids, {
      method: 'sense',
      sense,
      padId: tokenizer.eosId,
      nelderMead: opts.nelderMead,
      onProfession: opts.onProgress,
    });
    const rowName: Record<string, string> = { Ones: 'Backpack Unmodified', Zeros: `Backpack Remove-Sense${sense}`, Optimized: `Backpack Optimize-Sense${sense}` };
    return {
      arch,
      sense,
      senseScores,
      senseChosen: opts.sense === 'auto' ? 'auto' : 'given',
      professions: kept.map((p) => p.word),
      dropped,
      results,
      summary: summarizeBias(results, 'Ones').map((s) => ({ ...s, paperRow: rowName[s.setting] })),
    };
  }
  const results = await runGenderDebiasing(model, kept, encode, ids, { method: 'nullspace', padId: tokenizer.eosId, nelderMead: opts.nelderMead, onProfession: opts.onProgress });
  return {
    arch,
    senseChosen: 'n/a',
    professions: kept.map((p) => p.word),
    dropped,
    results,
    summary: summarizeBias(results, 'Unmodified').map((s) => ({ ...s, paperRow: `Transformer ${s.setting}` })),
  };
}
