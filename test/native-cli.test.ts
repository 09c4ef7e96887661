/**
 * `pipeline model logits|senses|alpha|generate` on a real checkpoint written by the engine: JSON shapes as
 * documented, values equal to the facade's, usage errors with exit code 2.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, loadModel } from '../native';
import { forCommand } from '../native/cli';
import type { ModelConfig } from '../native/types';

const config: ModelConfig = { arch: 'backpack', vocabSize: 40, realVocabSize: 37, nPositions: 16, nEmbd: 16, nLayer: 2, nHead: 2, numSenses: 4, senseIntermediateScale: 2, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 };
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'native-cli-'));
  await createModel(config, 4).save(dir);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function cli(name: 'logits' | 'senses' | 'alpha' | 'generate', args: string[]) {
  let out = '', err = '';
  const o = jest.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = jest.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    const code = await forCommand(name).run(args);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

test('logits --json: tokens, [position][realVocab] logits and the mean next-token loss', async () => {
  const r = await cli('logits', [dir, '--tokens', '1,2,3', '--json']);
  expect(r.code).toBe(0);
  const j = JSON.parse(r.out);
  expect(j.tokens).toEqual([1, 2, 3]);
  expect(j.logits).toHaveLength(3);
  expect(j.logits[0]).toHaveLength(37);
  // same numbers as the facade: logits of the real rows, loss over the 2 next-token targets (softmax over all 40 rows)
  const m = await loadModel(dir);
  const f = await m.forward(Int32Array.from([1, 2, 3]), { batch: 1, seq: 3, logits: true, targets: Int32Array.from([2, 3, -1]) });
  expect(j.loss).toBeCloseTo(f.loss!, 6);
  expect(j.logits[2][36]).toBeCloseTo(f.logits![2 * 40 + 36], 5);
});

test('senses --json: [token][sense][dim]', async () => {
  const r = await cli('senses', [dir, '--tokens', '5,6', '--json']);
  expect(r.code).toBe(0);
  const j = JSON.parse(r.out);
  expect(j.senses).toHaveLength(2);
  expect(j.senses[0]).toHaveLength(4);
  expect(j.senses[0][0]).toHaveLength(16);
});

test('alpha --json: [sense][query][key], causal rows summing to 1', async () => {
  const r = await cli('alpha', [dir, '--tokens', '1,2,3,4', '--json']);
  expect(r.code).toBe(0);
  const { alpha } = JSON.parse(r.out);
  expect(alpha).toHaveLength(4);
  for (const sense of alpha)
    sense.forEach((row: number[], i: number) => {
      expect(row.slice(0, i + 1).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(row.slice(i + 1).every((x) => x === 0)).toBe(true);
    });
});

test('generate --json: greedy is deterministic, seeded samples reproduce', async () => {
  const g1 = JSON.parse((await cli('generate', [dir, '--tokens', '1,2', '--greedy', '--max-new-tokens', '5', '--json'])).out);
  const g2 = JSON.parse((await cli('generate', [dir, '--tokens', '1,2', '--greedy', '--max-new-tokens', '5', '--json'])).out);
  expect(g1.tokens).toHaveLength(1);
  expect(g1.tokens[0]).toHaveLength(5);
  expect(g2).toEqual(g1);
  const s = (seed: string) => cli('generate', [dir, '--tokens', '1,2', '--temperature', '2', '--seed', seed, '--samples', '3', '--max-new-tokens', '6', '--json']).then((r) => JSON.parse(r.out).tokens);
  expect(await s('4')).toEqual(await s('4'));
});

test('usage errors exit 2 with a message', async () => {
  expect((await cli('logits', [dir])).code).toBe(2);
  const bad = await cli('logits', [dir, '--tokens', '1,99']);
  expect(bad.code).toBe(2);
  expect(bad.err).toMatch(/"99" is not a token id/);
  const missing = await cli('alpha', [path.join(dir, 'nope'), '--tokens', '1']);
  expect(missing.code).toBe(2);
  expect(missing.err).toMatch(/config\.json/);
});
