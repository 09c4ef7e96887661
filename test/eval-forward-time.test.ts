/**
 * Table 7's activity (eval.forward_time) on real tiny checkpoints: one row per model, placed at (size, arch) of
 * Table 7 with the device and arithmetic recorded, and the report pivots them beside the paper's A100 numbers.
 */
import * as path from 'path';
import { createModel, type ModelConfig } from '../native/index';
import { forwardTimeActivity } from '../activities/timing';
import { readResults, RESULTS_FILE } from '../activities/evaluation/results';
import { buildTables } from '../activities/report/tables';
import { activityContext, inputArtifact, tempDir } from './helpers/eval-ctx';

function config(arch: 'gpt2' | 'backpack'): ModelConfig {
  return { arch, vocabSize: 304, realVocabSize: 300, nPositions: 32, nEmbd: 32, nLayer: 2, nHead: 2, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5, ...(arch === 'backpack' ? { numSenses: 4, senseIntermediateScale: 2 } : {}) };
}

test('times every upstream checkpoint and fills Table 7', async () => {
  const inputs = [];
  for (const arch of ['backpack', 'gpt2'] as const) {
    const dir = tempDir(`ft-${arch}-`);
    const model = createModel(config(arch), 3);
    await model.save(dir);
    model.dispose();
    inputs.push(inputArtifact('train', dir, { arch: arch === 'gpt2' ? 'transformer' : arch, size: { id: 'micro' } }, `arch=${arch},size=micro`));
  }
  const ctx = activityContext('forward_time', { train: inputs });
  const params = forwardTimeActivity.params.parse({ profile: 'test', batch: 2, seq: 32, warmup: 1, runs: 3 });
  const summary = (await forwardTimeActivity.run(params, ctx)) as { rows: number };
  expect(summary.rows).toBe(2);

  const rows = await readResults(path.join(ctx.outDir, RESULTS_FILE));
  expect(rows.map((r) => [r.table, r.row, r.column, r.n]).sort()).toEqual([
    ['Table 7', 'Micro', 'Backpack', 3],
    ['Table 7', 'Micro', 'Transformer', 3],
  ]);
  for (const r of rows) {
    expect(r.value).toBeGreaterThan(0);
    expect(r.value).toBeLessThan(60);
    expect(JSON.parse(r.details)).toMatchObject({ device: 'cpu', precision: 'fp32', batch: 2, seq: 32, runs: 3 });
    expect(r.model).toMatch(/^(Backpack|Transformer)-Micro \(cpu, fp32, 2×32\)$/);
  }
  const table7 = buildTables(rows).find((t) => t.name === 'Table 7')!;
  const paperMicro = table7.rows.find((r) => r.source === 'paper' && r.label === 'Micro')!;
  const oursMicro = table7.rows.find((r) => r.source === 'ours' && r.label === 'Micro')!;
  expect(paperMicro.cells.map((c) => c.value)).toEqual([0.093, 0.065]);
  expect(oursMicro.cells.every((c) => c.value !== null && c.value > 0)).toBe(true);
});

test('a sequence longer than the model refuses with the checkpoint named', async () => {
  const dir = tempDir('ft-short-');
  const model = createModel(config('gpt2'), 1);
  await model.save(dir);
  model.dispose();
  const ctx = activityContext('forward_time', { train: [inputArtifact('train', dir, { arch: 'transformer', size: { id: 'micro' } })] });
  await expect(forwardTimeActivity.run(forwardTimeActivity.params.parse({ seq: 64, runs: 1, warmup: 0 }), ctx)).rejects.toThrow(/32 positions, fewer than seq 64/);
});
