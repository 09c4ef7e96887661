import * as fs from 'fs';
import * as path from 'path';
import { evaluateBlimp, parseBlimp, scoreBlimpPair, BLIMP_PARADIGMS } from '../activities/evaluation/blimp';
import { evaluateLambada, parseLambada, splitLambada } from '../activities/evaluation/lambada';
import {
  countBytes,
  countWords,
  detokenizeWikitext,
  evaluateWikitext,
  splitWikitextPages,
} from '../activities/evaluation/wikitext';
import { PieceTokenizer, UnigramModel } from './helpers/eval-toys';
import { SHARED_DATA } from './helpers/shared-data';

const DATA = SHARED_DATA;

describe('LAMBADA', () => {
  test('split is text.rsplit(" ", 1) with the space moved onto the target word', () => {
    expect(splitLambada('the cat sat on the mat')).toEqual({ context: 'the cat sat on the', continuation: ' mat' });
    expect(splitLambada('he said "hello"\n\nand then left')).toEqual({ context: 'he said "hello"\n\nand then', continuation: ' left' });
    // trailing space: Python gives ['a b', ''] → the target is a lone space
    expect(splitLambada('a b ')).toEqual({ context: 'a b', continuation: ' ' });
    expect(() => splitLambada('single')).toThrow(/no space/);
  });

  test('reader names the bad line', () => {
    expect(() => parseLambada('{"text": "a b"}\n{oops}\n', 'x.jsonl')).toThrow(/x\.jsonl:2: not JSON/);
    expect(() => parseLambada('{"txt": "a b"}\n', 'x.jsonl')).toThrow(/x\.jsonl:1: missing string field "text"/);
  });

  test('the mirror file has 5,153 passages', () => {
    const docs = parseLambada(fs.readFileSync(path.join(DATA, 'lambada-openai/lambada_test.jsonl'), 'utf8'));
    expect(docs).toHaveLength(5153);
    expect(docs.every((d) => d.continuation.startsWith(' ') && !d.continuation.slice(1).includes(' '))).toBe(true);
  });

  test('PPL is exp(-mean per-word LL) and ACC is greedy, by hand on a unigram model', async () => {
    const tok = new PieceTokenizer();
    const V = tok.vocabSize;
    const x = tok.encode('x')[0];
    const y = tok.encode('y')[0];
    const space = tok.encode(' ')[0];
    const logits = new Array(V).fill(0);
    logits[x] = 3; // x is the argmax
    logits[space] = 2;
    const model = new UnigramModel(logits);
    const lp = model.row;
    const docs = [splitLambada('a b x'), splitLambada('c yx'), splitLambada('q x')];
    // targets: " x" = [space, x]; " yx" = [space, y, x] ; " x"
    const lls = [lp[space] + lp[x], lp[space] + lp[y] + lp[x], lp[space] + lp[x]];
    const r = await evaluateLambada(model, tok, docs);
    expect(r.n).toBe(3);
    expect(r.ppl).toBeCloseTo(Math.exp(-(lls[0] + lls[1] + lls[2]) / 3), 3);
    // greedy fails everywhere: the space is never the argmax
    expect(r.acc).toBe(0);
    expect(r.meanTargetTokens).toBeCloseTo(7 / 3, 10);
    // With " x" as one piece that is the argmax, the two " x" targets are greedy-decodable, " yx" is not.
    const tok2 = new PieceTokenizer([' x']);
    const logits2 = new Array(tok2.vocabSize).fill(0);
    const spaceX = tok2.encode(' x');
    expect(spaceX).toHaveLength(1);
    logits2[spaceX[0]] = 5;
    const r2 = await evaluateLambada(new UnigramModel(logits2), tok2, docs);
    expect(r2.acc).toBeCloseTo(2 / 3, 12);
  });
});

describe('WikiText-2', () => {
  const raw = [
    ' = Alpha = ',
    ' ',
    ' Alpha is a 1 @,@ 000 @-@ year thing . ',
    ' = = History = = ',
    ' It ( was ) " big " . ',
    ' = Beta = ',
    ' Beta \'s parts : one ; two ',
    '',
  ].join('\n');

  test('pages start at top-level headings; sub-headings stay in the page', () => {
    const pages = splitWikitextPages(raw);
    expect(pages).toEqual([
      ' = Alpha = \n \n Alpha is a 1 @,@ 000 @-@ year thing . \n = = History = = \n It ( was ) " big " . ',
      ' = Beta = \n Beta \'s parts : one ; two \n',
    ]);
    // text before the first heading that is blank is dropped; the final page is always emitted
    expect(splitWikitextPages(' \n = A = \n x')).toEqual([' = A = \n x']);
    expect(splitWikitextPages('')).toEqual(['']);
  });

  test('detokenizer applies the harness rules in order', () => {
    expect(detokenizeWikitext(' Alpha is a 1 @,@ 000 @-@ year thing . ')).toBe(' Alpha is a 1,000-year thing. ');
    expect(detokenizeWikitext(' It ( was ) " big " . ')).toBe(' It (was) "big". ');
    expect(detokenizeWikitext(" Beta 's parts : one ; two ")).toBe(" Beta's parts: one; two ");
    expect(detokenizeWikitext(' = = History = = \n a N b')).toBe(' == History ==\na 1 b');
    expect(detokenizeWikitext('xN y')).toBe('xN y'); // " N " needs spaces on both sides
    expect(detokenizeWikitext('the players \' union')).toBe("the players' union");
    expect(detokenizeWikitext('45 ° C [ 3 ]')).toBe('45°C [3]');
  });

  test('words = len(re.split(r"\\s+", page)) on the original page; bytes are UTF-8', () => {
    expect(countWords(' = Beta = \n x')).toBe(5); // ['', '=', 'Beta', '=', 'x']
    expect(countWords('a b ')).toBe(3);
    expect(countWords('')).toBe(1);
    expect(countBytes('°')).toBe(2);
  });

  test('word/byte perplexity and bits per byte over rolling windows, by hand on a unigram model', async () => {
    const tok = new PieceTokenizer();
    const logits = Array.from({ length: tok.vocabSize }, (_, i) => (i % 7) / 3);
    const model = new UnigramModel(logits);
    const pages = splitWikitextPages(raw);
    let ll = 0;
    for (const p of pages) for (const id of tok.encode(detokenizeWikitext(p))) ll += model.row[id];
    const words = pages.reduce((s, p) => s + countWords(p), 0);
    const bytes = pages.reduce((s, p) => s + countBytes(p), 0);
    const r = await evaluateWikitext(model, tok, pages, undefined, 16); // 16-token windows: several per page
    expect(r.n).toBe(2);
    expect(r.words).toBe(words);
    expect(r.word_perplexity / Math.exp(-ll / words)).toBeCloseTo(1, 5); // float32 log-probs
    expect(r.byte_perplexity).toBeCloseTo(Math.exp(-ll / bytes), 4);
    expect(r.bits_per_byte).toBeCloseTo(-ll / bytes / Math.LN2, 4);
  });

  test('the (non-canonical) mirror file splits into pages', () => {
    const pages = splitWikitextPages(fs.readFileSync(path.join(DATA, 'wikitext-2-raw_NONCANONICAL/wiki.test.raw'), 'utf8'));
    expect(pages.length).toBeGreaterThan(50);
    expect(pages[0].startsWith(' = Robert Boulter =')).toBe(true);
  });
});

describe('BLiMP', () => {
  test('a pair counts only when the good sentence is strictly more likely', async () => {
    const tok = new PieceTokenizer();
    const logits = new Array(tok.vocabSize).fill(0);
    logits[tok.encode('a')[0]] = 2;
    const model = new UnigramModel(logits);
    expect((await scoreBlimpPair(model, tok, { good: 'aa', bad: 'ab' })).correct).toBe(true);
    expect((await scoreBlimpPair(model, tok, { good: 'ab', bad: 'aa' })).correct).toBe(false);
    expect((await scoreBlimpPair(model, tok, { good: 'bb', bad: 'cc' })).correct).toBe(false); // tie → wrong
    // shorter is likelier under a unigram model
    expect((await scoreBlimpPair(model, tok, { good: 'b', bad: 'bb' })).correct).toBe(true);
  });

  test('accuracy is the mean of per-paradigm accuracies', async () => {
    const tok = new PieceTokenizer();
    const model = new UnigramModel(new Array(tok.vocabSize).fill(0)); // uniform: shorter wins
    const r = await evaluateBlimp(model, tok, [
      { paradigm: 'p1', pairs: [{ good: 'a', bad: 'aa' }, { good: 'aa', bad: 'a' }] }, // 1/2
      { paradigm: 'p2', pairs: [{ good: 'a', bad: 'aaa' }, { good: 'b', bad: 'bb' }, { good: 'c', bad: 'cc' }, { good: 'cc', bad: 'c' }] }, // 3/4
    ]);
    expect(r.paradigms).toEqual([
      { paradigm: 'p1', acc: 0.5, n: 2 },
      { paradigm: 'p2', acc: 0.75, n: 4 },
    ]);
    expect(r.acc).toBeCloseTo(0.625, 12); // not the pooled 4/6
    expect(r.n).toBe(6);
  });

  test('67 paradigm files of 1,000 pairs each are in the mirror', () => {
    expect(BLIMP_PARADIGMS).toHaveLength(67);
    const files = fs.readdirSync(path.join(DATA, 'blimp')).filter((f) => f.endsWith('.jsonl')).map((f) => f.replace(/\.jsonl$/, ''));
    expect(files.sort()).toEqual([...BLIMP_PARADIGMS].sort());
    const pairs = parseBlimp(fs.readFileSync(path.join(DATA, 'blimp/adjunct_island.jsonl'), 'utf8'));
    expect(pairs).toHaveLength(1000);
    expect(() => parseBlimp('{"sentence_good": "x"}', 'f.jsonl')).toThrow(/f\.jsonl:1: needs string fields/);
  });
});

describe('data sources', () => {
  test('resolveDataFile: --file, then upstream dirs, then the registry through the mirror (verified copy in the cache)', async () => {
    const { resolveDataFile } = await import('../activities/evaluation/sources');
    const os = await import('os');
    await expect(resolveDataFile('lambada_openai', 'lambada_test.jsonl', { explicit: '/nonexistent/x.jsonl' })).rejects.toThrow(/--file \/nonexistent\/x\.jsonl: no such file/);
    expect(await resolveDataFile('rg65', 'RG65.csv', { dirs: [path.join(DATA, 'rg-65')] })).toBe(path.join(DATA, 'rg-65/RG65.csv'));
    const saved = { mirror: process.env.PIPELINE_DATA_MIRROR, cache: process.env.PIPELINE_CACHE_DIR };
    process.env.PIPELINE_DATA_MIRROR = DATA;
    process.env.PIPELINE_CACHE_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-cache-'));
    try {
      const got = await resolveDataFile('rg65', 'RG65.csv');
      expect(got.startsWith(process.env.PIPELINE_CACHE_DIR)).toBe(true);
      expect(fs.readFileSync(got)).toEqual(fs.readFileSync(path.join(DATA, 'rg-65/RG65.csv')));
    } finally {
      for (const [k, v] of [['PIPELINE_DATA_MIRROR', saved.mirror], ['PIPELINE_CACHE_DIR', saved.cache]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
