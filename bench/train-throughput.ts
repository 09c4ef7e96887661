/**
 * Training and inference throughput of the native engine, side by side with PyTorch CPU (fp32, same threads,
 * same shapes) when bench/.venv has torch (`python3 -m venv bench/.venv && bench/.venv/bin/pip install torch`).
 * Run: npx tsx bench/train-throughput.ts [--threads 2] [--seconds 20] [--only tiny|micro] [--precision fp32|bf16|both]
 * (bf16: the engine's AMX bf16 matmuls with fp32 accumulation; the PyTorch peer stays fp32, its default)
 * Training = forward + backward + AdamW step (dropout 0.1, clipping 1.0) per batch; inference = forward with
 * logits and loss, no gradients. Writes bench/results/train-throughput.txt.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { buildInfo, createModel, setThreads, type MatmulPrecision } from '../native';
import type { ModelConfig } from '../native/types';

interface Shape {
  name: string;
  arch: 'backpack' | 'gpt2';
  d: number;
  layers: number;
  heads: number;
  senses: number;
  vocab: number;
  seq: number;
  batch: number;
}

const SHAPES: Shape[] = [
  { name: 'tiny', arch: 'backpack', d: 128, layers: 4, heads: 4, senses: 16, vocab: 8192, seq: 256, batch: 8 },
  { name: 'tiny', arch: 'gpt2', d: 128, layers: 4, heads: 4, senses: 16, vocab: 8192, seq: 256, batch: 8 },
  { name: 'micro', arch: 'backpack', d: 384, layers: 6, heads: 6, senses: 16, vocab: 50264, seq: 512, batch: 4 },
  { name: 'micro', arch: 'gpt2', d: 384, layers: 6, heads: 6, senses: 16, vocab: 50264, seq: 512, batch: 4 },
];

function configOf(s: Shape): ModelConfig {
  const c: ModelConfig = { arch: s.arch, vocabSize: s.vocab, realVocabSize: s.vocab - 7, nPositions: s.seq, nEmbd: s.d, nLayer: s.layers, nHead: s.heads, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 };
  if (s.arch === 'backpack') Object.assign(c, { numSenses: s.senses, senseIntermediateScale: 4 });
  return c;
}

function randomTokens(n: number, vocab: number, seed: number): Int32Array {
  let x = seed >>> 0;
  return Int32Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % vocab;
  });
}

/** Runs `fn` once to warm up, then until `seconds` have passed (at least `minIters`); returns seconds per call. */
async function timeIt(fn: () => Promise<unknown>, seconds: number, minIters: number): Promise<number> {
  await fn();
  const t0 = process.hrtime.bigint();
  let n = 0;
  while (n < minIters || Number(process.hrtime.bigint() - t0) / 1e9 < seconds) {
    await fn();
    n++;
  }
  return Number(process.hrtime.bigint() - t0) / 1e9 / n;
}

async function measureNative(s: Shape, seconds: number, precision: MatmulPrecision) {
  const model = createModel(configOf(s), 1);
  const kernel = model.setMatmulPrecision(precision);
  const n = s.batch * s.seq;
  const tokens = randomTokens(n, s.vocab - 7, 7), targets = randomTokens(n, s.vocab - 7, 8);
  let step = 0;
  const trainSec = await timeIt(async () => {
    await model.zeroGrad();
    await model.trainStep(tokens, targets, s.batch, s.seq, { dropout: 0.1, rngSeed: step++, gradScale: 1 });
    await model.optimizerStep({ lr: 1e-4, weightDecay: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, clip: 1 });
  }, seconds, 3);
  const inferSec = await timeIt(() => model.forward(tokens, { batch: s.batch, seq: s.seq, targets }), seconds / 2, 3);
  const params = model.numParams;
  model.dispose();
  return { kernel, train: n / trainSec, infer: n / inferSec, params };
}

function measureTorch(s: Shape, threads: number, seconds: number): { train: number; infer: number } | string {
  const py = path.join(__dirname, '.venv', 'bin', 'python');
  if (!fs.existsSync(py)) return 'skipped: bench/.venv missing (python3 -m venv bench/.venv && bench/.venv/bin/pip install torch)';
  try {
    execFileSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
  } catch {
    return 'skipped: torch is not importable in bench/.venv';
  }
  const args = [path.join(__dirname, 'train-throughput.py'), '--arch', s.arch, '--d', String(s.d), '--layers', String(s.layers), '--heads', String(s.heads), '--senses', String(s.senses), '--vocab', String(s.vocab), '--seq', String(s.seq), '--batch', String(s.batch), '--threads', String(threads), '--seconds', String(seconds)];
  const out = execFileSync(py, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

async function main() {
  const { values } = parseArgs({ options: { threads: { type: 'string', default: '2' }, seconds: { type: 'string', default: '20' }, only: { type: 'string' }, precision: { type: 'string', default: 'both' } } });
  const threads = Number(values.threads), seconds = Number(values.seconds);
  const precisions = values.precision === 'both' ? (['fp32', 'bf16'] as const) : ([values.precision] as ('fp32' | 'bf16')[]);
  if (!precisions.every((p) => p === 'fp32' || p === 'bf16')) throw new Error(`--precision must be fp32, bf16 or both, got '${values.precision}'`);
  setThreads(threads);
  const info = buildInfo();
  const lines: string[] = [];
  const say = (l: string) => {
    console.log(l);
    lines.push(l);
  };
  say(`# npx tsx bench/train-throughput.ts --threads ${threads} --seconds ${seconds} --precision ${values.precision}  (${new Date().toISOString()})`);
  say(`host: ${os.cpus().length} cores, ${os.cpus()[0]?.model}; node ${process.version}; engine gemm=${info.gemm} amx=${info.amx} threads=${info.threads}; load average at start ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on a shared machine skews both columns)`);
  say('ours fp32 = exact fp32 matmuls (OpenBLAS); ours bf16 = bf16 operands, fp32 accumulation (AMX); torch = PyTorch CPU fp32 (its default)');
  say('shape  arch      params      engine      train tok/s  torch train  ratio | infer tok/s  torch infer  ratio');
  const fmt = (x: number) => x.toFixed(0).padStart(11);
  for (const s of SHAPES) {
    if (values.only && s.name !== values.only) continue;
    const ours: { precision: string; kernel: string; train: number; infer: number; params: number }[] = [];
    for (const p of precisions) ours.push({ precision: p, ...(await measureNative(s, seconds, p)) });
    const peer = measureTorch(s, threads, seconds);
    for (const o of ours) {
      const head = `${s.name.padEnd(6)} ${s.arch.padEnd(9)} ${String(o.params).padStart(10)}  ${o.kernel.padEnd(9)} ${fmt(o.train)}`;
      if (typeof peer === 'string') say(`${head}  ${peer} | ${fmt(o.infer)}`);
      else say(`${head}  ${fmt(peer.train)}  ${(o.train / peer.train).toFixed(2).padStart(5)}x | ${fmt(o.infer)}  ${fmt(peer.infer)}  ${(o.infer / peer.infer).toFixed(2).padStart(5)}x`);
    }
  }
  say(`load average at end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results', 'train-throughput.txt'), lines.join('\n') + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
