/**
 * The control activities end to end on real artifacts: a trained BPE, tiny native Backpack and GPT-2
 * checkpoints, the TweetTopic classifier trained by its activity, dataset files through the registry
 * from the data mirror, Parquet outputs read back.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readParquetRows } from '../datasets/parquet-table';
import { readResults } from '../activities/evaluation/results';
import {
  editActivity,
  genderActivity,
  mauveActivity,
  pplmActivity,
  sensesActivity,
  table12Activity,
  topicActivity,
  trainTopicClassifierActivity,
} from '../activities/control';
import { activityContext, inputArtifact, tempDir } from './helpers/eval-ctx';
import { buildControlFixture, MIRROR, type ControlFixture } from './helpers/control-fixtures';
import type { InputArtifact } from '../pipelines/activity';

let fx: ControlFixture;
let classifierDir: string;
const topicRuns: InputArtifact[] = [];

beforeAll(async () => {
  process.env.PIPELINE_DATA_MIRROR = MIRROR;
  process.env.PIPELINE_CACHE_DIR = tempDir('control-cache-');
  fx = await buildControlFixture();
  const ctx = activityContext('classifier', {});
  const summary = (await trainTopicClassifierActivity.run(trainTopicClassifierActivity.params.parse({ epochs: 3, heldOut: 100 }), ctx)) as { heldOut: { microF1: number } };
  expect(summary.heldOut.microF1).toBeGreaterThan(0);
  classifierDir = ctx.outDir;
});

function modelInputs(): Record<string, InputArtifact[]> {
  return {
    backpack: [inputArtifact('backpack', fx.backpackDir, { arch: 'backpack', size: 'test' })],
    transformer: [inputArtifact('transformer', fx.gpt2Dir, { arch: 'gpt2', size: 'test' })],
    tokenizer: [inputArtifact('tokenizer', fx.tokenizerDir)],
    classifier: [inputArtifact('classifier', classifierDir)],
  };
}

test('control.topic: strengths 0 and 3 write scored samples, texts and results rows', async () => {
  for (const strength of [0, 3]) {
    const ctx = activityContext('topic', modelInputs());
    const params = topicActivity.params.parse({ topic: 'sports', strength, samples: 6, batchSize: 3, totalLength: 12, seed: 1 });
    const summary = (await topicActivity.run(params, ctx)) as Record<string, unknown>;
    expect(summary.method).toBe('backpack');
    expect(summary.setting).toBe(strength);
    expect(summary.samples).toBe(6);
    expect(Number(summary.semanticSuccess)).toBeGreaterThanOrEqual(0);
    expect(Number(summary.semanticSuccess)).toBeLessThanOrEqual(1);
    expect(typeof summary.meanNll).toBe('number'); // scored under the GPT-2 checkpoint
    if (strength === 3) expect(summary.quantiles).not.toBeNull();
    const rows = await readParquetRows(path.join(ctx.outDir, 'samples.parquet'));
    expect(rows).toHaveLength(6);
    expect(String(rows[0].text).startsWith('<|endoftext|>')).toBe(true);
    const texts = JSON.parse(fs.readFileSync(path.join(ctx.outDir, 'texts.json'), 'utf8')) as string[];
    expect(texts).toHaveLength(6);
    const results = await readResults(path.join(ctx.outDir, 'results.parquet'));
    expect(results.map((r) => r.metric)).toContain('semantic_success');
    topicRuns.push({ ...inputArtifact('topic', ctx.outDir, { topic: 'sports', strength }, `sports-${strength}`), summary });
  }
  // Same seed, same strength → the same samples (reproducible per item).
  const again = activityContext('topic', modelInputs());
  await topicActivity.run(topicActivity.params.parse({ topic: 'sports', strength: 3, samples: 6, batchSize: 3, totalLength: 12, seed: 1 }), again);
  expect(fs.readFileSync(path.join(again.outDir, 'texts.json'), 'utf8')).toBe(fs.readFileSync(path.join(topicRuns[1].dir, 'texts.json'), 'utf8'));
});

test('control.pplm: perturbed samples on the Transformer, scored like the Backpack runs', async () => {
  const ctx = activityContext('pplm', modelInputs());
  const summary = (await pplmActivity.run(pplmActivity.params.parse({ topic: 'sports', stepsize: 0.05, samples: 2, length: 6, seed: 3 }), ctx)) as Record<string, unknown>;
  expect(summary.method).toBe('pplm');
  expect(summary.setting).toBe(0.05);
  expect(summary.samples).toBe(2);
  expect(Array.isArray(summary.bagIds) && (summary.bagIds as number[]).length).toBeGreaterThan(0);
  expect(Number(summary.secondsPerSample)).toBeGreaterThan(0);
  const rows = await readParquetRows(path.join(ctx.outDir, 'samples.parquet'));
  expect(rows).toHaveLength(2);
  topicRuns.push({ ...inputArtifact('pplm', ctx.outDir, { topic: 'sports', stepsize: 0.05 }, 'sports-0.05'), summary });
});

test('control.mauve and control.table12 build Table 12 / Figure 2 rows', async () => {
  const inputs = { ...modelInputs(), topic: topicRuns };
  const ctx = activityContext('mauve', inputs);
  const params = mauveActivity.params.parse({ method: 'backpack', setting: 3, references: 'owt-val-100len', maxReferences: 10, kmeansNumRedo: 2 });
  const summary = (await mauveActivity.run(params, ctx)) as { mauve: number; numP: number; numQ: number; buckets: number };
  expect(summary.numP).toBe(6);
  expect(summary.numQ).toBe(6);
  expect(summary.buckets).toBe(2);
  expect(summary.mauve).toBeGreaterThan(0);
  expect(summary.mauve).toBeLessThanOrEqual(1);
  const mauveRows = await readResults(path.join(ctx.outDir, 'results.parquet'));
  expect(mauveRows.find((r) => r.table === 'Table 12')?.row).toBe('Backpack +3');

  const tctx = activityContext('table12', { topic: topicRuns, mauve: [{ ...inputArtifact('mauve', ctx.outDir), summary }] });
  await table12Activity.run(table12Activity.params.parse({}), tctx);
  const rows = await readResults(path.join(tctx.outDir, 'results.parquet'));
  const cell = (row: string, column: string) => rows.find((r) => r.table === 'Table 12' && r.row === row && r.column === column);
  expect(cell('Backpack +3', 'MAUVE')?.value).toBeCloseTo(summary.mauve, 12);
  expect(cell('Backpack unchanged (strength 0)', 'Sem Acc')?.value).toBe((topicRuns[0].summary as { semanticSuccess: number }).semanticSuccess);
  expect(cell('PPLM-.05', 'Sem Acc')?.value).toBe((topicRuns[2].summary as { semanticSuccess: number }).semanticSuccess);
  expect(rows.some((r) => r.table === 'Figure 2')).toBe(true);
});

test('control.gender: Table 5 rows for the Backpack (auto sense) and the Transformer (nullspace)', async () => {
  const ctx = activityContext('gender', modelInputs());
  const summary = (await genderActivity.run(genderActivity.params.parse({ nmMaxIter: 6 }), ctx)) as { models: Array<{ arch: string; sense: number | null }> };
  expect(summary.models.map((m) => m.arch).sort()).toEqual(['backpack', 'gpt2']);
  const rows = await readResults(path.join(ctx.outDir, 'results.parquet'));
  expect(rows.filter((r) => r.table === 'Table 5').map((r) => r.row)).toEqual(expect.arrayContaining(['Backpack Unmodified', 'Transformer Project-Nullspace']));
  const sense = summary.models.find((m) => m.arch === 'backpack')!.sense;
  expect(rows.some((r) => r.row === `Backpack Remove-Sense${sense}`)).toBe(true);
  for (const r of rows.filter((x) => x.column === 'ratio')) expect(r.value).toBeGreaterThanOrEqual(1);
  const per = await readParquetRows(path.join(ctx.outDir, 'professions.parquet'));
  expect(per.length).toBeGreaterThan(0);
});

test('control.edit and control.senses write their tables', async () => {
  const ctx = activityContext('edit', modelInputs());
  const summary = (await editActivity.run(
    editActivity.params.parse({ target: 'game', remove: 'team', add: 'music', prompts: ['the game is'], samplesPerPrompt: 2, totalLength: 10 }),
    ctx,
  )) as { probes: Array<{ condition: string; pRemove: number; pAdd: number }> };
  const before = summary.probes.find((p) => p.condition === 'before')!;
  const after = summary.probes.find((p) => p.condition === 'after')!;
  expect(after.pAdd).not.toBe(before.pAdd);
  const samples = await readParquetRows(path.join(ctx.outDir, 'edit-samples.parquet'));
  expect(samples).toHaveLength(4);

  const sctx = activityContext('senses', modelInputs());
  await sensesActivity.run(sensesActivity.params.parse({ words: ['music', '+game-team'], count: 3 }), sctx);
  const listing = await readParquetRows(path.join(sctx.outDir, 'senses.parquet'));
  expect(listing).toHaveLength(2 * 4 * 2 * 3); // expressions × senses × (top, bottom) × count
});

test('bad inputs fail with a clear message', async () => {
  const ctx = activityContext('topic', { tokenizer: [inputArtifact('tokenizer', fx.tokenizerDir)] });
  await expect(topicActivity.run(topicActivity.params.parse({ topic: 'sports', strength: 1 }), ctx)).rejects.toThrow(/need exactly one checkpoint \(arch backpack\)/);
  expect(() => topicActivity.params.parse({ topic: 'astrology', strength: 1 })).toThrow();
  const ectx = activityContext('edit', modelInputs());
  await expect(editActivity.run(editActivity.params.parse({ target: 'xqzjv', prompts: ['x'] }), ectx)).rejects.toThrow(/target word "xqzjv" is \d+ tokens/);
});

test('localization normalisers from the native forward equal the TypeScript dot products', async () => {
  const { loadModel } = await import('../native/index');
  const { projectionStatsByForward, senseProjectionStats } = await import('../activities/control/topic/localize');
  const model = await loadModel(fx.backpackDir);
  try {
    const { vocabSize: V, numSenses: k = 0, nEmbd: d } = model.config;
    const ids = Int32Array.from({ length: V }, (_, i) => i);
    const skip = (v: number) => v >= model.config.realVocabSize;
    const direct = senseProjectionStats(model.outputEmbeddings(), { vocab: V, senses: k, dim: d, vectors: await model.senseVectors(ids) }, skip);
    const native = await projectionStatsByForward(model, V, k, skip, { batch: 128 });
    for (let i = 0; i < V * k; i++) {
      expect(native.max[i]).toBeCloseTo(direct.max[i], 4);
      expect(native.absMax[i]).toBeCloseTo(direct.absMax[i], 4);
    }
  } finally {
    model.dispose();
  }
});

test('KV-cache generation with annealed senseScaleFn equals full recomputation (greedy decoding)', async () => {
  const { loadModel } = await import('../native/index');
  const { AnnealingState } = await import('../activities/control/topic/anneal');
  const model = await loadModel(fx.backpackDir);
  try {
    const { vocabSize: V, numSenses: k = 0, nEmbd: d } = model.config;
    const all = await model.senseVectors(Int32Array.from({ length: V }, (_, i) => i));
    const senseOf = (id: number) => all.subarray(id * k * d, (id + 1) * k * d);
    const E = model.outputEmbeddings();
    // A strongly non-uniform δ so the intervention changes the argmax path.
    const delta = Float32Array.from({ length: V * k }, (_, i) => 1 + ((i * 7919) % 5));
    const eos = V - 1 < fx.vocab ? V - 1 : fx.vocab - 1;
    const steps = 12;
    // Full recomputation, greedy.
    const state = new AnnealingState(senseOf, E, d, k, delta, 5);
    const seq = [eos];
    for (let i = 0; i < steps; i++) {
      state.syncTo(seq);
      const out = await model.forward(Int32Array.from(seq), { batch: 1, seq: seq.length, logits: true, interventions: { senseScale: state.weights() } });
      const row = out.logits!.subarray((seq.length - 1) * V, seq.length * V);
      let best = 0;
      for (let v = 1; v < fx.vocab; v++) if (row[v] > row[best]) best = v;
      seq.push(best);
    }
    const cached = new AnnealingState(senseOf, E, d, k, delta, 5);
    const [gen] = await model.generate({
      prompt: [Int32Array.from([eos])],
      maxNewTokens: steps,
      seed: 1,
      greedy: true,
      senseScaleFn: (seqs) => seqs.map((s) => (cached.syncTo(s), cached.weights())),
    });
    expect([eos, ...Array.from(gen)]).toEqual(seq);
    // The intervention matters on this path (otherwise the comparison would prove little).
    const [plain] = await model.generate({ prompt: [Int32Array.from([eos])], maxNewTokens: steps, seed: 1, greedy: true });
    expect(Array.from(plain)).not.toEqual(seq.slice(1));
  } finally {
    model.dispose();
  }
});
