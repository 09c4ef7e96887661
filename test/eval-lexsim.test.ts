import * as fs from 'fs';
import * as path from 'path';
import { LEXSIM_DATASETS, parseWordPairs } from '../activities/evaluation/lexsim/datasets';
import { evaluateLexsim } from '../activities/evaluation/lexsim/evaluate';
import { cosine, parseMethod, similarity } from '../activities/evaluation/lexsim/similarity';
import { averageRanks, pearson, spearman } from '../activities/evaluation/lexsim/spearman';
import { FixedVectorModel, PieceTokenizer } from './helpers/eval-toys';
import { SHARED_DATA } from './helpers/shared-data';

const DATA = SHARED_DATA;

describe('Spearman with tie-averaged ranks', () => {
  test('ranks average over ties (scipy rankdata "average")', () => {
    expect(Array.from(averageRanks([10, 20, 20, 30]))).toEqual([1, 2.5, 2.5, 4]);
    expect(Array.from(averageRanks([3, 1, 3, 3, 2]))).toEqual([4, 1, 4, 4, 2]);
  });

  test('hand-computed rho with ties on both sides', () => {
    // x ranks: [1, 2.5, 2.5, 4, 5]; y = [5, 6, 7, 8, 7] ranks: [1, 2, 3.5, 5, 3.5]
    // rank means are both 3; deviations dx = [-2,-.5,-.5,1,2], dy = [-2,-1,.5,2,.5]
    // Σdxdy = 4 + .5 - .25 + 2 + 1 = 7.25; Σdx² = 4+.25+.25+1+4 = 9.5; Σdy² = 4+1+.25+4+.25 = 9.5
    expect(spearman([1, 2, 2, 3, 4], [5, 6, 7, 8, 7])).toBeCloseTo(7.25 / 9.5, 12);
  });

  test('monotone → 1, reversed → -1, constant or NaN → NaN', () => {
    expect(spearman([1, 2, 3, 4], [10, 100, 1000, 1e4])).toBeCloseTo(1, 12);
    expect(spearman([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1, 12);
    expect(spearman([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(spearman([1, NaN, 3], [1, 2, 3])).toBeNaN();
    expect(pearson([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(() => spearman([1], [1, 2])).toThrow(/lengths differ/);
  });
});

describe('dataset readers (PAPER.md §6.2 table)', () => {
  const expected = { simlex999: ['old', 'new', 1.58], simverb3500: ['take', 'remove', 6.81], rg65: ['cord', 'smile', 0.02], ws353: ['love', 'sex', 6.77] } as const;
  for (const spec of Object.values(LEXSIM_DATASETS)) {
    test(`${spec.id}: ${spec.expectedRows} rows from the mirror copy`, () => {
      const pairs = parseWordPairs(fs.readFileSync(path.join(DATA, spec.mirrorDir, spec.file), 'utf8'), spec);
      expect(pairs).toHaveLength(spec.expectedRows);
      const [w1, w2, gold] = expected[spec.id];
      expect(pairs[0]).toEqual({ word1: w1, word2: w2, gold });
      for (const p of pairs) expect(p.word1).toBe(p.word1.trim());
    });
  }

  test('WS353 keeps the duplicate money/cash pair; RG65 graveyard/madhouse is 0.42', () => {
    const ws = parseWordPairs(fs.readFileSync(path.join(DATA, 'wordsim-353/WS353.csv'), 'utf8'), LEXSIM_DATASETS.ws353);
    expect(ws.filter((p) => p.word1 === 'money' && p.word2 === 'cash')).toHaveLength(2);
    const rg = parseWordPairs(fs.readFileSync(path.join(DATA, 'rg-65/RG65.csv'), 'utf8'), LEXSIM_DATASETS.rg65);
    expect(rg.find((p) => p.word1 === 'graveyard' && p.word2 === 'madhouse')?.gold).toBe(0.42);
  });

  test('bad rows say where', () => {
    expect(() => parseWordPairs('a;b\n', LEXSIM_DATASETS.rg65, 'RG65.csv')).toThrow(/RG65\.csv:1: expected at least 3 fields/);
    expect(() => parseWordPairs('a;b;high\n', LEXSIM_DATASETS.rg65, 'RG65.csv')).toThrow(/RG65\.csv:1: score "high" is not a number/);
  });
});

describe('similarity functions', () => {
  // two words, k = 2 senses, d = 2
  const u = { data: Float32Array.from([1, 0, 0, 1]), rows: 2, dim: 2 };
  const v = { data: Float32Array.from([1, 1, 0, -1]), rows: 2, dim: 2 };
  test('Cos flattens; MinPair/MaxPair compare sense ℓ with sense ℓ; MinAll/MaxAll all pairs; CosSense one sense', () => {
    expect(similarity('cos', u, v)).toBeCloseTo(0 / (Math.SQRT2 * Math.sqrt(3)), 12); // (1 + 0 + 0 - 1)
    expect(similarity('cossense0', u, v)).toBeCloseTo(1 / Math.SQRT2, 6);
    expect(similarity('cossense1', u, v)).toBeCloseTo(-1, 6);
    expect(similarity('minpair', u, v)).toBeCloseTo(-1, 6);
    expect(similarity('maxpair', u, v)).toBeCloseTo(1 / Math.SQRT2, 6);
    // all pairs: cos(u0,v0)=.707, cos(u0,v1)=0, cos(u1,v0)=.707, cos(u1,v1)=-1
    expect(similarity('minall', u, v)).toBeCloseTo(-1, 6);
    expect(similarity('maxall', u, v)).toBeCloseTo(1 / Math.SQRT2, 6);
    expect(() => similarity('cossense2', u, v)).toThrow(/only 2 senses/);
  });
  test('method names and zero vectors', () => {
    expect(parseMethod('CosSense12')).toBe('cossense12');
    expect(parseMethod('minpair')).toBe('minpair');
    expect(() => parseMethod('euclid')).toThrow(/unknown similarity method/);
    expect(cosine(new Float32Array(2), 0, Float32Array.from([1, 0]), 0, 2)).toBe(0);
  });
});

describe('lexical-similarity runs', () => {
  // Pieces " cat", " dog", " car" are single tokens; other words split into characters.
  const tok = new PieceTokenizer([' cat', ' dog', '~~', ' car']); // '~~' spaces the ids so no cosines tie
  const id = (p: string) => tok.encode(p)[0];
  const d = 2;
  const k = 2;
  // Sense 0 of each id points at angle id (radians); sense 1 at angle 2·id. Embeddings at angle 3·id.
  const angle = (a: number) => [Math.cos(a), Math.sin(a)];
  const model = new FixedVectorModel(tok.vocabSize, d, k, (i) => [angle(i), angle(2 * i)], (i) => angle(3 * i));

  test('single-token words: CosSense0 equals cos of the angle difference; ρ from the hand ranks', async () => {
    const pairs = [
      { word1: 'cat', word2: 'dog', gold: 3 },
      { word1: 'cat', word2: 'car', gold: 1 },
      { word1: 'dog', word2: 'car', gold: 2 },
    ];
    const r = await evaluateLexsim(model, tok, pairs, { vectors: 'senses', subwords: 'mean', methods: ['cossense0', 'cos'] });
    const sims = pairs.map((p) => Math.cos(id(' ' + p.word1) - id(' ' + p.word2)));
    expect(r.n).toBe(3);
    expect(r.oov).toBe(0);
    expect(r.multiSubwordWords).toBe(0);
    expect(r.scores[0].method).toBe('cossense0');
    expect(r.scores[0].spearman).toBeCloseTo(spearman(pairs.map((p) => p.gold), sims), 12);
    expect(r.scores).toHaveLength(2);
  });

  test('multi-subword words: mean vs first subword; unknown characters are counted as OOV and left out', async () => {
    const pairs = [
      { word1: 'cat', word2: 'ab', gold: 1 },
      { word1: 'dog', word2: 'ab', gold: 2 },
      { word1: 'car', word2: 'zz', gold: 3 },
      { word1: 'cat', word2: 'é', gold: 4 }, // 'é' is not a piece → <unk>
    ];
    const mean = await evaluateLexsim(model, tok, pairs, { vectors: 'embedding', subwords: 'mean' });
    expect(mean.pairs).toBe(4);
    expect(mean.oov).toBe(1);
    expect(mean.n).toBe(3);
    expect(mean.multiSubwordWords).toBe(3); // " ab", " zz", " é" are each [" ", ...]
    expect(mean.multiSubwordPairs).toBe(4);
    // hand: " ab" = mean of embedding rows of ' ', 'a', 'b'
    const avg = (ids: number[]) => {
      const v = [0, 0];
      for (const i of ids) angle(3 * i).forEach((x, j) => (v[j] += x / ids.length));
      return v;
    };
    const cos2 = (a: number[], b: number[]) => (a[0] * b[0] + a[1] * b[1]) / (Math.hypot(a[0], a[1]) * Math.hypot(b[0], b[1]));
    const ab = avg(tok.encode(' ab'));
    const zz = avg(tok.encode(' zz'));
    const sims = [cos2(angle(3 * id(' cat')), ab), cos2(angle(3 * id(' dog')), ab), cos2(angle(3 * id(' car')), zz)];
    expect(mean.scores[0].spearman).toBeCloseTo(spearman([1, 2, 3], sims), 10);
    const first = await evaluateLexsim(model, tok, pairs, { vectors: 'embedding', subwords: 'first' });
    // with the first subword, " ab" and " zz" are both the space piece
    const simsFirst = [cos2(angle(3 * id(' cat')), angle(3 * id(' '))), cos2(angle(3 * id(' dog')), angle(3 * id(' '))), cos2(angle(3 * id(' car')), angle(3 * id(' ')))];
    expect(first.scores[0].spearman).toBeCloseTo(spearman([1, 2, 3], simsFirst), 10);
  });

  test('default sense methods include every CosSense; embeddings refuse sense methods', async () => {
    const pairs = [{ word1: 'cat', word2: 'dog', gold: 1 }, { word1: 'cat', word2: 'car', gold: 2 }];
    const r = await evaluateLexsim(model, tok, pairs, { vectors: 'senses', subwords: 'mean' });
    expect(r.scores.map((s) => s.method)).toEqual(['cos', 'minpair', 'maxpair', 'minall', 'maxall', 'cossense0', 'cossense1']);
    await expect(evaluateLexsim(model, tok, pairs, { vectors: 'embedding', subwords: 'mean', methods: ['minpair'] })).rejects.toThrow(/needs sense vectors/);
  });
});

describe('result placement', () => {
  test('parameter counts reproduce PAPER.md §3.2 / Table 8', async () => {
    const { parameterCounts } = await import('../activities/evaluation/placement');
    const base = { vocabSize: 50264, realVocabSize: 50257, nPositions: 512, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 };
    expect(parameterCounts({ ...base, arch: 'gpt2', nEmbd: 768, nLayer: 12, nHead: 12 }).total).toBe(124_051_968);
    expect(parameterCounts({ ...base, arch: 'backpack', nEmbd: 768, nLayer: 12, nHead: 12, numSenses: 16, senseIntermediateScale: 4 }).total).toBe(170_083_584);
    const k1 = parameterCounts({ ...base, arch: 'backpack', nEmbd: 640, nLayer: 8, nHead: 8, numSenses: 1, shrinkSenseMlp: true });
    expect(k1).toEqual({ total: 74_351_360, contextual: 72_706_560 });
    expect(parameterCounts({ ...base, arch: 'backpack', nEmbd: 640, nLayer: 8, nHead: 8, numSenses: 64, shrinkSenseMlp: true }).total).toBe(100_196_480);
  });

  test('model labels from matrix values', async () => {
    const { modelLabelFrom, table4RowLabel } = await import('../activities/evaluation/placement');
    expect(modelLabelFrom({ arch: 'backpack', size: 'micro' }, undefined, 'x')).toBe('Backpack-Micro');
    expect(modelLabelFrom({ arch: 'gpt2', size: 'small' }, undefined, 'x')).toBe('Transformer-Small');
    expect(modelLabelFrom({ senses: 4 }, 'backpack', 'x')).toBe('Backpack k=4');
    expect(modelLabelFrom({ model: { id: 'bp-mini', label: 'Backpack-Mini' } }, undefined, 'x')).toBe('Backpack-Mini');
    expect(modelLabelFrom({}, 'gpt2', 'step/item')).toBe('step/item');
    expect(table4RowLabel('senses/cossense12/mean', 'backpack', 'Backpack-Small')).toBe('Sim12 (Backpack-Small, sense 12)');
    expect(table4RowLabel('senses/minpair/mean', 'backpack', 'Backpack-Small')).toBe('Sim_min (Backpack-Small)');
    expect(table4RowLabel('embedding/cos/mean', 'gpt2', 'Transformer-Small')).toBe('Transformer-Small (embeddings)');
  });
});
