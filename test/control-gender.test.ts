import { nelderMead, nelderMeadAsync } from '../activities/control/gender/nelder-mead';
import {
  ESTIMATION_PROMPTS,
  EVALUATION_PROMPTS,
  PROFESSIONS_40,
  biasFromLogits,
  fillPrompt,
  localizeGenderSense,
  meanBias,
  nullspaceIntervention,
  runGenderDebiasing,
  singleTokenProfessions,
  summarizeBias,
} from '../activities/control/gender/gender';
import { ToyBackpack } from './helpers/control-toy-backpack';

describe('Nelder–Mead', () => {
  it('finds the Rosenbrock minimum (1, 1) from (−1.2, 1)', () => {
    const rosen = ([x, y]: number[]) => 100 * (y - x * x) ** 2 + (1 - x) ** 2;
    const r = nelderMead(rosen, [-1.2, 1], { xatol: 1e-8, fatol: 1e-10, maxIterations: 5000, maxEvaluations: 10000 });
    expect(r.converged).toBe(true);
    expect(r.x[0]).toBeCloseTo(1, 4);
    expect(r.x[1]).toBeCloseTo(1, 4);
    expect(r.fun).toBeLessThan(1e-8);
  });
  it('minimises a 3-D quadratic and a 1-D function with a kink', () => {
    const q = nelderMead(([a, b, c]) => (a - 1) ** 2 + 2 * (b + 2) ** 2 + 3 * (c - 0.5) ** 2, [0, 0, 0], { xatol: 1e-7, fatol: 1e-12, maxIterations: 4000, maxEvaluations: 8000 });
    [1, -2, 0.5].forEach((v, i) => expect(q.x[i]).toBeCloseTo(v, 4));
    // |1 − p| + (p − 0.3)²: minimum at p = 0.3 + 0.5 = 0.8
    const k = nelderMead(([p]) => Math.abs(1 - p) + (p - 0.3) ** 2, [1], { initialSimplex: [[1], [1.05]] });
    expect(k.x[0]).toBeCloseTo(0.8, 3);
  });
  it('respects the iteration cap (D8: scipy default 200·n; the intended 25 as a parameter)', () => {
    const r = nelderMead(([x, y]) => 100 * (y - x * x) ** 2 + (1 - x) ** 2, [-1.2, 1], { maxIterations: 25 });
    expect(r.iterations).toBe(25);
    expect(r.converged).toBe(false);
  });
  it('async variant follows exactly the same path', async () => {
    const f = ([x, y]: number[]) => (x - 3) ** 2 + Math.abs(y + 1) + x * y * 0.1;
    const sync = nelderMead(f, [0.5, 0.5]);
    const asyncResult = await nelderMeadAsync(async (x) => f(x), [0.5, 0.5]);
    expect(asyncResult).toEqual(sync);
  });
});

// Toy vocabulary: 0 EOS, 1 " he", 2 " she", 3 " nurse", 4 any other word. d = 2, k = 2.
// E: he = (1, 0), she = (0, 1), nurse = (1, 1), other = (0.3, 0.3), EOS = (0, 0).
// C(nurse) = [(0.5, 0.5), (0, 2)]: sense 1 carries "she"; every other token has zero senses.
const E = Float32Array.from([0, 0, 1, 0, 0, 1, 1, 1, 0.3, 0.3]);
const sensesWithShe = (strength: number, sense0: [number, number] = [0.5, 0.5]) => {
  const c = new Float32Array(5 * 2 * 2);
  c.set([...sense0, 0, strength], 3 * 4);
  return c;
};
const C = sensesWithShe(2);
const encode = (text: string) => text.split(/[\s.,;]+/).filter((w) => w.length > 0).map((w) => ({ he: 1, she: 2, nurse: 3 })[w as 'he'] ?? 4);
const ids = { he: 1, she: 2 };

describe('gender bias', () => {
  it('fills prompts and filters professions to single tokens', () => {
    expect(ESTIMATION_PROMPTS).toHaveLength(5);
    expect(EVALUATION_PROMPTS).toHaveLength(13);
    expect(PROFESSIONS_40).toHaveLength(40);
    expect(fillPrompt('A CEO went to chat', 'nurse')).toBe('A nurse went to chat');
    const { kept, dropped } = singleTokenProfessions(['nurse', 'hair dresser'], (t) => t.trim().split(' ').map(() => 7));
    expect(kept).toEqual([{ word: 'nurse', tokenId: 7 }]);
    expect(dropped).toEqual(['hair dresser']);
  });
  it('bias ratio = max(p(he)/p(she), p(she)/p(he))', () => {
    const logits = Float32Array.from([0, Math.log(2), Math.log(8)]);
    expect(biasFromLogits(logits, 0, 3, ids)).toBeCloseTo(4, 6);
  });
  it('reads each prompt at its own last token (right padding ignored) — hand computation', async () => {
    const model = new ToyBackpack(E, C, 5, 2, 2);
    // Prompt [nurse, other, other] (n = 3): logits at the last token = E · C(nurse)·(1/3 per sense scale)
    //   he: 0.5/3, she: (0.5 + 2p)/3 → bias = exp(2p/3). Prompt [nurse] alone: exp(2p).
    const b1 = await meanBias(model, [[3, 4, 4], [3]], ids, 0);
    expect(b1).toBeCloseTo((Math.exp(2 / 3) + Math.exp(2)) / 2, 5);
    const half = await meanBias(model, [[3, 4, 4], [3]], ids, 0, { alphaScale: { sense: 1, tokenIds: [3], factor: 0.5 } });
    expect(half).toBeCloseTo((Math.exp(1 / 3) + Math.exp(1)) / 2, 5);
  });
  it('localizes the sense that separates he from she', async () => {
    const model = new ToyBackpack(E, C, 5, 2, 2);
    const { sense, scores } = await localizeGenderSense(model, [{ word: 'nurse', tokenId: 3 }], ids);
    expect(sense).toBe(1);
    expect(scores[0]).toBeCloseTo(0, 6);
    expect(scores[1]).toBeCloseTo(2, 6);
  });
  it('Ones / Zeros / Optimized: zeroing the sense removes the bias, the fit trades bias against |1 − p|', async () => {
    // C(nurse) = [(3, 0), (0, 20)]: logit(he) − logit(she) = (3 − 20p)/n at a prompt of n tokens, so
    // bias = exp(|3 − 20p|/n): Ones exp(17/n), Zeros exp(3/n), and no bias at p = 0.15 for every n.
    const model = new ToyBackpack(E, sensesWithShe(20, [3, 0]), 5, 2, 2);
    const results = await runGenderDebiasing(model, [{ word: 'nurse', tokenId: 3 }], encode, ids, { method: 'sense', sense: 1, padId: 0 });
    const by = Object.fromEntries(results.map((r) => [r.setting, r]));
    const lengths = EVALUATION_PROMPTS.map((t) => encode(fillPrompt(t, 'nurse')).length);
    const meanOver = (f: (n: number) => number) => lengths.reduce((s, n) => s + f(n), 0) / lengths.length;
    expect(by.Ones.bias).toBeCloseTo(meanOver((n) => Math.exp(17 / n)), 3);
    expect(by.Zeros.bias).toBeCloseTo(meanOver((n) => Math.exp(3 / n)), 4);
    expect(by.Optimized.p).toBeCloseTo(0.15, 3);
    expect(by.Optimized.bias).toBeCloseTo(1, 2);
    const summary = summarizeBias(results, 'Ones');
    const opt = summary.find((s) => s.setting === 'Optimized')!;
    expect(opt.reduction!).toBeGreaterThan(summary.find((s) => s.setting === 'Zeros')!.reduction!);
    expect(opt.reduction!).toBeCloseTo(1, 1);
  });
  it('nullspace projection removes the she−he component at p = 0 and keeps the row at p = 1', () => {
    const row0 = nullspaceIntervention(E, 2, 3, ids, 0).embeddingReplace![0].row;
    // g = she − he = (−1, 1); nurse = (1, 1) is already orthogonal → unchanged; use "other"+he-ish row instead.
    expect(Array.from(row0)).toEqual([1, 1]);
    const E2 = Float32Array.from([0, 0, 1, 0, 0, 1, 2, 0, 0.3, 0.3]); // nurse = (2, 0)
    const r0 = nullspaceIntervention(E2, 2, 3, ids, 0).embeddingReplace![0].row;
    expect(r0[0]).toBeCloseTo(1, 6); // (2,0) − ((−2)/2)(−1,1) = (2,0) − (1,−1) = (1, 1)
    expect(r0[1]).toBeCloseTo(1, 6);
    expect((r0[1] - r0[0]) * 1).toBeCloseTo(0, 6); // orthogonal to g
    const r1 = nullspaceIntervention(E2, 2, 3, ids, 1).embeddingReplace![0].row;
    expect(Array.from(r1)).toEqual([2, 0]);
  });
});
