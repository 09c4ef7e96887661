/**
 * The GPU check's summarizer (bench/gpu/summarize.py), which turns the raw lines of calls on a lent GPU into the
 * published tables: results of separate calls merge (--tsv), ours is divided by the PyTorch row of the same shape,
 * runs with an engine knob set are labelled, and a malformed results file is refused with its line number.
 */
import { spawnSync } from 'child_process';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';

const SUMMARIZE = join(__dirname, '..', 'bench', 'gpu', 'summarize.py');

function summarize(...files: string[]) {
  return spawnSync('python3', [SUMMARIZE, '--tsv', ...files], { encoding: 'utf8' });
}

function tsv(dir: string, name: string, rows: Array<[string, object]>): string {
  const path = join(dir, name);
  writeFileSync(path, rows.map(([stem, json]) => `${stem}\t${JSON.stringify(json)}\n`).join(''));
  return path;
}

describe('bench/gpu/summarize.py --tsv', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gpu-summary-'));
  const shape = 'B=16 T=512 H=12 hs=64 dropout=0.1';
  const train = { bench: 'train', arch: 'gpt2', size: 'small', batch: 32, seq: 512, accum: 8, precision: 'bf16' };
  const ours = tsv(dir, 'ours.tsv', [
    ['parity', { check: 'attention-time', shape, fused_ms: 0.25, batched_bf16_ms: 1.5, speedup: 6, fused_forward_ms: 0.08, fused_forward_tflops: 80, batched_bf16_forward_ms: 0.5 }],
    ['train', { ...train, impl: 'ours', tokens_per_s: 505000, mfu: 0.407 }],
    ['train', { ...train, impl: 'ours', tokens_per_s: 500000, mfu: 0.403, logits16: 0 }],
  ]);
  const peers = tsv(dir, 'peers.tsv', [
    ['attention', { bench: 'attention', impl: 'pytorch-sdpa', shape, forward_ms: 0.12, forward_backward_ms: 0.5, forward_tflops: 55, kernel: 'flash' }],
    ['train', { ...train, impl: 'pytorch+compile', precision: 'bf16-autocast', tokens_per_s: 497000, mfu: 0.401 }],
  ]);

  it('merges the calls and divides ours by the peer of the same shape', () => {
    const r = summarize(ours, peers);
    expect(r.status).toBe(0);
    // 0.5 / 0.25 and 0.12 / 0.08: ours over SDPA alone
    expect(r.stdout).toContain('ours/torch speed: forward+backward 2.00x, forward 1.50x');
    const rows = r.stdout.split('\n').filter((l) => l.startsWith('Transformer-Small'));
    expect(rows).toHaveLength(3);
    // 505000 / 497000 = 1.016, 500000 / 497000 = 1.006; the knob's run is labelled
    expect(rows.find((l) => / ours {2,}/.test(l) && l.includes('505000'))).toMatch(/40\.7%\s+1\.02/);
    expect(rows.find((l) => l.includes('ours no-logits16'))).toMatch(/500000\s+40\.3%\s+1\.01/);
  });

  it('refuses a results file whose line has no name, saying which line', () => {
    const bad = join(dir, 'bad.tsv');
    writeFileSync(bad, 'train\t{}\n{"bench": "train"}\n');
    const r = summarize(bad);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`${bad}:2: expected '<name>\\t<json>'`);
  });
});
