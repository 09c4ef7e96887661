/**
 * The GPT-2 tokenizer against the reference implementations (tiktoken's Rust core via WASM,
 * gpt-tokenizer, js-tiktoken): exact ids on the mirror's texts plus the npm corpora (several MB)
 * and on committed tricky cases; published vocab.bpe checksum; PAPER.md §9.9 vectors; the trained
 * tokenizer artifact round trip.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { get_encoding, type Tiktoken } from 'tiktoken';
import { encode as gptTokenizerEncode } from 'gpt-tokenizer/cjs/encoding/r50k_base';
import { getEncoding } from 'js-tiktoken';
import { brownCorpus } from '../datasets/corpora/brown';
import { nlpCorpus } from '../datasets/corpora/nlp-corpus';
import { singleTokenProfessions } from '../datasets/gender';
import { validationPrefix } from '../datasets/corpora/openwebtext';
import {
  loadGpt2Model, loadTokenizer, renderVocabBpe, writeTokenizerArtifact, trainTokenizer, pretokenize, GPT2_EOS_ID, type Tokenizer,
} from '../datasets/tokenizer';
import { SHARED_DATA } from './helpers/shared-data';

const DATA = SHARED_DATA;

/** Hand-picked cases where tokenizers tend to go wrong. */
export const TRICKY_CASES: string[] = [
  '', ' ', '  ', '\n', '\n\n\n', ' \n ', '\t\tx', 'a  b', 'a   b', 'x \n y', 'end   ', '   start',
  "I'm can't won't it's we've they're you'll he'd", "I'M CAN'T IT'S", "'s 'S ''s ' s", "rock 'n' roll", "'''", "O'Neil's",
  'hello world', 'Hello, World!', 'e-mail: someone@example.com, https://example.com/a?b=c&d=e#f',
  '123 4567 3.14159 1,000,000 2023-01-01', 'x²+y³=z⁴ ½ ⅓ Ⅻ ٣٤٥ १२३',
  'naïve café résumé Ñandú Straße İstanbul', 'Привет, мир! Ελληνικά 中文字符 日本語のテキスト 한국어 텍스트',
  'עברית العربية हिन्दी ไทย', 'emoji 😀😃😄 👨‍👩‍👧‍👦 🇺🇸 👍🏽 ❤️', '𝐀𝐁𝐂 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛',
  'zero\u200bwidth\u200cjoiners\u200d', 'nbsp\u00a0here \u00a0 and\u3000ideographic', 'line\u2028sep\u2029para',
  'tabs\tand\u000bvertical\u000cfeed\rreturn', 'control\u0001\u0002\u007f chars', 'combining e\u0301 a\u0308',
  'The <|endoftext|> literal', '<|endoftext|><|endoftext|>', 'a<|endoftext|>b', '<|endoftext|',
  '----------------------------------------', '================', '!!!???...,,,;;;', '((()))[[[]]]{{{}}}',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis',
  ' '.repeat(100) + 'x', 'x' + '\n'.repeat(50), '0123456789'.repeat(20), 'ab'.repeat(300), '😀'.repeat(40),
  'mixed\u0085nel \u0085x y\ufeffz \ufeffw',
];

function readMirrorTexts(): string[] {
  const texts = [
    fs.readFileSync(path.join(DATA, 'wikitext-2-raw_NONCANONICAL/wiki.test.raw'), 'utf8'),
    fs.readFileSync(path.join(DATA, 'lambada-openai/lambada_test.jsonl'), 'utf8'),
    ...JSON.parse(fs.readFileSync(path.join(DATA, 'openwebtext/val-100len.json'), 'utf8')),
    fs.readFileSync(path.join(DATA, 'tweet-topic-multilingual-en/en_1000.jsonl'), 'utf8'),
    fs.readFileSync(path.join(DATA, 'simverb-3500/SimVerb-3500.txt'), 'utf8'),
    fs.readFileSync(path.join(DATA, 'simlex-999/SimLex-999.txt'), 'utf8'),
    fs.readFileSync(path.join(DATA, 'gender-bias-debiaswe/gender_specific_full.json'), 'utf8'),
    fs.readFileSync(path.join(DATA, 'blimp/adjunct_island.jsonl'), 'utf8'),
    fs.readFileSync(path.join(DATA, 'MANIFEST.md'), 'utf8'),
  ];
  return texts;
}

async function collect(it: AsyncIterable<string>, maxChars: number): Promise<string[]> {
  const out: string[] = [];
  let n = 0;
  for await (const d of it) {
    out.push(d);
    n += d.length;
    if (n >= maxChars) break;
  }
  return out;
}

let gpt2: Tokenizer;
let tiktoken: Tiktoken;

beforeAll(async () => {
  gpt2 = await loadTokenizer('gpt2');
  tiktoken = get_encoding('gpt2');
});
afterAll(() => tiktoken.free());

describe('GPT-2 vocabulary', () => {
  test('the recovered merge list re-creates vocab.bpe byte for byte (published sha256)', () => {
    const text = renderVocabBpe(loadGpt2Model());
    expect(createHash('sha256').update(text).digest('hex')).toBe('1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5');
    expect(text.split('\n').length - 2).toBe(50000);
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.eosId).toBe(50256);
  });

  test('PAPER.md §9.9 test vectors and the §6.3 topic target ids', () => {
    expect(gpt2.encode('hello\n\nhello')).toEqual([31373, 198, 198, 31373]);
    const single: Record<string, number> = { ' he': 339, ' she': 673, ' they': 484, ' X': 1395, ' MacBook': 28084, ' Apple': 4196, ' HP': 6574 };
    for (const [text, id] of Object.entries(single)) expect(gpt2.encode(text)).toEqual([id]);
    expect(gpt2.encode(' diaries')).toEqual([2566, 3166]);
    const topicIds: Record<string, number> = {
      arts: 10848, culture: 3968, business: 1597, entrepreneurs: 17038, celebrity: 16527, pop: 1461, diaries: 2566, daily: 4445,
      life: 1204, family: 1641, fashion: 6977, style: 3918, film: 2646, tv: 31557, video: 2008, fitness: 13547, health: 1535,
      food: 2057, dining: 17423, gaming: 7776, music: 2647, news: 1705, social: 1919, concern: 2328, hobbies: 45578,
      relationships: 6958, sports: 5701, travel: 3067, adventure: 8855, youth: 6205, student: 3710,
    };
    for (const [word, id] of Object.entries(topicIds)) expect(gpt2.encode(` ${word}`)[0]).toBe(id);
  });

  test('30 of the 40 professions are single tokens (PAPER.md §6.6)', () => {
    const single = singleTokenProfessions((t) => gpt2.encode(t));
    expect(single).toHaveLength(30);
    for (const dropped of ['janitor', 'receptionist', 'housekeeper', 'cashier', 'laborer', 'carpenter', 'librarian', 'salesperson', 'mover', 'hairdresser']) {
      expect(single).not.toContain(dropped);
    }
  });
});

describe('parity with reference tokenizers', () => {
  test('tricky cases: identical ids to tiktoken (Rust regex) in ordinary and special mode', () => {
    const mismatches: string[] = [];
    for (const text of TRICKY_CASES) {
      const ours = gpt2.encodeOrdinary(text);
      const ref = Array.from(tiktoken.encode_ordinary(text));
      if (JSON.stringify(ours) !== JSON.stringify(ref)) mismatches.push(JSON.stringify(text));
      const oursSpecial = gpt2.encode(text);
      const refSpecial = Array.from(tiktoken.encode(text, 'all'));
      if (JSON.stringify(oursSpecial) !== JSON.stringify(refSpecial)) mismatches.push(`special: ${JSON.stringify(text)}`);
    }
    expect(mismatches).toEqual([]);
  });

  test('tricky cases: identical to gpt-tokenizer and js-tiktoken except where JavaScript\'s \\s differs (U+0085, U+FEFF)', () => {
    const js = getEncoding('gpt2');
    for (const text of TRICKY_CASES) {
      if (/[\u0085\ufeff]/.test(text)) continue;
      const ours = gpt2.encodeOrdinary(text);
      expect({ text, ids: gptTokenizerEncode(text, { disallowedSpecial: new Set() }) }).toEqual({ text, ids: ours });
      expect({ text, ids: js.encode(text, [], []) }).toEqual({ text, ids: ours });
    }
  });

  test('literal <|endoftext|> is 50256 by default and ordinary text in ordinary mode', () => {
    expect(gpt2.encode('a<|endoftext|>b')).toEqual([64, GPT2_EOS_ID, 65]);
    expect(gpt2.encodeOrdinary('a<|endoftext|>b')).not.toContain(GPT2_EOS_ID);
    expect(gpt2.decode(gpt2.encodeOrdinary('a<|endoftext|>b'))).toBe('a<|endoftext|>b');
    expect(gpt2.decode([GPT2_EOS_ID])).toBe('<|endoftext|>');
  });

  test('≥ 1 MB of mirror texts and corpora: zero mismatches, exact round trip', async () => {
    const docs = [
      ...readMirrorTexts(),
      ...(await collect(brownCorpus().documents(), 500_000)),
      ...(await collect(nlpCorpus().documents(), 500_000)),
    ];
    let chars = 0;
    let tokens = 0;
    const mismatched: number[] = [];
    docs.forEach((doc, i) => {
      const ours = gpt2.encodeOrdinary(doc);
      const ref = tiktoken.encode_ordinary(doc);
      chars += doc.length;
      tokens += ours.length;
      if (ours.length !== ref.length || ours.some((id, k) => id !== ref[k])) mismatched.push(i);
      if (gpt2.decode(ours) !== doc) mismatched.push(-i - 1);
    });
    expect(chars).toBeGreaterThan(6_000_000);
    expect(mismatched).toEqual([]);
    expect(tokens).toBeGreaterThan(1_000_000);
  });

  test('pre-tokenisation matches the GPT-2 regex run by JavaScript on text without U+0085/U+FEFF', () => {
    const re = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
    for (const text of [...TRICKY_CASES.filter((t) => !/[\u0085\ufeff]/.test(t)), readMirrorTexts()[0].slice(0, 200_000)]) {
      expect(pretokenize(text)).toEqual(text.match(re) ?? []);
    }
  });
});

test('the authors\' MAUVE references (val-100len.json) re-encode as PAPER.md §6.5 says: 98-100 tokens, 3,924 of exactly 100', () => {
  const refs: string[] = JSON.parse(fs.readFileSync(path.join(DATA, 'openwebtext/val-100len.json'), 'utf8'));
  const lengths: Record<number, number> = {};
  for (const s of refs) {
    const n = gpt2.encode(s).length;
    lengths[n] = (lengths[n] ?? 0) + 1;
  }
  expect(refs).toHaveLength(4007);
  expect(lengths).toEqual({ 98: 1, 99: 82, 100: 3924 });
  // A prefix of a prefix is itself: the helper that builds references is stable on them.
  for (const s of refs.slice(0, 500)) expect(validationPrefix(s.slice('<|endoftext|>'.length), gpt2)).toBe(s);
});

describe('trained tokenizer artifacts', () => {
  test('train → tokenizer.json → loadTokenizer(dir): same ids, round trip, EOS last', async () => {
    const docs = await collect(brownCorpus().documents(), 400_000);
    const { tokenizer, result } = trainTokenizer('brown-600', docs, { vocabSize: 600 });
    expect(result.merges).toBe(600 - 257);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-'));
    writeTokenizerArtifact(dir, result.model, { name: 'brown-600' });
    // plain Hugging Face layout: no keys `tokenizers` would reject
    expect(Object.keys(JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'))).sort()).toEqual(['added_tokens', 'decoder', 'model', 'normalizer', 'post_processor', 'pre_tokenizer', 'version']);
    const loaded = await loadTokenizer(dir);
    expect(loaded.name).toBe('brown-600');
    expect(loaded.vocabSize).toBe(600);
    expect(loaded.eosId).toBe(599);
    const sample = docs[3] + TRICKY_CASES.join(' | ');
    expect(loaded.encode(sample)).toEqual(tokenizer.encode(sample));
    expect(loaded.decode(loaded.encode(sample))).toBe(sample);
    expect(loaded.encode('x<|endoftext|>y')).toContain(599);
    // Frequent words compress: far fewer tokens than bytes.
    expect(loaded.encode(docs[3]).length).toBeLessThan(Buffer.byteLength(docs[3]) / 2);
  });

  test('training is deterministic', async () => {
    const docs = await collect(nlpCorpus().documents(), 200_000);
    const a = trainTokenizer('a', docs, { vocabSize: 400 }).result.model.merges;
    const b = trainTokenizer('b', docs, { vocabSize: 400 }).result.model.merges;
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });

  test('bad artifacts are rejected with the file named', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'badtok-'));
    await expect(loadTokenizer(dir)).rejects.toThrow(/tokenizer\.json is missing/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": {"type": "WordPiece"}}');
    await expect(loadTokenizer(dir)).rejects.toThrow(/tokenizer\.json: expected a byte-level BPE/);
    await expect(loadTokenizer('/no/such/dir')).rejects.toThrow(/expected "gpt2" or a tokenizer artifact directory/);
  });
});
