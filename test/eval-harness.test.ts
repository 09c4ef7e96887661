import { type LoglikelihoodResult, harnessInput, loglikelihoodMany, loglikelihoodTokens, rollingLoglikelihood, rollingWindows } from '../activities/evaluation/harness';
import { countWindows, evaluateWindowPerplexity } from '../activities/evaluation/owt';
import { PositionalBigramModel, UnigramModel, logSoftmax } from './helpers/eval-toys';

describe('harness loglikelihood primitive', () => {
  test('input is (ctx + cont)[-(L+1):][:-1]', () => {
    expect(harnessInput([1, 2, 3], [4, 5], 512)).toEqual([1, 2, 3, 4]);
    // truncation keeps the last L + 1 tokens, then drops the final one
    expect(harnessInput([1, 2, 3, 4, 5, 6], [7, 8], 4)).toEqual([4, 5, 6, 7]);
    expect(() => harnessInput([1], [], 4)).toThrow(/empty continuation/);
    expect(() => harnessInput([1], [1, 2, 3, 4, 5], 4)).toThrow(/exceeds max length/);
  });

  test('LL sums the continuation rows and checks greedy, by hand on a unigram model', async () => {
    // p = softmax([0, ln 2, ln 5]) = [1/8, 2/8, 5/8]
    const model = new UnigramModel([0, Math.log(2), Math.log(5)]);
    const r = await loglikelihoodTokens(model, [0], [2, 2]);
    expect(r.ll).toBeCloseTo(2 * Math.log(5 / 8), 6);
    expect(r.greedy).toBe(true);
    expect(r.tokens).toBe(2);
    const r2 = await loglikelihoodTokens(model, [0], [2, 1]);
    expect(r2.ll).toBeCloseTo(Math.log(5 / 8) + Math.log(2 / 8), 6);
    expect(r2.greedy).toBe(false);
  });

  test('continuation rows are the last |cont| positions of the truncated input', async () => {
    const model = new PositionalBigramModel(7, 3); // padding rows with a large logit: they must be sliced off
    // L = 4: whole = [1,2,3,4,5,6] → input [2,3,4,5]; cont [5,6] is scored at rows 2 and 3
    const r = await loglikelihoodTokens(model, [1, 2, 3, 4], [5, 6], 4);
    const expected = model.logProb(4, 2, 5) + model.logProb(5, 3, 6);
    expect(r.ll).toBeCloseTo(expected, 5);
  });

  test('batched requests (right-padded, sorted by length) give the same results as one at a time, in order', async () => {
    const model = new PositionalBigramModel(13, 1);
    const requests = [
      { context: [1, 2, 3], continuation: [4] },
      { context: [5], continuation: [6, 7, 8, 9, 10] },
      { context: [12, 0, 1, 2, 3, 4, 5, 6], continuation: [7, 8] }, // truncated at L = 6
      { context: [2], continuation: [3, 4] },
    ];
    const sequential = { config: model.config, logProbs: (t: Int32Array) => model.logProbs(t), outputEmbeddings: () => model.outputEmbeddings() };
    const expected: LoglikelihoodResult[] = [];
    for (const r of requests) expected.push(await loglikelihoodTokens(sequential, r.context, r.continuation, 6));
    const progress: number[] = [];
    model.calls = 0;
    const got = await loglikelihoodMany(model, requests, { maxLength: 6, onProgress: (d) => progress.push(d) });
    expect(model.calls).toBe(1); // one batched forward
    expect(progress).toEqual([4]);
    got.forEach((g, i) => {
      expect(g.ll).toBeCloseTo(expected[i].ll, 5);
      expect(g.greedy).toBe(expected[i].greedy);
      expect(g.tokens).toBe(requests[i].continuation.length);
    });
  });

  test('a continuation longer than the context is scored in chunks (each token once, with all the context that fits)', async () => {
    const model = new PositionalBigramModel(11, 1);
    // L = 4, context [9], continuation 6 tokens: chunk 1 = [1,2,3,4] from input [9,1,2,3]; chunk 2 = [5,6] from input [2,3,4,5]
    const r = (await loglikelihoodMany(model, [{ context: [9], continuation: [1, 2, 3, 4, 5, 6] }], { maxLength: 4 }))[0];
    const expected =
      model.logProb(9, 0, 1) + model.logProb(1, 1, 2) + model.logProb(2, 2, 3) + model.logProb(3, 3, 4) + model.logProb(4, 2, 5) + model.logProb(5, 3, 6);
    expect(r.ll).toBeCloseTo(expected, 5);
    expect(r.tokens).toBe(6);
  });

  test('an empty context is refused (callers pass [eos])', async () => {
    await expect(loglikelihoodTokens(new UnigramModel([0, 0]), [], [1])).rejects.toThrow(/empty context/);
  });
});

describe('rolling windows', () => {
  test('L = 4, n = 10: windows, contexts and disjoint continuations as the harness makes them', () => {
    const t = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
    const w = rollingWindows(t, 99, 4);
    expect(w).toEqual([
      { context: [99], continuation: [10, 11, 12, 13] },
      // input t[3:7] predicts t[4:8]: context = input minus overlap = [t3]
      { context: [13], continuation: [14, 15, 16, 17] },
      // final short window: full input t[5:9], scores only t[8:10]
      { context: [15, 16, 17], continuation: [18, 19] },
    ]);
    const predicted = w.flatMap((x) => x.continuation);
    expect(predicted).toEqual(t); // every token exactly once
  });

  test('short sequence: one window with the eos prefix; empty sequence: none', () => {
    expect(rollingWindows([5, 6], 0, 4)).toEqual([{ context: [0], continuation: [5, 6] }]);
    expect(rollingWindows([], 0, 4)).toEqual([]);
  });

  test('rolling log-likelihood equals the closed form for each token at its position and predecessor', async () => {
    const V = 11;
    const model = new PositionalBigramModel(V, 2.5);
    const t = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
    const eos = 10;
    // Hand-derived for L = 4 (see the windows above): (previous token, input position, target)
    const triples: Array<[number, number, number]> = [
      [eos, 0, t[0]], [t[0], 1, t[1]], [t[1], 2, t[2]], [t[2], 3, t[3]], // window 1: [eos, t0, t1, t2]
      [t[3], 0, t[4]], [t[4], 1, t[5]], [t[5], 2, t[6]], [t[6], 3, t[7]], // window 2: input t[3:7]
      [t[7], 2, t[8]], [t[8], 3, t[9]], // window 3: input t[5:9], last two rows
    ];
    const expected = triples.reduce((s, [prev, pos, target]) => s + model.logProb(prev, pos, target), 0);
    expect(await rollingLoglikelihood(model, t, eos, 4)).toBeCloseTo(expected, 4);
    // window length ≥ n: a single window, every position equal to the index
    const single = t.reduce((s, x, i) => s + model.logProb(i === 0 ? eos : t[i - 1], i, x), 0);
    expect(await rollingLoglikelihood(model, t, eos, 512)).toBeCloseTo(single, 4);
  });
});

describe('windowed stream perplexity (OWT validation)', () => {
  test('window count drops the tail', () => {
    expect(countWindows(4_434_897, 512)).toBe(8661); // PAPER.md §5
    expect(countWindows(9, 4)).toBe(2);
    expect(countWindows(8, 4)).toBe(1);
    expect(countWindows(1, 4)).toBe(0);
  });

  test('native-style forward: softmax over all padded rows, closed form', async () => {
    const model = new PositionalBigramModel(5, 1.5); // vocabSize 8: 3 padding rows with logit 1.5
    const stream = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]; // L = 4 → 2 windows, tail [4, ?] dropped
    let nll = 0;
    for (let w = 0; w < 2; w++) {
      for (let j = 0; j < 4; j++) {
        const prev = stream[4 * w + j];
        nll -= logSoftmax(model.logitsAt(prev, j))[stream[4 * w + j + 1]];
      }
    }
    const r = await evaluateWindowPerplexity(model, Uint16Array.from(stream), { windowLength: 4, batch: 3 });
    expect(r.n).toBe(2);
    expect(r.tokens).toBe(8);
    expect(r.softmaxRows).toBe('all');
    expect(r.loss).toBeCloseTo(nll / 8, 5);
    expect(r.ppl).toBeCloseTo(Math.exp(nll / 8), 4);
  });

  test('without forward the real-vocabulary log-probs are used; --limit caps windows', async () => {
    const model = new UnigramModel([0, Math.log(3)]); // p = [1/4, 3/4]
    const stream = Uint32Array.from([0, 1, 1, 0, 1, 1, 1, 1, 0]);
    const r = await evaluateWindowPerplexity(model, stream, { windowLength: 2, limit: 2 });
    // windows: targets [1,1] and [0,1]
    const nll = -(3 * Math.log(3 / 4) + Math.log(1 / 4));
    expect(r.softmaxRows).toBe('real');
    expect(r.n).toBe(2);
    expect(r.ppl).toBeCloseTo(Math.exp(nll / 4), 5);
    await expect(evaluateWindowPerplexity(model, Uint16Array.from([1, 2]), { windowLength: 2 })).rejects.toThrow(/no 2-token window/);
  });
});
