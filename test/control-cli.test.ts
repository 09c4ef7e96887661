/** `pipeline eval mauve|gender|topic` and `pipeline model edit`, run in-process on real files and checkpoints. */
import * as fs from 'fs';
import * as path from 'path';
import { forCommand, readFeatures } from '../activities/control/cli';
import { writeNpy } from '../activities/control/mauve/npy';
import { writeParquetTable } from '../datasets/parquet-table';
import { saveHashedClassifier, readTweetTopic, trainHashedClassifier, TRAIN_DEFAULTS } from '../activities/control/classifier/train';
import { Rng } from '../activities/control/util/rng';
import { buildControlFixture, MIRROR, type ControlFixture } from './helpers/control-fixtures';
import { tempDir } from './helpers/eval-ctx';

async function run(cmd: 'mauve' | 'gender' | 'topic' | 'edit', args: string[]) {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  try {
    const code = await forCommand(cmd).run(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

let fx: ControlFixture;
const dir = tempDir('control-cli-');

beforeAll(async () => {
  process.env.PIPELINE_DATA_MIRROR = MIRROR;
  process.env.PIPELINE_CACHE_DIR = tempDir('control-cli-cache-');
  fx = await buildControlFixture();
  // The checkpoints carry their tokenizer beside them, as a trained model artifact would.
  for (const d of [fx.backpackDir, fx.gpt2Dir]) fs.copyFileSync(path.join(fx.tokenizerDir, 'tokenizer.json'), path.join(d, 'tokenizer.json'));
});

describe('pipeline eval mauve', () => {
  it('scores precomputed .npy and Parquet features and prints one JSON document', async () => {
    const rng = new Rng(3);
    const make = (rows: number, shift: number) => ({ rows, dim: 4, data: Float64Array.from({ length: rows * 4 }, () => rng.nextFloat() + shift) });
    writeNpy(path.join(dir, 'p.npy'), make(60, 0));
    writeNpy(path.join(dir, 'q.npy'), make(60, 0));
    const same = await run('mauve', ['--p-features', path.join(dir, 'p.npy'), '--q-features', path.join(dir, 'q.npy'), '--json']);
    expect(same.code).toBe(0);
    const doc = JSON.parse(same.stdout);
    expect(doc.numBuckets).toBe(6);
    expect(doc.mauve).toBeGreaterThan(0.7);
    const far = make(60, 30);
    await writeParquetTable(path.join(dir, 'far.parquet'), { a: { type: 'DOUBLE' }, b: { type: 'DOUBLE' }, c: { type: 'DOUBLE' }, d: { type: 'DOUBLE' } },
      Array.from({ length: 60 }, (_, i) => ({ a: far.data[i * 4], b: far.data[i * 4 + 1], c: far.data[i * 4 + 2], d: far.data[i * 4 + 3] })));
    const back = await readFeatures(path.join(dir, 'far.parquet'));
    expect(back.rows).toBe(60);
    expect(back.dim).toBe(4);
    // l2 normalisation keeps direction only: shift the far cloud off the diagonal so it stays distinguishable.
    writeNpy(path.join(dir, 'far.npy'), { rows: 60, dim: 4, data: Float64Array.from(far.data, (x, i) => (i % 4 === 0 ? x : -x)) });
    const disjoint = await run('mauve', ['--p-features', path.join(dir, 'p.npy'), '--q-features', path.join(dir, 'far.npy'), '--json']);
    expect(JSON.parse(disjoint.stdout).mauve).toBeLessThan(0.05);
  });
  it('featurizes text files with a checkpoint', async () => {
    fs.writeFileSync(path.join(dir, 'p.txt'), ['the game was great', 'music all night', 'family dinner', 'sports news'].join('\n'));
    fs.writeFileSync(path.join(dir, 'q.json'), JSON.stringify(['the team won', 'a new song', 'food and life', 'he said', 'she said']));
    const r = await run('mauve', ['--p', path.join(dir, 'p.txt'), '--q', path.join(dir, 'q.json'), '--featurizer', fx.gpt2Dir, '--json', '--save-features', path.join(dir, 'feats')]);
    expect(r.stderr).toBe('');
    const doc = JSON.parse(r.stdout);
    expect(doc.numP).toBe(4);
    expect(doc.numQ).toBe(4); // the larger side is shuffled and cut like the authors' script
    expect(fs.existsSync(path.join(dir, 'feats', 'p.npy'))).toBe(true);
  });
  it('rejects bad usage with exit code 2', async () => {
    expect((await run('mauve', ['--p', 'x'])).code).toBe(2);
    expect((await run('mauve', ['--p-features', path.join(dir, 'p.npy')])).code).toBe(2);
    expect((await run('mauve', ['--bogus'])).code).toBe(2);
  });
});

describe('pipeline eval gender / topic, pipeline model edit', () => {
  it('eval gender prints a JSON Table 5 summary', async () => {
    const r = await run('gender', ['--checkpoint', fx.backpackDir, '--nm-max-iter', '5', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.arch).toBe('backpack');
    expect(doc.summary.map((s: { setting: string }) => s.setting)).toEqual(['Ones', 'Zeros', 'Optimized']);
  });
  it('eval topic samples and scores with a trained classifier', async () => {
    const rows = readTweetTopic(path.join(MIRROR, 'tweet-topic-multilingual-en', 'en_train.jsonl'));
    const cls = path.join(dir, 'classifier');
    saveHashedClassifier(cls, trainHashedClassifier(rows, { ...TRAIN_DEFAULTS, epochs: 2 }));
    const r = await run('topic', ['--checkpoint', fx.backpackDir, '--topic', 'music', '--strength', '2', '--classifier', cls, '--samples', '4', '--batch', '2', '--length', '10', '--json']);
    expect(r.stderr).toBe('');
    const doc = JSON.parse(r.stdout);
    expect(doc.samples).toHaveLength(4);
    expect(doc.quantiles.q95).toBeGreaterThanOrEqual(doc.quantiles.q80);
    expect((await run('topic', ['--checkpoint', fx.backpackDir, '--topic', 'astrology', '--strength', '1', '--classifier', cls])).code).toBe(2);
    // The RoBERTa provider end to end, on the tiny transformers-made classifier of test/fixtures/roberta.
    const rb = await run('topic', ['--checkpoint', fx.backpackDir, '--topic', 'music', '--strength', '1', '--provider', 'tweet-topic-21-multi', '--classifier', path.join(__dirname, 'fixtures', 'roberta'), '--samples', '2', '--batch', '2', '--length', '10', '--json']);
    expect(rb.stderr).toBe('');
    expect(JSON.parse(rb.stdout).classifier).toMatch(/^tweet-topic-21-multi:[0-9a-f]{12}$/);
    expect((await run('topic', ['--checkpoint', fx.backpackDir, '--topic', 'music', '--strength', '1', '--provider', 'tweet-topic-21-multi', '--classifier', path.join(dir, 'nowhere')])).stderr).toMatch(/no model directory/);
  });
  it('model edit reports probabilities and samples before and after', async () => {
    const r = await run('edit', ['--checkpoint', fx.backpackDir, '--target', 'game', '--remove', 'team', '--add', 'music', '--prompt', 'the game is', '--samples', '2', '--length', '8', '--json']);
    expect(r.stderr).toBe('');
    const doc = JSON.parse(r.stdout);
    expect(doc.probes).toHaveLength(2);
    expect(doc.samples).toHaveLength(4);
    const missing = await run('edit', ['--checkpoint', fx.backpackDir, '--target', 'game', '--remove', 'team', '--add', 'music', '--prompt', 'no target here']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/does not contain the target token/);
  });
});
