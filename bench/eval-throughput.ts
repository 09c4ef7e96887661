/**
 * Evaluation throughput of the harness tasks on the native engine (random-init models: speed does not
 * depend on the weights). Prints input tokens/s per task and writes bench/results/eval-throughput.txt.
 * Run: npx tsx bench/eval-throughput.ts [--threads 2] [--shape tiny|micro|all]
 *   tiny  = Backpack d=128, L=4, k=16, a 2,048-id BPE trained here, context 256 (the tiny profile's kind of model)
 *   micro = Backpack-Micro shapes (d=384, L=6, k=16), GPT-2 BPE (50,264 rows), context 512
 * There is no in-process peer: lm-evaluation-harness needs PyTorch + the HF model classes; the numbers here
 * are for planning the DAG (what an eval step costs) and catching regressions.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { buildInfo, createModel, setThreads } from '../native';
import type { ModelConfig } from '../native/types';
import { loadTokenizer, PieceCounter, renderTokenizerJson, trainBpe, TOKENIZER_FILE } from '../datasets/tokenizer';
import { evaluateLambada, parseLambada } from '../activities/evaluation/lambada';
import { evaluateBlimp, parseBlimp } from '../activities/evaluation/blimp';
import { evaluateWikitext, splitWikitextPages } from '../activities/evaluation/wikitext';
import { evaluateWindowPerplexity } from '../activities/evaluation/owt';
import type { EvalTokenizer } from '../activities/evaluation/types';

const DATA = path.resolve(__dirname, '../../shared/data');
const { values } = parseArgs({ options: { threads: { type: 'string', default: '2' }, shape: { type: 'string', default: 'all' } } });
setThreads(Number(values.threads));

async function trainedTokenizer(vocab: number): Promise<EvalTokenizer> {
  const text = fs.readFileSync(path.join(DATA, 'lambada-openai/lambada_test.jsonl'), 'utf8').slice(0, 600_000);
  const counter = new PieceCounter();
  for (const line of text.split('\n')) counter.add(line);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-tok-'));
  fs.writeFileSync(path.join(dir, TOKENIZER_FILE), renderTokenizerJson(trainBpe(counter, { vocabSize: vocab, minFrequency: 2 }).model, { name: `bench-bpe-${vocab}` }));
  return loadTokenizer(dir);
}

interface Line {
  shape: string;
  task: string;
  items: number;
  tokens: number;
  seconds: number;
}

async function benchShape(shape: 'tiny' | 'micro'): Promise<Line[]> {
  const tok = shape === 'tiny' ? await trainedTokenizer(2048) : await loadTokenizer('gpt2');
  const d = shape === 'tiny' ? 128 : 384;
  const config: ModelConfig = {
    arch: 'backpack', vocabSize: Math.ceil(tok.vocabSize / 8) * 8, realVocabSize: tok.vocabSize, nPositions: shape === 'tiny' ? 256 : 512,
    nEmbd: d, nLayer: shape === 'tiny' ? 4 : 6, nHead: shape === 'tiny' ? 4 : 6, numSenses: 16, senseIntermediateScale: 4,
    scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5,
  };
  const model = createModel(config, 1);
  const n = shape === 'tiny' ? 1 : 0.25; // fewer items for the big vocabulary
  const lines: Line[] = [];
  const time = async (task: string, items: number, fn: () => Promise<number>) => {
    const t = performance.now();
    const tokens = await fn();
    lines.push({ shape, task, items, tokens, seconds: (performance.now() - t) / 1000 });
    const l = lines[lines.length - 1];
    console.log(`${shape.padEnd(6)} ${task.padEnd(9)} ${String(items).padStart(5)} items ${String(tokens).padStart(8)} tokens ${l.seconds.toFixed(2).padStart(7)} s ${(tokens / l.seconds).toFixed(0).padStart(8)} tokens/s`);
  };
  const docs = parseLambada(fs.readFileSync(path.join(DATA, 'lambada-openai/lambada_test.jsonl'), 'utf8')).slice(0, Math.round(400 * n));
  await time('lambada', docs.length, async () => (await evaluateLambada(model, tok, docs)).tokens);
  const paradigms = ['anaphor_gender_agreement', 'causative'].map((p) => ({ paradigm: p, pairs: parseBlimp(fs.readFileSync(path.join(DATA, 'blimp', `${p}.jsonl`), 'utf8')).slice(0, Math.round(400 * n)) }));
  await time('blimp', paradigms.reduce((s, p) => s + p.pairs.length, 0), async () => (await evaluateBlimp(model, tok, paradigms)).tokens);
  const pages = splitWikitextPages(fs.readFileSync(path.join(DATA, 'wikitext-2-raw_NONCANONICAL/wiki.test.raw'), 'utf8')).slice(0, Math.max(1, Math.round(4 * n)));
  await time('wikitext', pages.length, async () => (await evaluateWikitext(model, tok, pages)).tokens);
  const stream = Uint32Array.from(tok.encode(docs.map((x) => x.context + x.continuation).join('\n')));
  await time('owt-val', Math.floor((stream.length - 1) / config.nPositions), async () => (await evaluateWindowPerplexity(model, stream, { batch: 8 })).tokens);
  return lines;
}

(async () => {
  const info = buildInfo();
  const header = `eval throughput, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), threads ${values.threads}, gemm ${info.gemm}, load ${os.loadavg()[0].toFixed(1)}`;
  console.log(header);
  const shapes = values.shape === 'all' ? (['tiny', 'micro'] as const) : [values.shape as 'tiny' | 'micro'];
  const lines: Line[] = [];
  for (const s of shapes) lines.push(...(await benchShape(s)));
  const out = [header, ...lines.map((l) => `${l.shape}\t${l.task}\t${l.items} items\t${l.tokens} tokens\t${l.seconds.toFixed(2)} s\t${(l.tokens / l.seconds).toFixed(0)} tokens/s`)].join('\n') + '\n';
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', 'eval-throughput.txt'), out);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
