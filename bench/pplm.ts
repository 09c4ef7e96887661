/**
 * PPLM-BoW seconds per sample (PAPER.md §6.4: 3 iterations, window 5, gamma 1.5, KL 0.01, gm 0.9) on random
 * GPT-2 weights of two shapes — the tiny profile's (d128/L4/H4, vocab 8192) and GPT-2-small's (d768/L12/H12,
 * vocab 50257) — side by side:
 *   typescript  the float64 TypeScript reference (one-token steps + exact backward; native full forward for u)
 *   native      the C++ session (float32, bp::gemm), one sample at a time and `--batch` samples in lockstep
 *   torch       the PyTorch peer (bench/pplm-torch.py: the same algorithm with autograd, one sample at a time,
 *               as the authors' code runs it), when bench/.venv has torch
 * Run: npx tsx bench/pplm.ts [--threads 2] [--batch 32] [--shapes tiny,small]
 * Writes bench/results/pplm.txt. Not pass/fail (shared, noisy machines).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { buildInfo, createModel, setThreads, type ModelConfig, type NativeModel } from '../native';
import { PplmSession } from '../native/pplm';
import { loadGpt2Weights } from '../activities/control/pplm/gpt2';
import { pplmSamplesNative } from '../activities/control/pplm/native';
import { pplmSample, PPLM_DEFAULTS, type PplmOptions } from '../activities/control/pplm/pplm';
import { nativeUnperturbed } from '../activities/control/pplm/run';
import { Rng } from '../activities/control/util/rng';

interface Shape {
  name: string;
  config: ModelConfig;
  /** New tokens per sample. */
  tokens: number;
  /** Samples timed for the one-at-a-time engines. */
  samples: number;
}

const SHAPES: Shape[] = [
  {
    name: 'tiny',
    config: { arch: 'gpt2', vocabSize: 8192, realVocabSize: 8185, nPositions: 256, nEmbd: 128, nLayer: 4, nHead: 4, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 },
    tokens: 20,
    samples: 2,
  },
  {
    name: 'small',
    config: { arch: 'gpt2', vocabSize: 50257, realVocabSize: 50257, nPositions: 1024, nEmbd: 768, nLayer: 12, nHead: 12, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 },
    tokens: 10,
    samples: 1,
  },
];

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

async function main() {
  const { values } = parseArgs({ options: { threads: { type: 'string', default: '2' }, batch: { type: 'string', default: '32' }, shapes: { type: 'string', default: 'tiny,small' } } });
  const threads = Number(values.threads);
  const batch = Number(values.batch);
  setThreads(threads);
  const lines: string[] = [];
  const log = (s: string) => {
    lines.push(s);
    process.stdout.write(s + '\n');
  };
  log(`# PPLM-BoW bench — ${new Date().toISOString()} — ${JSON.stringify(buildInfo())}, threads ${threads}, ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} at start`);
  log('# seconds per sample of EOS + N new tokens; stepsize 0.04, 3 iterations, window 5, bag of 3 ids; random weights');
  const python = path.join(__dirname, '.venv', 'bin', 'python');
  for (const shape of SHAPES.filter((s) => values.shapes.split(',').includes(s.name))) {
    const { config } = shape;
    const model: NativeModel = createModel(config, 7);
    const eos = config.vocabSize - 8;
    const options: PplmOptions = { ...PPLM_DEFAULTS, bag: [100, 200, 300], stepsize: 0.04, length: shape.tokens };
    log(`\n## ${shape.name}: d${config.nEmbd}/L${config.nLayer}/H${config.nHead}, vocab ${config.vocabSize}, ${shape.tokens} new tokens`);
    const results: Record<string, number> = {};

    // Native, one sample at a time and a batch in lockstep (warm-up sample first).
    const one = await PplmSession.open(model, 1, shape.tokens + 1);
    await pplmSamplesNative(one, eos, { ...options, length: 3 }, [new Rng(99)]);
    let t0 = process.hrtime.bigint();
    for (let s = 0; s < shape.samples; s++) await pplmSamplesNative(one, eos, options, [new Rng(s)]);
    results['native, batch 1'] = seconds(t0) / shape.samples;
    const many = await PplmSession.open(model, batch, shape.tokens + 1);
    t0 = process.hrtime.bigint();
    await pplmSamplesNative(many, eos, options, Array.from({ length: batch }, (_, s) => new Rng(s)));
    results[`native, batch ${batch}`] = seconds(t0) / batch;

    // The float64 TypeScript reference (as control.pplm v1 ran it: native full forward for u).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pplm-'));
    try {
      await model.save(dir);
      const weights = loadGpt2Weights(dir);
      t0 = process.hrtime.bigint();
      for (let s = 0; s < shape.samples; s++) await pplmSample(weights, nativeUnperturbed(model), eos, options, new Rng(s));
      results['typescript float64'] = seconds(t0) / shape.samples;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    model.dispose();

    if (fs.existsSync(python)) {
      // Its own thread count and one thread: on a shared, oversubscribed machine torch's thread pool can be far
      // slower than a single thread, so both are shown and the ratio below uses the faster.
      for (const t of [...new Set([threads, 1])]) {
        try {
          const out = execFileSync(python, [path.join(__dirname, 'pplm-torch.py'), '--vocab', String(config.vocabSize), '--d', String(config.nEmbd), '--layers', String(config.nLayer), '--heads', String(config.nHead), '--positions', String(config.nPositions), '--tokens', String(shape.tokens), '--samples', String(shape.samples), '--threads', String(t)], { encoding: 'utf8' });
          const r = JSON.parse(out.trim().split('\n').pop()!);
          results[`pytorch ${r.torch}, batch 1, ${t} thr`] = r.seconds_per_sample;
        } catch (e) {
          log(`pytorch peer failed: ${(e as Error).message.split('\n')[0]}`);
        }
      }
    } else log('pytorch peer skipped (no bench/.venv)');

    const base = results['native, batch 1'];
    for (const [name, s] of Object.entries(results)) {
      log(`${name.padEnd(38)} ${s.toFixed(3).padStart(9)} s/sample  ${(s / shape.tokens * 1000).toFixed(1).padStart(8)} ms/token  ${(s / base).toFixed(2).padStart(7)}× native batch 1`);
    }
    const torch = Object.entries(results).filter(([k]) => k.startsWith('pytorch')).map(([, v]) => v);
    const batched = results[`native, batch ${batch}`];
    const parts = [`typescript/native ${(results['typescript float64'] / base).toFixed(1)}× (batch 1)`];
    if (torch.length) parts.push(`pytorch/native ${(Math.min(...torch) / base).toFixed(1)}× (batch 1 each), ${(Math.min(...torch) / batched).toFixed(1)}× (native batch ${batch})`);
    log(`ratios: ${parts.join('; ')}`);
  }
  const out = path.join(__dirname, 'results', 'pplm.txt');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, lines.join('\n') + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
