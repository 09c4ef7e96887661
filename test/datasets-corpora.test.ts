/**
 * Corpus readers and the document split: Brown detokenisation, nlp-corpus grouping, local
 * text/jsonl/parquet sources with their bad-input errors, and the deterministic split rule.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { brownCorpus, brownFileToText, detokenizeBrownSentence } from '../datasets/corpora/brown';
import { concatCorpora, splitDocuments, validationCount, validationIndices, writeSplitCorpus } from '../datasets/corpora';
import { localCorpus } from '../datasets/corpora/local';
import { numpyPermutation, Pcg64, seedSequenceState } from '../datasets/corpora/numpy-permutation';
import { nlpCorpus } from '../datasets/corpora/nlp-corpus';
import { writeParquetTable } from '../datasets/parquet-table';
import { openWebTextCorpus } from '../datasets/corpora/openwebtext';
import { startMirrorServer } from './helpers/mirror-server';

async function all(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const d of it) out.push(d);
  return out;
}

function tmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

describe('brown', () => {
  test('tags are stripped and punctuation and quotes attach to their words', () => {
    const sentence = 'The/at jury/nn said/vbd ``/`` no/at evidence/nn \'\'/\'\' ,/, (/( in/in Atlanta\'s/np$ )/) primary/nn ./.'.split(' ');
    expect(detokenizeBrownSentence(sentence)).toBe('The jury said "no evidence", (in Atlanta\'s) primary.');
    expect(detokenizeBrownSentence('It/pps was/bedz 1/2/cd inch/nn --/-- small/jj ;/. ok/uh ?/.'.split(' '))).toBe('It was 1/2 inch -- small; ok?');
  });

  test('500 documents; a tab-indented sentence starts a paragraph', async () => {
    const text = brownFileToText('\n\n\tA/at b/nn ./.\n\n\n\tC/at d/nn ./.\nE/at f/nn ./.\n');
    expect(text).toBe('A b.\n\nC d. E f.');
    const docs = await all(brownCorpus().documents());
    expect(docs).toHaveLength(500);
    expect(docs[0].startsWith('The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.')).toBe(true);
    // no POS tags survive ("and/or" is a word of the text)
    expect(docs.filter((d) => /\w\/(at|nn|np|vbd|in|jj|rb|cc)\b/.test(d))).toEqual([]);
  });
});

test('nlp-corpus: sentences grouped into documents', async () => {
  const docs = await all(nlpCorpus(8).documents());
  const singles = await all(nlpCorpus(1).documents());
  expect(docs.length).toBeGreaterThan(1000);
  // groups never cross the package's 100 files: at most one short group per file
  expect(docs.length).toBeGreaterThanOrEqual(Math.ceil(singles.length / 8));
  expect(docs.length).toBeLessThanOrEqual(Math.ceil(singles.length / 8) + 100);
  expect(docs.join(' ')).toBe(singles.join(' '));
  expect(docs[0]).toBe(singles.slice(0, 8).join(' '));
  expect(() => nlpCorpus(0)).toThrow(/positive integer/);
});

describe('local sources', () => {
  test('txt, jsonl and parquet files are read in name order', async () => {
    const dir = tmp('local-');
    fs.writeFileSync(path.join(dir, 'a.txt'), 'first document\n');
    fs.writeFileSync(path.join(dir, 'b.jsonl'), '{"text": "second"}\n\n{"text": "third", "x": 1}\n');
    await writeParquetTable(path.join(dir, 'c.parquet'), { text: { type: 'UTF8' } }, [{ text: 'fourth' }, { text: 'fifth ünïcode' }]);
    fs.writeFileSync(path.join(dir, 'ignored.csv'), 'x');
    expect(await all(localCorpus(dir).documents())).toEqual(['first document\n', 'second', 'third', 'fourth', 'fifth ünïcode']);
  });

  test('non-UTF-8 text: error names the file and byte offset', async () => {
    const dir = tmp('latin1-');
    fs.writeFileSync(path.join(dir, 'bad.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b]));
    await expect(all(localCorpus(dir).documents())).rejects.toThrow(/bad\.txt: not valid UTF-8 at byte 3 \(0xe9\)/);
    fs.writeFileSync(path.join(dir, 'bad.txt'), Buffer.from('{"text": "ok"}\n{"text": "caf\xe9"}\n', 'latin1'));
    fs.renameSync(path.join(dir, 'bad.txt'), path.join(dir, 'bad.jsonl'));
    await expect(all(localCorpus(dir).documents())).rejects.toThrow(/bad\.jsonl: not valid UTF-8 at byte/);
  });

  test('jsonl without the text field names the line', async () => {
    const dir = tmp('jsonl-');
    fs.writeFileSync(path.join(dir, 'x.jsonl'), '{"text": "a"}\n{"body": "b"}\n');
    await expect(all(localCorpus(dir).documents())).rejects.toThrow(/x\.jsonl:2: field "text" is missing/);
  });

  test('a parquet file with the wrong schema is rejected with its columns listed', async () => {
    const dir = tmp('pq-');
    await writeParquetTable(path.join(dir, 'x.parquet'), { body: { type: 'UTF8' }, n: { type: 'INT64' } }, [{ body: 'a', n: 1 }]);
    await expect(all(localCorpus(dir).documents())).rejects.toThrow(/x\.parquet: Parquet schema has no column "text" \(columns: body, n\)/);
    await expect(all(localCorpus(dir, { textField: 'n' }).documents())).rejects.toThrow(/column "n" has type INT64.*expected a UTF-8 string/);
    fs.writeFileSync(path.join(dir, 'x.parquet'), 'not parquet at all');
    await expect(all(localCorpus(dir).documents())).rejects.toThrow(/x\.parquet: not a readable Parquet file/);
  });

  test('missing paths and empty directories are clear errors', () => {
    expect(() => localCorpus('/no/such/corpus')).toThrow(/does not exist/);
    expect(() => localCorpus(tmp('empty-'))).toThrow(/has no \.txt, \.jsonl or \.parquet files/);
  });
});

describe('split', () => {
  test('validation counts follow ceil(ratio·N): OpenWebText gives 4,007', () => {
    expect(validationCount(8_013_769, 0.0005)).toBe(4007);
    expect(validationCount(13_000, 0.02)).toBe(260);
    expect(validationCount(10, 0.0005)).toBe(1);
    expect(validationCount(1, 0.5)).toBe(0);
    expect(() => validationCount(10, 1)).toThrow(/ratio/);
  });

  test('deterministic, seed-dependent, distinct indices in range', () => {
    const a = validationIndices(100_000, 0.01, 2357);
    expect(a).toEqual(validationIndices(100_000, 0.01, 2357));
    expect(a).not.toEqual(validationIndices(100_000, 0.01, 2358));
    expect(new Set(a).size).toBe(1000);
    expect(a.every((i) => i >= 0 && i < 100_000)).toBe(true);
    // roughly uniform: both halves of the corpus contribute
    const low = a.filter((i) => i < 50_000).length;
    expect(low).toBeGreaterThan(400);
    expect(low).toBeLessThan(600);
  });

  test('same permutation as numpy default_rng(seed).permutation(n) (values computed with numpy 2.4)', () => {
    expect(Array.from(numpyPermutation(20, 2357))).toEqual([10, 12, 18, 3, 11, 13, 9, 19, 7, 5, 8, 0, 1, 15, 6, 16, 2, 4, 14, 17]);
    expect(seedSequenceState(2357, 4).map(String)).toEqual(['10025535551684056330', '10831621302356139919', '16273576183181482733', '10153296544876312143']);
    const rng = new Pcg64(2357);
    expect([rng.next64(), rng.next64(), rng.next64()].map(String)).toEqual(['3554037535358686929', '17305761578865237604', '6883231559200952194']);
    // the paper's OpenWebText split: 4,007 validation documents of 8,013,769
    const val = validationIndices(8_013_769);
    expect(val).toHaveLength(4007);
    expect(val.slice(0, 10)).toEqual([4327249, 4286500, 2184614, 4793011, 1709068, 2210533, 6585908, 1961465, 5607119, 6398837]);
    expect(val.slice(4000)).toEqual([8000791, 298047, 2941011, 5453111, 6546526, 4897055, 2048232]);
  }, 60_000);

  test('writeSplitCorpus: empty documents dropped, every document in exactly one split', async () => {
    const dir = tmp('split-');
    const src = tmp('splitsrc-');
    const docs = Array.from({ length: 50 }, (_, i) => (i % 10 === 3 ? '' : `document ${i}`));
    fs.writeFileSync(path.join(src, 'd.jsonl'), docs.map((text) => JSON.stringify({ text })).join('\n'));
    const corpus = concatCorpora([localCorpus(src)]);
    const summary = await writeSplitCorpus(corpus, dir, 0.1, 7);
    expect(summary).toMatchObject({ documents: 45, train: 40, val: 5, emptyDropped: 5 });
    const train = await all(splitDocuments(dir, 'train'));
    const val = await all(splitDocuments(dir, 'val'));
    expect([...train, ...val].sort()).toEqual(docs.filter((d) => d !== '').sort());
    const nonEmpty = docs.filter((d) => d !== '');
    expect(val).toEqual(validationIndices(45, 0.1, 7).map((i) => nonEmpty[i]));
    expect(train).toEqual(nonEmpty.filter((d) => !val.includes(d)));
  });
});

test('openwebtext: shard list and parquet shards fetched through a hub-like mirror, sha256 from X-Linked-Etag', async () => {
  const hub = tmp('hub-');
  const base = 'datasets/Skylion007/openwebtext/resolve/refs%2Fconvert%2Fparquet/plain_text/train';
  const shardDir = path.join(hub, decodeURIComponent(base));
  fs.mkdirSync(shardDir, { recursive: true });
  await writeParquetTable(path.join(shardDir, '0000.parquet'), { text: { type: 'UTF8' } }, [{ text: 'web page one' }, { text: 'web page two' }]);
  await writeParquetTable(path.join(shardDir, '0001.parquet'), { text: { type: 'UTF8' } }, [{ text: 'web page three' }]);
  const listDir = path.join(hub, 'api/datasets/Skylion007/openwebtext/parquet/plain_text');
  fs.mkdirSync(listDir, { recursive: true });
  fs.writeFileSync(path.join(listDir, 'train'), JSON.stringify([0, 1].map((i) => `https://huggingface.co/${base}/000${i}.parquet`)));
  const server = await startMirrorServer(hub, { linkedEtag: true });
  try {
    const cacheDir = tmp('owtcache-');
    const corpus = await openWebTextCorpus({ cacheDir, mirror: server.url });
    expect(await all(corpus.documents())).toEqual(['web page one', 'web page two', 'web page three']);
    expect(server.requests.filter((r) => r.path.endsWith('.parquet'))).toHaveLength(2);
    // cached shards are verified and reused, not fetched again
    const before = server.requests.length;
    await all((await openWebTextCorpus({ cacheDir, mirror: server.url })).documents());
    expect(server.requests.slice(before).filter((r) => r.path.endsWith('.parquet'))).toHaveLength(0);
  } finally {
    await server.close();
  }
});
