/**
 * The evaluations and the report inside a real DAG run on the local engine: a corpus, a trained BPE, tiny
 * Backpack/Transformer models and a two-point sense ablation, every eval step fanned out per model, and the
 * report aggregating them. Checks that each paper table gets every cell our steps can fill.
 */
import * as fs from 'fs';
import * as path from 'path';
import { createRegistry } from '../activities/index';
import { readResults } from '../activities/evaluation/results';
import { parseDag, planDag } from '../pipelines/dag-loader';
import { executePlanLocally } from '../pipelines/engine-local';
import { ArtifactStore } from '../pipelines/store';
import { tempDir } from './helpers/eval-ctx';
import { SHARED_DATA } from './helpers/shared-data';

const DATA = SHARED_DATA;
const MODELS = '{ arch: [backpack, transformer], size: [micro] }';

const DAG = `
version: 1
default_profile: tiny
steps:
  corpus: { uses: data.corpus, params: { sources: [brown] } }
  tokenizer: { uses: data.train_tokenizer, needs: [corpus], params: { vocabSize: 400 } }
  tokens: { uses: data.tokenize, needs: [corpus, tokenizer] }
  train:
    uses: model.train
    needs: [tokens]
    matrix: ${MODELS}
    params: { arch: "\${matrix.arch}", nEmbd: 16, nLayer: 1, nHead: 2, numSenses: 4, steps: 6, batchSize: 2, seqLen: 32, warmupSteps: 1, evalInterval: 3, evalWindows: 2, checkpointInterval: 0 }
  ablation:
    uses: model.train
    needs: [tokens]
    matrix: { senses: [1, 4] }
    params: { arch: backpack, nEmbd: 16, nLayer: 1, nHead: 2, numSenses: "\${matrix.senses}", shrinkSenseMlp: true, steps: 3, batchSize: 2, seqLen: 32, warmupSteps: 1, evalInterval: 0, checkpointInterval: 0 }
  fetch:
    uses: data.fetch
    matrix: { dataset: [lambada_openai, wikitext2_raw_test, blimp, rg65] }
    params: { dataset: "\${matrix.dataset}", mirror: ${JSON.stringify(DATA)} }
  eval_owt: { uses: eval.owt_val, needs: [train, tokens], matrix: ${MODELS}, params: { profile: "\${profile}", windowLength: 32 } }
  eval_owt_ablation: { uses: eval.owt_val, needs: [ablation, tokens], matrix: { senses: [1, 4] }, params: { profile: "\${profile}", group: ablation, windowLength: 32 } }
  eval_lambada: { uses: eval.lambada, needs: [train, tokens, { step: fetch, where: { dataset: lambada_openai } }], matrix: ${MODELS}, params: { profile: "\${profile}", limit: 10 } }
  eval_wikitext: { uses: eval.wikitext, needs: [train, tokens, { step: fetch, where: { dataset: wikitext2_raw_test } }], matrix: ${MODELS}, params: { profile: "\${profile}", limit: 1 } }
  eval_blimp: { uses: eval.blimp, needs: [train, tokens, { step: fetch, where: { dataset: blimp } }], matrix: ${MODELS}, params: { profile: "\${profile}", limit: 2 } }
  eval_lexsim: { uses: eval.lexsim, needs: [train, tokens, { step: fetch, where: { dataset: rg65 } }], matrix: ${MODELS}, params: { profile: "\${profile}", datasets: [rg65] } }
  report:
    uses: report
    needs: [train, ablation, eval_owt, eval_owt_ablation, eval_lambada, eval_wikitext, eval_blimp, eval_lexsim]
profiles:
  tiny: {}
`;

test('train → eval → report on the local engine fills Tables 2, 4 and 8', async () => {
  const saved = process.env.PIPELINE_CACHE_DIR;
  process.env.PIPELINE_CACHE_DIR = tempDir('dag-cache-');
  try {
    const registry = createRegistry();
    const plan = planDag(parseDag(DAG, 'eval-smoke.yaml'), registry, { profile: 'tiny' });
    const store = new ArtifactStore(tempDir('dag-store-'));
    const exec = executePlanLocally(plan, { store, registry, runId: 'eval-dag', cpus: 2, gpus: [], memoryMb: 4096, keepGoing: false, retryBaseMs: 10 });
    const summary = await exec.done;
    expect(summary.failed).toEqual([]);
    const report = plan.nodes.find((n) => n.step === 'report')!;
    const dir = store.artifactDir(report.key);
    const rows = await readResults(path.join(dir, 'all-results.parquet'));
    const cells = (table: string) => rows.filter((r) => r.table === table).map((r) => `${r.row}|${r.column}|${r.profile}`).sort();
    const t2 = ['OWT PPL', 'LAMBADA PPL', 'LAMBADA ACC', 'Wikitext PPL', 'BLiMP'];
    expect(cells('Table 2')).toEqual(['Backpack-Micro', 'Transformer-Micro'].flatMap((m) => t2.map((c) => `${m}|${c}|tiny`)).sort());
    expect(cells('Table 8')).toEqual(['1', '4'].flatMap((k) => ['OWT PPL', 'contextual params', 'total params'].map((c) => `${k}|${c}|tiny`)).sort());
    expect(cells('Table 4')).toContain('Sim_min (Backpack-Micro)|RG65|tiny');
    expect(cells('Table 4')).toContain('Transformer-Micro (embeddings)|RG65|tiny');
    expect(rows.filter((r) => r.table === 'BLiMP by paradigm')).toHaveLength(2 * 67);
    const html = fs.readFileSync(path.join(dir, 'report.html'), 'utf8');
    for (const t of ['Table 2', 'Table 4', 'Table 8']) expect(html).toContain(`data-table="${t}"`);
    expect(fs.readdirSync(path.join(dir, 'plots')).sort()).toEqual(['ablation-senses.svg', 'training-loss.svg', 'training-val-loss.svg']);
  } finally {
    if (saved === undefined) delete process.env.PIPELINE_CACHE_DIR;
    else process.env.PIPELINE_CACHE_DIR = saved;
  }
});
