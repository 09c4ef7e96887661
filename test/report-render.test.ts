import * as fs from 'fs';
import * as path from 'path';
import { ParquetSchema, ParquetWriter } from '@dsnp/parquetjs';
import { chromium, type Browser } from 'playwright-core';
import { placeRows } from '../activities/evaluation/placement';
import { readResults, resultRow, writeResults, type ResultRow } from '../activities/evaluation/results';
import { runEvalTask } from '../activities/evaluation/tasks';
import { reportActivity } from '../activities/report';
import { formatValue } from '../activities/report/tables';
import { TABLE_LAYOUTS } from '../activities/report/paper';
import { activityContext, inputArtifact, tempDir } from './helpers/eval-ctx';
import { PieceTokenizer, UnigramModel, toyConfig } from './helpers/eval-toys';
import { SHARED_DATA } from './helpers/shared-data';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

async function writeTrainingMetrics(file: string, losses: number[]): Promise<void> {
  const schema = new ParquetSchema({ step: { type: 'INT64' }, train_loss: { type: 'DOUBLE' }, val_loss: { type: 'DOUBLE', optional: true } });
  const w = await ParquetWriter.openFile(schema, file);
  for (let i = 0; i < losses.length; i++) await w.appendRow({ step: BigInt(i * 10), train_loss: losses[i], ...(i % 2 === 0 ? { val_loss: losses[i] + 0.1 } : {}) });
  await w.close();
}

/** Builds the inputs a report step sees: two eval artifacts, an ablation artifact, a section-6 style table, training metrics. */
async function makeInputs() {
  const tok = new PieceTokenizer();
  const logits = Array.from({ length: tok.vocabSize }, (_, i) => Math.sin(i));
  const model = new UnigramModel(logits);
  const lambada = await runEvalTask(model, tok, { task: 'lambada', limit: 5, dataDirs: [path.join(SHARED_DATA, 'lambada-openai')] });
  const evalDir = tempDir('eval-lambada-');
  const rows = placeRows(lambada.rows, { modelLabel: 'Backpack-Micro', group: 'main', config: model.config });
  await writeResults(path.join(evalDir, 'results.parquet'), rows.map((r) => ({ ...r, model: 'Backpack-Micro', profile: 'tiny' })));

  const ablDir = tempDir('eval-abl-');
  const abl: ResultRow[] = [];
  for (const [k, ppl] of [[1, 61.5], [4, 55.25], [16, 50.125]] as const) {
    const config = toyConfig(512, { arch: 'backpack', numSenses: k, nEmbd: 64, nLayer: 2, shrinkSenseMlp: true });
    const placed = placeRows([{ task: 'owt_val', subtask: '', metric: 'ppl', variant: '', value: ppl, n: 10, table: '', row: '', column: '', details: '' }], { modelLabel: `Backpack-Mini k=${k}`, group: 'ablation', config });
    abl.push(...placed.map((r) => ({ ...r, model: `Backpack-Mini k=${k}`, profile: 'tiny' })));
  }
  await writeResults(path.join(ablDir, 'results.parquet'), abl);

  // a results table from another activity, placed in a paper table the report renders generically
  const genericDir = tempDir('gender-');
  await writeResults(path.join(genericDir, 'results.parquet'), [
    resultRow({ model: 'Backpack-Small', profile: 'tiny', task: 'gender', metric: 'bias_ratio', value: 3.5, n: 30, table: 'Table 5', row: 'Backpack Unmodified', column: 'ratio' }),
    resultRow({ model: 'Backpack-Small', profile: 'tiny', task: 'gender', metric: 'bias_ratio', value: 1.75, n: 30, table: 'Table 5', row: 'Backpack Optimize-Sense10', column: 'ratio' }),
    resultRow({ model: 'Backpack-Small', profile: 'tiny', task: 'gender', metric: 'reduction', value: 0.5, n: 30, table: 'Table 5', row: 'Backpack Optimize-Sense10', column: 'reduction' }),
    // per-paradigm rows of two models share one row per paradigm (the models are the columns)
    resultRow({ model: 'Backpack-Micro', profile: 'tiny', task: 'blimp', subtask: 'causative', metric: 'acc', value: 0.625, n: 8, table: 'BLiMP by paradigm', row: 'causative', column: 'Backpack-Micro' }),
    resultRow({ model: 'Transformer-Micro', profile: 'tiny', task: 'blimp', subtask: 'causative', metric: 'acc', value: 0.75, n: 8, table: 'BLiMP by paradigm', row: 'causative', column: 'Transformer-Micro' }),
    resultRow({ model: 'X', profile: 'tiny', task: 'custom', metric: 'm', value: 0.123456, n: 1, table: 'Custom table', row: 'r1', column: 'c<1>' }),
  ]);

  const trainA = tempDir('train-a-');
  const trainB = tempDir('train-b-');
  await writeTrainingMetrics(path.join(trainA, 'metrics.parquet'), [5, 4, 3.5, 3.2, 3.1]);
  await writeTrainingMetrics(path.join(trainB, 'metrics.parquet'), [5.2, 4.4, 3.9, 3.6, 3.4]);
  return {
    eval_lambada: [inputArtifact('eval_lambada', evalDir, { arch: 'backpack', size: 'micro' }, 'backpack-micro')],
    eval_ablation: [inputArtifact('eval_ablation', ablDir)],
    gender: [inputArtifact('gender', genericDir)],
    train: [
      inputArtifact('train', trainA, { arch: 'backpack', size: 'micro' }, 'backpack-micro'),
      inputArtifact('train', trainB, { arch: 'transformer', size: 'micro' }, 'transformer-micro'),
    ],
  };
}

describe('report activity', () => {
  let outDir: string;
  let results: ResultRow[];
  let browser: Browser | undefined;

  beforeAll(async () => {
    const inputs = await makeInputs();
    const ctx = activityContext('report', inputs);
    outDir = ctx.outDir;
    const summary = (await reportActivity.run({ title: 'Test report', notes: ['tiny profile'] }, ctx)) as { tables: string[]; plots: string[] };
    expect(summary.tables).toEqual(['Table 2', 'Table 8', 'Table 5', 'BLiMP by paradigm', 'Custom table']);
    expect(summary.plots).toEqual(['training-train-loss', 'training-val-loss', 'ablation-senses']);
    results = await readResults(path.join(outDir, 'all-results.parquet'));
    if (!fs.existsSync(CHROMIUM)) throw new Error(`headless Chromium not found at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close();
  });

  test('writes report.md with the paper rows beside ours and SVG plot files', () => {
    const md = fs.readFileSync(path.join(outDir, 'report.md'), 'utf8');
    expect(md).toContain('## Table 2 — language-modelling performance');
    expect(md).toMatch(/\| Backpack-Micro \| paper \(arXiv v1\) \| 31\.5 \| 110\.0 \| 24\.7 \| 71\.5 \| 75\.6 \|/);
    expect(md).toMatch(/\| Backpack-Micro \| ours · tiny \| – \| \*\*\d+\.\d\*\* \| \*\*\d+\.\d\*\* \| – \| – \|/);
    expect(md).toContain('![Sense-count ablation](plots/ablation-senses.svg)');
    for (const f of ['ablation-senses', 'training-train-loss', 'training-val-loss']) expect(fs.readFileSync(path.join(outDir, 'plots', `${f}.svg`), 'utf8')).toMatch(/^<svg /);
  });

  test('renders in headless Chromium with no network requests, and its tables match the Parquet data', async () => {
    const page = await browser!.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto('file://' + path.join(outDir, 'report.html'));
    expect(await page.title()).toBe('Test report');
    expect(requests.every((u) => u.startsWith('file://'))).toBe(true);
    expect(requests).toHaveLength(1); // the page itself: CSS and plots are inline

    const cells = await page.$$eval('table[data-table] tr[data-source="ours"] td[data-column]', (tds) =>
      tds.map((td) => {
        const tr = td.closest('tr')!;
        return {
          table: td.closest('table')!.getAttribute('data-table')!,
          row: tr.getAttribute('data-row')!,
          profile: tr.getAttribute('data-profile')!,
          model: tr.getAttribute('data-model')!,
          column: td.getAttribute('data-column')!,
          value: td.getAttribute('data-value'),
          text: td.textContent!,
        };
      }),
    );
    const placed = results.filter((r) => r.table !== '');
    // every placed Parquet row appears once, with its exact value and the layout's formatting
    for (const r of placed) {
      const hit = cells.filter((c) => c.table === r.table && c.row === r.row && c.column === r.column && c.profile === r.profile && c.model.split(', ').includes(r.model));
      expect(hit).toHaveLength(1);
      expect(Number(hit[0].value)).toBe(r.value);
      expect(hit[0].text).toBe(formatValue(TABLE_LAYOUTS[r.table], r.column, r.value));
    }
    // and no cell shows a value the Parquet data does not have
    expect(cells.filter((c) => c.value !== null)).toHaveLength(placed.length);

    // the paper's Table 8 rows are there beside ours; generic tables render with escaped headers
    const paperK16 = await page.$eval('table[data-table="Table 8"] tr[data-source="paper"][data-row="16"] td[data-column="OWT PPL"]', (td) => td.textContent);
    expect(paperK16).toBe('26.0');
    const blimpRows = await page.$$eval('table[data-table="BLiMP by paradigm"] tbody tr', (trs) => trs.map((tr) => tr.textContent));
    expect(blimpRows).toEqual(['causativeours · tiny62.575.0']);
    expect(await page.$eval('table[data-table="Table 8"] tr[data-source="paper"][data-row="64"] td[data-column="total params"]', (td) => td.textContent)).toBe('100.2M');
    expect(await page.$eval('table[data-table="Custom table"] thead', (th) => th.textContent)).toContain('c<1>');
    expect(await page.locator('figure svg').count()).toBe(3);
    const ablationSeries = await page.$$eval('#ablation-senses path.series', (ps) => ps.map((p) => p.getAttribute('data-series')));
    expect(ablationSeries).toEqual(['ours (tiny)', 'paper']);
    await page.close();
  });
});

describe('pipeline report', () => {
  test('prints the newest committed report of the store; exit 1 when there is none', async () => {
    const { run } = await import('../activities/report/cli');
    const { ArtifactStore } = await import('../pipelines/store');
    const root = tempDir('store-');
    const store = new ArtifactStore(root);
    const commitReport = async (key: string, endedAt: string) => {
      const tmp = store.createTemp(key);
      fs.writeFileSync(path.join(tmp, 'report.html'), '<html></html>');
      fs.writeFileSync(path.join(tmp, 'report.md'), '# r');
      await store.commit(key, tmp, { key, runId: 'r', step: 'report', item: '', uses: 'report', version: '1', params: {}, inputs: [], summary: null, codeVersion: 'x', host: 'h', pid: 1, attempt: 1, startedAt: endedAt, endedAt, durationMs: 1 });
    };
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await run(['--store', root])).toBe(1);
      await commitReport('aaa', '2026-01-01T00:00:00.000Z');
      await commitReport('bbb', '2026-01-02T00:00:00.000Z');
      expect(await run(['--store', root])).toBe(0);
      expect(out.join('').trim()).toBe(path.join(store.artifactDir('bbb'), 'report.html'));
      out.length = 0;
      expect(await run(['--store', root, '--json'])).toBe(0);
      expect(JSON.parse(out.join(''))).toMatchObject({ key: 'bbb', markdown: path.join(store.artifactDir('bbb'), 'report.md') });
      expect(await run(['--bogus'])).toBe(2);
    } finally {
      spy.mockRestore();
      err.mockRestore();
    }
  });
});
