/**
 * Evaluation-data registry and downloader, through a real HTTP server on 127.0.0.1 serving the data
 * mirror: every entry fetched and parsed, resume after a cut connection, checksum mismatch, missing
 * mirror file, directory mirrors, and the data.fetch activity's Parquet table read back by DuckDB.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { fetchActivity } from '../activities/data';
import { ChecksumError, downloadFile, MissingSourceError } from '../datasets/download';
import { readBlimp, readLambada, readOwtVal100len, readTopicBags, readTweetTopic, readWikitextRaw, readWordPairs, writeDatasetTable } from '../datasets/readers';
import { fetchDataset, REGISTRY } from '../datasets/registry';
import { startMirrorServer, SHARED_DATA, type MirrorServer } from './helpers/mirror-server';

let server: MirrorServer;
let cacheDir: string;

beforeAll(async () => {
  server = await startMirrorServer();
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-'));
});
afterAll(async () => {
  await server.close();
});

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

test('every registry entry with files has a sha256 and a mirror path that exists in shared/data', () => {
  for (const entry of REGISTRY) {
    for (const f of entry.files) {
      expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(f.url).toMatch(/^https:\/\//);
      const mirrorFile = path.join(SHARED_DATA, f.mirrorPath);
      expect(fs.existsSync(mirrorFile)).toBe(true);
      expect(sha256(mirrorFile)).toBe(f.mirrorSha256 ?? f.sha256);
    }
  }
});

test('the embedded BLiMP checksums are the mirror\'s SHA256SUMS (itself checked against MANIFEST.md)', () => {
  const { BLIMP_SHA256 } = require('../datasets/blimp-sha256') as typeof import('../datasets/blimp-sha256');
  const sums = path.join(SHARED_DATA, 'blimp/SHA256SUMS');
  expect(sha256(sums)).toBe('e71b74c9a1a293048ec3f300acb088151caf5b2b16b0fa9b192edfcb91d94221');
  const listed = Object.fromEntries(fs.readFileSync(sums, 'utf8').trim().split('\n').map((l) => {
    const [hash, file] = l.split(/\s+/);
    return [file.replace(/\.jsonl$/, ''), hash];
  }));
  expect(BLIMP_SHA256).toEqual(listed);
  expect(Object.keys(listed)).toHaveLength(67);
});

test('fetch over HTTP from the mirror: typed readers give the documented row counts', async () => {
  const mirror = server.url;
  const get = (name: string) => fetchDataset(name, { cacheDir, mirror });
  const simlex = readWordPairs(await get('simlex999'));
  expect(simlex).toHaveLength(999);
  expect(simlex[0]).toEqual({ word1: 'old', word2: 'new', score: 1.58 });
  expect(readWordPairs(await get('simverb3500'))).toHaveLength(3500);
  const rg = readWordPairs(await get('rg65'));
  expect(rg).toHaveLength(65);
  expect(rg[0]).toEqual({ word1: 'cord', word2: 'smile', score: 0.02 });
  const ws = readWordPairs(await get('ws353'));
  expect(ws).toHaveLength(353);
  expect(ws.filter((p) => p.word1 === 'money' && p.word2 === 'cash')).toHaveLength(2);
  expect(readLambada(await get('lambada_openai'))).toHaveLength(5153);
  expect(readOwtVal100len(await get('owt_val_100len'))).toHaveLength(4007);
  const bags = readTopicBags(await get('topic_bags'));
  expect(bags).toHaveLength(17);
  expect(bags.find((b) => b.topic === 'celebrity_pop_culture')?.words).toEqual(['celebrity', 'pop', 'culture']);
  const tweets = readTweetTopic(await get('tweet_topic'));
  expect(tweets).toHaveLength(1000 + 180 + 20 + 800);
  const blimp = readBlimp(await get('blimp'));
  expect(blimp).toHaveLength(67_000);
  expect(new Set(blimp.map((p) => p.uid)).size).toBe(67);
}, 60_000);

test('wikitext-2 from the mirror is flagged non-canonical', async () => {
  const ds = await fetchDataset('wikitext2_raw_test', { cacheDir, mirror: server.url });
  expect(ds.canonical).toBe(false);
  expect(ds.notes.join(' ')).toMatch(/non-canonical/i);
  expect(sha256(ds.files['wiki.test.raw'])).toBe('4f3e427e4aff23acff917a8a51aeae21bf12832256e26914c8fc250dcef4103c');
  expect(readWikitextRaw(ds).length).toBeGreaterThan(1_000_000);
});

test('a directory mirror works the same way', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dirmirror-'));
  const ds = await fetchDataset('rg65', { cacheDir: dir, mirror: SHARED_DATA });
  expect(sha256(ds.files['RG65.csv'])).toBe('bf02365e889978104e2c5422d91176b34c4862c267269ef6174263f16c86cab5');
});

test('an interrupted download resumes with an HTTP Range request', async () => {
  const cut = await startMirrorServer(SHARED_DATA, { cutAfterBytes: { 'lambada-openai/lambada_test.jsonl': 300_000 } });
  try {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resume-'));
    await expect(fetchDataset('lambada_openai', { cacheDir: dir, mirror: cut.url })).rejects.toThrow(/interrupted|ended early|terminated/);
    const part = path.join(dir, 'lambada_openai', 'lambada_test.jsonl.part');
    expect(fs.existsSync(part)).toBe(true);
    const partial = fs.statSync(part).size;
    expect(partial).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(dir, 'lambada_openai', 'lambada_test.jsonl'))).toBe(false);
    const ds = await fetchDataset('lambada_openai', { cacheDir: dir, mirror: cut.url });
    expect(cut.requests.at(-1)).toEqual({ path: 'lambada-openai/lambada_test.jsonl', range: `bytes=${partial}-`, status: 206 });
    expect(sha256(ds.files['lambada_test.jsonl'])).toBe('4aa8d02cd17c719165fc8a7887fddd641f43fcafa4b1c806ca8abc31fabdb226');
    expect(fs.existsSync(part)).toBe(false);
  } finally {
    await cut.close();
  }
});

test('a corrupted mirror file fails its checksum: clear error, nothing left behind', async () => {
  const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'badmirror-'));
  fs.mkdirSync(path.join(bad, 'rg-65'));
  const good = fs.readFileSync(path.join(SHARED_DATA, 'rg-65/RG65.csv'));
  fs.writeFileSync(path.join(bad, 'rg-65/RG65.csv'), Buffer.concat([good.subarray(0, 500), Buffer.from('tampered'), good.subarray(508)]));
  const srv = await startMirrorServer(bad);
  try {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-'));
    const attempt = fetchDataset('rg65', { cacheDir: dir, mirror: srv.url });
    await expect(attempt).rejects.toBeInstanceOf(ChecksumError);
    await expect(fetchDataset('rg65', { cacheDir: dir, mirror: srv.url })).rejects.toThrow(/dataset rg65: rg-65\/RG65\.csv: checksum mismatch .* expected sha256 bf02365e/);
    expect(fs.readdirSync(path.join(dir, 'rg65'))).toEqual([]);
    // truncated download: same verdict
    fs.writeFileSync(path.join(bad, 'rg-65/RG65.csv'), good.subarray(0, 700));
    await expect(fetchDataset('rg65', { cacheDir: dir, mirror: srv.url })).rejects.toThrow(/checksum mismatch/);
    expect(fs.readdirSync(path.join(dir, 'rg65'))).toEqual([]);
  } finally {
    await srv.close();
  }
});

test('a file missing from the mirror is a clear error naming it', async () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'emptymirror-'));
  const srv = await startMirrorServer(empty);
  try {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'miss-'));
    const attempt = fetchDataset('simlex999', { cacheDir: dir, mirror: srv.url });
    await expect(attempt).rejects.toBeInstanceOf(MissingSourceError);
    await expect(fetchDataset('simlex999', { cacheDir: dir, mirror: srv.url })).rejects.toThrow(/dataset simlex999: simlex-999\/SimLex-999\.txt is not in the mirror .*404/);
    await expect(fetchDataset('simlex999', { cacheDir: dir, mirror: empty })).rejects.toThrow(/simlex-999\/SimLex-999\.txt is not in the mirror/);
  } finally {
    await srv.close();
  }
});

test('an already verified file is not downloaded again', async () => {
  const before = server.requests.length;
  await fetchDataset('simlex999', { cacheDir, mirror: server.url });
  expect(server.requests.length).toBe(before);
  await expect(downloadFile({ url: `${server.url}/rg-65/RG65.csv`, dest: path.join(cacheDir, 'x.csv'), sha256: '0'.repeat(64) })).rejects.toThrow(/checksum mismatch/);
});

test('data.fetch writes files/, dataset.json and a table.parquet that DuckDB reads', async () => {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fetch-out-'));
  process.env.PIPELINE_CACHE_DIR = cacheDir;
  const ctx = {
    node: { runId: 'r', step: 'fetch', item: '', key: 'k' }, outDir, inputs: {}, progress() {}, signal: new AbortController().signal,
    devices: { gpus: [], cpus: 1 }, scratchDir: outDir, checkpoint() {}, log() {}, attempt: 1,
  };
  const summary = await fetchActivity.run(fetchActivity.params.parse({ dataset: 'simverb3500', mirror: server.url }), ctx);
  expect(summary).toMatchObject({ dataset: 'simverb3500', rows: 3500, canonical: true });
  const db = await (await DuckDBInstance.create(':memory:')).connect();
  const reader = await db.runAndReadAll(`SELECT count(*)::INTEGER AS n, min(score) AS lo, max(score) AS hi FROM read_parquet('${path.join(outDir, 'table.parquet')}')`);
  const [row] = reader.getRowObjects();
  expect(row.n).toBe(3500);
  expect(Number(row.lo)).toBeGreaterThanOrEqual(0);
  expect(Number(row.hi)).toBeLessThanOrEqual(10);
  // gender lists come from the paper itself
  const gDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gender-'));
  const ds = await fetchDataset('gender_bias', { cacheDir, mirror: server.url });
  expect(await writeDatasetTable(ds, path.join(gDir, 't.parquet'))).toBe(40 + 5 + 13);
});

/** A minimal zip writer (stored or deflated members), to exercise the canonical-zip reader. */
function makeZip(members: { name: string; data: Buffer; deflate: boolean }[]): Buffer {
  const zlib = require('node:zlib') as typeof import('node:zlib');
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const body = m.deflate ? zlib.deflateRawSync(m.data) : m.data;
    const name = Buffer.from(m.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(m.deflate ? 8 : 0, 8);
    local.writeUInt32LE(zlib.crc32(m.data), 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(m.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(m.deflate ? 8 : 0, 10);
    central.writeUInt32LE(zlib.crc32(m.data), 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(m.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

test('zip members (stored and deflated) are extracted exactly; a missing member is named', () => {
  const { extractZipMember } = require('../datasets/zip') as typeof import('../datasets/zip');
  const wiki = fs.readFileSync(path.join(SHARED_DATA, 'wikitext-2-raw_NONCANONICAL/wiki.test.raw'));
  const zip = makeZip([
    { name: 'wikitext-2-raw/wiki.train.raw', data: Buffer.from('other member'), deflate: false },
    { name: 'wikitext-2-raw/wiki.test.raw', data: wiki, deflate: true },
  ]);
  expect(extractZipMember(zip, 'wikitext-2-raw/wiki.test.raw', 'w.zip').equals(wiki)).toBe(true);
  expect(extractZipMember(zip, 'wikitext-2-raw/wiki.train.raw', 'w.zip').toString()).toBe('other member');
  expect(() => extractZipMember(zip, 'wikitext-2-raw/wiki.valid.raw', 'w.zip')).toThrow(/w\.zip: zip has no member wikitext-2-raw\/wiki\.valid\.raw/);
  expect(() => extractZipMember(Buffer.from('not a zip'), 'x', 'bad.zip')).toThrow(/bad\.zip: not a zip archive/);
});
