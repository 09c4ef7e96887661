/**
 * Topic-control generation throughput on the native engine (tiny-profile Backpack shape, random weights):
 * tokens/s of the shared sampler (full recomputation per step, PAPER.md §6) without interventions vs with
 * the annealed sense weights of strength 3, the one-time localization cost, the engine's KV-cache
 * generation with and without the same weights (PPLM-BoW has its own bench: bench/pplm.ts). Run: npx tsx bench/control-generation.ts [--threads 2] [--vocab 8192]
 * Writes bench/results/control-generation.txt. Not pass/fail (shared, noisy machines).
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import { buildInfo, createModel, setThreads } from '../native';
import { generateTopicSamples } from '../activities/control/topic/generate';
import { localizeOnModel, projectionStatsByForward, quantileWeights, strengthWeights } from '../activities/control/topic/localize';

async function main() {
  const { values } = parseArgs({ options: { threads: { type: 'string', default: '2' }, vocab: { type: 'string', default: '8192' }, samples: { type: 'string', default: '16' } } });
  const threads = Number(values.threads);
  const vocab = Number(values.vocab);
  const samples = Number(values.samples);
  setThreads(threads);
  const config = {
    arch: 'backpack' as const,
    vocabSize: vocab,
    realVocabSize: vocab - 7,
    nPositions: 256,
    nEmbd: 128,
    nLayer: 4,
    nHead: 4,
    numSenses: 16,
    senseIntermediateScale: 4,
    scaleAttnByInverseLayerIdx: true,
    layerNormEpsilon: 1e-5,
  };
  const model = createModel(config, 7);
  const eos = vocab - 8;
  const lines: string[] = [];
  const log = (s: string) => {
    lines.push(s);
    process.stdout.write(s + '\n');
  };
  log(`# control generation bench — ${new Date().toISOString()} — ${JSON.stringify(buildInfo())}, threads ${threads}`);
  log(`model: Backpack d=128 L=4 H=4 k=16 V=${vocab}; ${samples} samples of EOS + 98 tokens, batch 8`);

  const skip = (v: number) => v === eos || v >= vocab - 7;
  let t0 = Date.now();
  const stats = await projectionStatsByForward(model, vocab, 16, skip);
  log(`localization normalisers max_u E·C(v)_l for ${vocab}×16 senses by native forward: ${((Date.now() - t0) / 1000).toFixed(2)} s (once per model; cached across topics)`);
  t0 = Date.now();
  const loc = await localizeOnModel((ids) => model.senseVectors(ids), model.outputEmbeddings(), vocab, 16, 128, [100, 200], 'max', skip, { stats });
  const weights = quantileWeights(loc.scores, strengthWeights(3));
  log(`per-topic scores S + quantile weights with cached normalisers: ${((Date.now() - t0) / 1000).toFixed(2)} s`);

  const newTokens = samples * 98;
  const run = async (label: string, delta?: Float32Array, sampler: 'recompute' | 'kv-cache' = 'recompute') => {
    const start = Date.now();
    await generateTopicSamples(model, { delta, maxDelta: weights.maxDelta, samples, batchSize: 8, prompt: [eos], totalLength: 99, seed: 1, sampler });
    const s = (Date.now() - start) / 1000;
    log(`${label.padEnd(52)} ${(newTokens / s).toFixed(1).padStart(8)} tok/s  (${s.toFixed(2)} s)`);
    return newTokens / s;
  };
  const plain = await run('shared sampler, no intervention (strength 0)');
  const steered = await run('shared sampler, annealed senseScale (strength 3)', weights.delta);
  const kv = await run('KV-cache sampler, no intervention', undefined, 'kv-cache');
  const kvSteered = await run('KV-cache sampler, annealed senseScaleFn (strength 3)', weights.delta, 'kv-cache');
  log(`ratio with/without interventions: shared sampler ${(steered / plain).toFixed(3)}, KV cache ${(kvSteered / kv).toFixed(3)}; KV cache / shared sampler: ${(kv / plain).toFixed(2)}× (plain), ${(kvSteered / steered).toFixed(2)}× (steered)`);
  model.dispose();

  const out = path.join(__dirname, 'results', 'control-generation.txt');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, lines.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
