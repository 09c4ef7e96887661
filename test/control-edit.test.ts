import { projectSenses, singleToken } from '../activities/control/edit/edit';
import { parseSenseExpression, projectionExtremes, senseListings } from '../activities/control/edit/senses';
import { ToyBackpack } from './helpers/control-toy-backpack';
import { sharedSample } from '../activities/control/topic/sampler';
import { Rng } from '../activities/control/util/rng';

describe('knowledge edit (sense projection)', () => {
  it('follows C̃ = C − (C·E_r/|E_r|²)E_r + (C·E_r/|E_a|²)E_a (hand computation)', () => {
    // d = 2, k = 2. E_r = (1, 0), E_a = (0, 2).
    // Sense 0 = (3, 4): C·E_r = 3 → (3,4) − 3(1,0) + (3/4)(0,2) = (0, 5.5)
    // Sense 1 = (−1, 1): C·E_r = −1 → (−1,1) + (1,0) − (1/4)(0,2) = (0, 0.5)
    const out = projectSenses(Float32Array.from([3, 4, -1, 1]), 2, 2, Float32Array.from([1, 0]), Float32Array.from([0, 2]));
    expect(Array.from(out)).toEqual([0, 5.5, 0, 0.5]);
  });
  it('moves the logit E_r had onto E_a and zeroes the one along E_r', () => {
    const Er = Float32Array.from([0.3, -1.2, 0.5]);
    const Ea = Float32Array.from([1.1, 0.4, -0.7]);
    const C = Float32Array.from([0.2, 0.9, -0.4]);
    const out = projectSenses(C, 1, 3, Er, Ea);
    const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * b[i], 0);
    const cr = dot(C, Er);
    // logit of Ea after = C·Ea + cr·(Ea·Ea)/|Ea|² − (cr/|Er|²)(Er·Ea) = C·Ea + cr − (cr/|Er|²)(Er·Ea)
    expect(dot(out, Ea)).toBeCloseTo(dot(C, Ea) + cr - (cr / dot(Er, Er)) * dot(Er, Ea), 5);
    // the component along E_r is replaced by (cr/|Ea|²)(Ea·Er)
    expect(dot(out, Er)).toBeCloseTo((cr / dot(Ea, Ea)) * dot(Ea, Er), 5);
  });
  it('changes generations only through senseReplace at the target token', async () => {
    // vocab 3, d 2, k 1: token 0 = "MacBook" whose sense points at token 1 ("Apple").
    const E = Float32Array.from([0, 0, 4, 0, 0, 4]);
    const C = Float32Array.from([1, 0, 0, 0, 0, 0]);
    const model = new ToyBackpack(E, C, 3, 2, 1);
    const edited = projectSenses(C.subarray(0, 2), 1, 2, E.subarray(2, 4), E.subarray(4, 6));
    expect(Array.from(edited)).toEqual([0, 1]);
    const before = await sharedSample(model, { prompts: Array.from({ length: 50 }, () => [0]), totalLength: 2, rng: new Rng(1) });
    const after = await sharedSample(model, {
      prompts: Array.from({ length: 50 }, () => [0]),
      totalLength: 2,
      rng: new Rng(1),
      interventionsFor: () => ({ senseReplace: [{ tokenId: 0, vectors: edited }] }),
    });
    const count = (seqs: number[][], id: number) => seqs.filter((s) => s[1] === id).length;
    expect(count(before, 1)).toBeGreaterThan(count(before, 2));
    expect(count(after, 2)).toBeGreaterThan(count(after, 1));
  });
  it('requires single-token words', () => {
    expect(singleToken('HP', () => [7], 'add')).toBe(7);
    expect(() => singleToken('MacBook', () => [1, 2], 'target')).toThrow(/target word "MacBook" is 2 tokens/);
  });
});

describe('sense listings', () => {
  it('lists top and bottom vocabulary per sense, with sense arithmetic', () => {
    const E = Float32Array.from([1, 0, 0, 1, -1, 0.5, 0.5, 0.5]); // 4 rows
    const top = projectionExtremes(E, 4, 2, Float32Array.from([1, 0]), 2);
    expect(top.top.map((t) => t.id)).toEqual([0, 3]);
    expect(top.bottom.map((t) => t.id)).toEqual([2, 1]);
    // Two words, k = 1: (1, 0) − (0, 1) = (1, −1): best row 0 (1), worst row 2 (−1.5).
    const listing = senseListings(E, 4, 2, 1, Float32Array.from([1, 0, 0, 1]), [1, -1], 1);
    expect(listing[0].top[0]).toEqual({ id: 0, score: 1 });
    expect(listing[0].bottom[0]).toEqual({ id: 2, score: -1.5 });
    expect(parseSenseExpression('+science-art + music')).toEqual({ words: ['science', 'art', 'music'], signs: [1, -1, 1] });
    expect(parseSenseExpression('nurse')).toEqual({ words: ['nurse'], signs: [1] });
  });
});
