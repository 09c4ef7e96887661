/**
 * The eval activities and `pipeline eval` on real checkpoints of the native engine (tiny random-init
 * GPT-2 and Backpack models), a BPE tokenizer trained here, real shard sets and the mirror's data files.
 * The language-modelling tasks use a 400-id vocabulary to stay fast on two cores; lexical similarity also
 * runs on a GPT-2-vocabulary model to check the paper's multi-subword counts.
 */
import * as fs from 'fs';
import * as path from 'path';
import { createModel, loadModel, type ModelConfig } from '../native/index';
import { ShardSetWriter } from '../datasets/shards';
import { loadTokenizer, PieceCounter, renderTokenizerJson, trainBpe, TOKENIZER_FILE } from '../datasets/tokenizer';
import { blimpActivity, lambadaActivity, lexsimActivity, owtValActivity, wikitextActivity } from '../activities/eval';
import { runEval } from '../activities/evaluation/cli';
import { readResults } from '../activities/evaluation/results';
import { evaluateLambada, parseLambada } from '../activities/evaluation/lambada';
import { loglikelihoodMany, loglikelihoodTokens } from '../activities/evaluation/harness';
import { activityContext, inputArtifact, tempDir } from './helpers/eval-ctx';
import { SHARED_DATA } from './helpers/shared-data';

const DATA = SHARED_DATA;

function tinyConfig(arch: 'gpt2' | 'backpack', realVocabSize: number): ModelConfig {
  return {
    arch,
    vocabSize: Math.ceil(realVocabSize / 8) * 8,
    realVocabSize,
    nPositions: 64,
    nEmbd: 16,
    nLayer: 1,
    nHead: 2,
    scaleAttnByInverseLayerIdx: true,
    layerNormEpsilon: 1e-5,
    ...(arch === 'backpack' ? { numSenses: 4, senseIntermediateScale: 1, shrinkSenseMlp: false } : {}),
  };
}

describe('eval activities on native checkpoints', () => {
  let backpackDir: string;
  let gpt2Dir: string;
  let gpt2VocabDir: string;
  let tokDir: string;
  let dataDir: string;
  let stream: number[];

  beforeAll(async () => {
    const text = fs.readFileSync(path.join(DATA, 'lambada-openai/lambada_test.jsonl'), 'utf8').slice(0, 200_000);
    const counter = new PieceCounter();
    for (const line of text.split('\n')) counter.add(line);
    const trained = trainBpe(counter, { vocabSize: 400, minFrequency: 2 });
    tokDir = tempDir('tokenizer-');
    fs.writeFileSync(path.join(tokDir, TOKENIZER_FILE), renderTokenizerJson(trained.model, { name: 'test-bpe-400' }));
    const tok = await loadTokenizer(tokDir);
    backpackDir = tempDir('ckpt-backpack-');
    gpt2Dir = tempDir('ckpt-gpt2-');
    gpt2VocabDir = tempDir('ckpt-gpt2-vocab-');
    await createModel(tinyConfig('backpack', tok.vocabSize), 1).save(backpackDir);
    await createModel(tinyConfig('gpt2', tok.vocabSize), 2).save(gpt2Dir);
    await createModel(tinyConfig('gpt2', 50257), 3).save(gpt2VocabDir);
    // a data artifact with a val/ shard set
    dataDir = tempDir('data-');
    const writer = new ShardSetWriter(path.join(dataDir, 'val'), { tokenizer: tok.name, vocabSize: tok.vocabSize, eosId: tok.eosId, split: 'val' }, 100);
    stream = [];
    for (const doc of text.slice(0, 4000).split('\n').slice(0, 3)) {
      const ids = [...tok.encode(doc), tok.eosId];
      stream.push(...ids);
      writer.addDocument(ids);
    }
    await writer.close();
  });

  const inputs = () => ({
    tokenizer: [inputArtifact('tokenizer', tokDir)],
    train: [inputArtifact('train', backpackDir, { arch: 'backpack', size: 'micro' }, 'backpack-micro'), inputArtifact('train', gpt2Dir, { arch: 'transformer', size: 'micro' }, 'transformer-micro')],
    data: [inputArtifact('data', dataDir)],
    lambada: [inputArtifact('lambada', path.join(DATA, 'lambada-openai'))],
    wikitext: [inputArtifact('wikitext', path.join(DATA, 'wikitext-2-raw_NONCANONICAL'))],
    blimp: [inputArtifact('blimp', path.join(DATA, 'blimp'))],
    lexsim: [inputArtifact('lexsim', path.join(DATA, 'rg-65'))],
  });

  test('eval.owt_val: windows over the val shard set, softmax over all padded rows', async () => {
    const ctx = activityContext('eval_owt', inputs());
    await owtValActivity.run(owtValActivity.params.parse({ profile: 'tiny', windowLength: 32, batch: 4 }), ctx);
    const rows = await readResults(path.join(ctx.outDir, 'results.parquet'));
    const ppl = rows.filter((r) => r.metric === 'ppl');
    expect(ppl.map((r) => [r.model, r.table, r.column, r.profile])).toEqual([
      ['Backpack-Micro', 'Table 2', 'OWT PPL', 'tiny'],
      ['Transformer-Micro', 'Table 2', 'OWT PPL', 'tiny'],
    ]);
    const windows = Math.floor((stream.length - 1) / 32);
    expect(ppl[0].n).toBe(windows);
    // independent check: the same windows through the engine's logits, log-softmax over all 50264 rows
    const model = await loadModel(backpackDir);
    const V = model.config.vocabSize;
    let nll = 0;
    for (let w = 0; w < windows; w++) {
      const input = Int32Array.from(stream.slice(32 * w, 32 * w + 32));
      const { logits } = await model.forward(input, { batch: 1, seq: 32, logits: true });
      for (let j = 0; j < 32; j++) {
        const row = logits!.subarray(j * V, (j + 1) * V);
        let max = -Infinity;
        for (const v of row) max = Math.max(max, v);
        let sum = 0;
        for (const v of row) sum += Math.exp(v - max);
        nll -= row[stream[32 * w + j + 1]] - max - Math.log(sum);
      }
    }
    // the engine's fused cross-entropy against a float64 log-softmax of its own logits
    expect(Math.abs(Math.log(ppl[0].value) - nll / (windows * 32))).toBeLessThan(1e-3);
  });

  test('eval.lambada / eval.wikitext / eval.blimp write placed long-form rows', async () => {
    const lam = activityContext('eval_lambada', inputs());
    await lambadaActivity.run(lambadaActivity.params.parse({ profile: 'tiny', limit: 4 }), lam);
    const lrows = await readResults(path.join(lam.outDir, 'results.parquet'));
    expect(lrows.filter((r) => r.table === 'Table 2').map((r) => `${r.model}/${r.column}`)).toEqual([
      'Backpack-Micro/LAMBADA PPL', 'Backpack-Micro/LAMBADA ACC', 'Transformer-Micro/LAMBADA PPL', 'Transformer-Micro/LAMBADA ACC',
    ]);
    // same number as the task function on the loaded model
    const model = await loadModel(backpackDir);
    const docs = parseLambada(fs.readFileSync(path.join(DATA, 'lambada-openai/lambada_test.jsonl'), 'utf8')).slice(0, 4);
    const direct = await evaluateLambada(model, await loadTokenizer(tokDir), docs);
    expect(lrows[0].value).toBeCloseTo(direct.ppl, 6);

    const wt = activityContext('eval_wikitext', inputs());
    await wikitextActivity.run(wikitextActivity.params.parse({ profile: 'tiny', limit: 1, model: 'custom-label' }), wt);
    const wrows = await readResults(path.join(wt.outDir, 'results.parquet'));
    expect(new Set(wrows.map((r) => r.model))).toEqual(new Set(['custom-label']));
    expect(wrows.filter((r) => r.metric === 'word_perplexity').every((r) => r.value > 1 && r.n === 1)).toBe(true);
    expect(JSON.parse(wrows[0].details).canonical).toBe(false); // the mirror's copy is not byte-identical

    const bl = activityContext('eval_blimp', inputs());
    await blimpActivity.run(blimpActivity.params.parse({ profile: 'tiny', limit: 3, subtasks: ['anaphor_gender_agreement', 'causative'] }), bl);
    const brows = await readResults(path.join(bl.outDir, 'results.parquet'));
    const mean = brows.find((r) => r.model === 'Backpack-Micro' && r.subtask === '' && r.metric === 'acc')!;
    const per = brows.filter((r) => r.model === 'Backpack-Micro' && r.subtask !== '');
    expect(per.map((r) => [r.table, r.row, r.n])).toEqual([['BLiMP by paradigm', 'anaphor_gender_agreement', 3], ['BLiMP by paradigm', 'causative', 3]]);
    expect(mean.value).toBeCloseTo((per[0].value + per[1].value) / 2, 12);
    expect(mean.table).toBe('Table 2');
  });

  test('eval.lexsim: senses for the Backpack, embeddings for the Transformer, coverage rows', async () => {
    const ctx = activityContext('eval_lexsim', {
      train: [
        inputArtifact('train', backpackDir, { arch: 'backpack', size: 'micro' }, 'backpack-micro'),
        inputArtifact('train', gpt2VocabDir, { arch: 'transformer', size: 'micro' }, 'transformer-micro'),
      ],
      lexsim: [inputArtifact('lexsim', path.join(DATA, 'rg-65'))],
    });
    fs.copyFileSync(path.join(tokDir, TOKENIZER_FILE), path.join(backpackDir, TOKENIZER_FILE)); // saved with the checkpoint
    const summary = (await lexsimActivity.run(lexsimActivity.params.parse({ profile: 'tiny', datasets: ['rg65'] }), ctx)) as { models: Array<Record<string, unknown>> };
    expect(summary.models).toHaveLength(2);
    const rows = await readResults(path.join(ctx.outDir, 'results.parquet'));
    const bp = rows.filter((r) => r.model === 'Backpack-Micro' && r.metric === 'spearman');
    expect(bp.map((r) => r.variant)).toEqual([
      'senses/cos/mean', 'senses/minpair/mean', 'senses/maxpair/mean', 'senses/minall/mean', 'senses/maxall/mean',
      'senses/cossense0/mean', 'senses/cossense1/mean', 'senses/cossense2/mean', 'senses/cossense3/mean',
    ]);
    expect(bp.every((r) => r.n === 65 && r.value >= -1 && r.value <= 1 && r.column === 'RG65')).toBe(true);
    expect(bp.find((r) => r.variant === 'senses/minpair/mean')!.row).toBe('Sim_min (Backpack-Micro)');
    const tr = rows.filter((r) => r.model === 'Transformer-Micro' && r.metric === 'spearman');
    expect(tr.map((r) => [r.variant, r.row])).toEqual([['embedding/cos/mean', 'Transformer-Micro (embeddings)']]);
    // GPT-2 BPE splits 6 of RG65's 48 words (PAPER.md §6.2)
    const multi = rows.find((r) => r.model === 'Transformer-Micro' && r.metric === 'multi_subword_words')!;
    expect([multi.value, multi.n]).toEqual([6, 48]);
    expect(rows.find((r) => r.model === 'Transformer-Micro' && r.metric === 'oov_pairs')!.value).toBe(0);
  });

  test('batched scoring through the engine equals one request at a time (padding cannot leak)', async () => {
    const model = await loadModel(backpackDir);
    const tok = await loadTokenizer(tokDir);
    const docs = parseLambada(fs.readFileSync(path.join(DATA, 'lambada-openai/lambada_test.jsonl'), 'utf8')).slice(10, 16);
    const requests = docs.map((d) => ({ context: tok.encode(d.context), continuation: tok.encode(d.continuation) }));
    const batched = await loglikelihoodMany(model, requests);
    const unbatched = { config: model.config, logProbs: (t: Int32Array) => model.logProbs(t), outputEmbeddings: () => model.outputEmbeddings() };
    for (let i = 0; i < requests.length; i++) {
      const one = await loglikelihoodTokens(unbatched, requests[i].context, requests[i].continuation);
      expect(batched[i].ll).toBeCloseTo(one.ll, 3);
      expect(batched[i].greedy).toBe(one.greedy);
    }
  });

  test('an activity without a checkpoint input fails with a clear, non-retryable error', async () => {
    const ctx = activityContext('eval_lambada', { data: [inputArtifact('data', dataDir)] });
    await expect(lambadaActivity.run(lambadaActivity.params.parse({}), ctx)).rejects.toThrow(/no checkpoint \(config\.json \+ model\.safetensors\) among the inputs/);
  });

  test('pipeline eval <task> --json prints the metrics document; bad flags exit 2', async () => {
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await runEval('lambada', ['--checkpoint', path.join(backpackDir, 'model.safetensors'), '--tokenizer', tokDir, '--limit', '2', '--json', '--file', path.join(DATA, 'lambada-openai/lambada_test.jsonl')])).toBe(0);
      const doc = JSON.parse(out.join(''));
      expect(Object.keys(doc)).toEqual(['task', 'ppl', 'acc', 'n']);
      expect(doc.task).toBe('lambada');
      expect(doc.n).toBe(2);
      out.length = 0;
      expect(await runEval('lexsim', ['--checkpoint', backpackDir, '--tokenizer', tokDir, '--dataset', 'rg65', '--method', 'minpair', '--json', '--file', path.join(DATA, 'rg-65/RG65.csv')])).toBe(0);
      expect(Object.keys(JSON.parse(out.join('')))).toEqual(['dataset', 'method', 'vectors', 'subwords', 'spearman', 'n', 'oov', 'multi_subword_words']);
      out.length = 0;
      expect(await runEval('owt-val', ['--checkpoint', gpt2Dir, '--tokenizer', tokDir, '--shards', path.join(dataDir, 'val'), '--window', '16', '--json'])).toBe(0);
      expect(JSON.parse(out.join('')).n).toBe(Math.floor((stream.length - 1) / 16));
      expect(await runEval('lambada', ['--limit', '2'])).toBe(2); // no --checkpoint
      expect(await runEval('lambada', ['--checkpoint', backpackDir, '--limit', 'x'])).toBe(2);
      expect(await runEval('owt-val', ['--checkpoint', backpackDir])).toBe(2); // no --shards
      expect(await runEval('lambada', ['--checkpoint', '/nonexistent'])).toBe(1);
    } finally {
      spy.mockRestore();
      err.mockRestore();
    }
  });
});
