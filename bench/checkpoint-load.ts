/**
 * Checkpoint loading at Backpack-Small scale (170,083,584 parameters, 680 MB fp32). Run:
 *   npx tsx bench/checkpoint-load.ts            (needs bench/.venv with torch + safetensors to build the file)
 * Every measurement runs in a fresh process on a warm page cache and reports wall time and peak RSS
 * growth (VmHWM − RSS before loading). Targets (issue 9): load within 2× the time to read the file,
 * peak memory under 2× the tensors' bytes. PyTorch's loaders run side by side as the peer.
 * Output: bench/results/checkpoint-load.txt.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..');
const WORK = path.join(os.tmpdir(), 'backpack-bench-checkpoint-load');
const CKPT = path.join(WORK, 'backpack-small-random.ckpt');
const OURS = path.join(WORK, 'ours');
const PYTHON = process.env.BENCH_PYTHON ?? path.join(ROOT, 'bench', '.venv', 'bin', 'python');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

interface Measurement {
  ms: number;
  peakRssDeltaBytes: number;
  tensorBytes: number;
}

function vmKib(field: string): number {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(field + ':'));
  return Number(line!.split(/\s+/)[1]);
}

/** Child-process side: one measurement, printed as JSON. */
async function measure(what: string, file: string): Promise<Measurement> {
  // Load the modules before the baseline so their memory is not counted.
  const st = await import('../native/safetensors');
  const ta = await import('../native/interop/torch-archive');
  const lightning = await import('../native/interop/lightning');
  const base = vmKib('VmRSS') * 1024;
  const t0 = process.hrtime.bigint();
  let tensorBytes = 0;
  if (what === 'read-file') {
    // The floor: the file's bytes into memory, 64 MiB at a time, nothing else.
    const size = fs.statSync(file).size;
    const buf = Buffer.allocUnsafe(size);
    const fd = fs.openSync(file, 'r');
    for (let at = 0; at < size; ) at += fs.readSync(fd, buf, at, Math.min(64 << 20, size - at), at);
    fs.closeSync(fd);
    tensorBytes = buf.length;
  } else if (what === 'ours-safetensors') {
    for (const t of st.readSafetensors(file).tensors.values()) tensorBytes += t.data.byteLength;
  } else if (what === 'ours-torch-zip') {
    const sd = ta.openTorchStateDict(file);
    for (const [name, ref] of sd.tensors) tensorBytes += sd.archive.materialize(ref, name).data.byteLength;
    sd.archive.close();
  } else if (what === 'ours-lightning-import') {
    const model = lightning.importLightning(file);
    for (const t of model.tensors.values()) tensorBytes += t.data.byteLength;
  } else throw new Error(`unknown measurement ${what}`);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ms, peakRssDeltaBytes: vmKib('VmHWM') * 1024 - base, tensorBytes };
}

function runChild(command: string, args: string[]): Measurement {
  const r = spawnSync(command, args, { encoding: 'utf8', cwd: ROOT, maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const node = (what: string, file: string) => runChild(process.execPath, ['--import', 'tsx', __filename, '--measure', what, file]);
const python = (what: string, file: string) => runChild(PYTHON, [path.join(ROOT, 'bench', 'checkpoint-load-make.py'), 'measure', what, file]);

function best(runs: number, fn: () => Measurement): Measurement {
  const all = Array.from({ length: runs }, fn);
  return all.reduce((a, b) => (b.ms < a.ms ? b : a));
}

function warm(file: string): void {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(64 << 20);
  while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
  fs.closeSync(fd);
}

async function main(): Promise<void> {
  fs.mkdirSync(WORK, { recursive: true });
  if (!fs.existsSync(CKPT)) {
    if (!fs.existsSync(PYTHON)) throw new Error(`${PYTHON} missing: python -m venv bench/.venv && bench/.venv/bin/pip install torch safetensors`);
    console.error('building a Backpack-Small-shaped Lightning checkpoint with PyTorch ...');
    const r = spawnSync(PYTHON, [path.join(ROOT, 'bench', 'checkpoint-load-make.py'), 'make', CKPT], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('building the checkpoint failed');
  }
  if (!fs.existsSync(path.join(OURS, 'model.safetensors'))) {
    const { importCheckpoint } = await import('../native/interop');
    importCheckpoint('lightning', CKPT, OURS);
  }
  const safetensorsFile = path.join(OURS, 'model.safetensors');
  const lines: string[] = [];
  const say = (s: string) => {
    lines.push(s);
    console.log(s);
  };
  say(`# npx tsx bench/checkpoint-load.ts  (${new Date().toISOString()})`);
  say(`host: ${os.cpus().length} cores, ${os.cpus()[0]?.model}; node ${process.version}; best of ${RUNS} runs, warm page cache, one process per run`);
  say(`checkpoint: Backpack-Small shapes, 170,083,584 fp32 parameters; .ckpt ${(fs.statSync(CKPT).size / 1e6).toFixed(1)} MB, model.safetensors ${(fs.statSync(safetensorsFile).size / 1e6).toFixed(1)} MB`);
  say('');
  const rows: [string, string, () => Measurement, string][] = [
    ['read model.safetensors (floor)', 'read', () => node('read-file', safetensorsFile), safetensorsFile],
    ['ours: readSafetensors + float32 views', 'ours', () => node('ours-safetensors', safetensorsFile), safetensorsFile],
    ['peer: safetensors.torch.load_file (+ touch)', 'peer', () => python('safetensors-load', safetensorsFile), safetensorsFile],
    ['read .ckpt (floor)', 'read', () => node('read-file', CKPT), CKPT],
    ['ours: torch zip + safe pickle, all tensors', 'ours', () => node('ours-torch-zip', CKPT), CKPT],
    ['ours: full Lightning import (map + transpose)', 'ours', () => node('ours-lightning-import', CKPT), CKPT],
    ['peer: torch.load(weights_only=True)', 'peer', () => python('torch-load', CKPT), CKPT],
  ];
  const floors = new Map<string, number>();
  say(`${'what'.padEnd(48)} ${'ms'.padStart(8)} ${'× read'.padStart(7)} ${'peak RSS MB'.padStart(12)} ${'× tensors'.padStart(10)}`);
  for (const [label, kind, fn, file] of rows) {
    warm(file);
    const m = best(RUNS, fn);
    if (kind === 'read') floors.set(file, m.ms);
    const ratio = m.ms / (floors.get(file) ?? m.ms);
    const memRatio = m.peakRssDeltaBytes / m.tensorBytes;
    say(`${label.padEnd(48)} ${m.ms.toFixed(0).padStart(8)} ${ratio.toFixed(2).padStart(7)} ${(m.peakRssDeltaBytes / 1e6).toFixed(0).padStart(12)} ${memRatio.toFixed(2).padStart(10)}`);
  }
  say('');
  say('× read: wall time over reading the same file into memory; × tensors: peak RSS growth over the bytes of the tensors returned.');
  const out = path.join(ROOT, 'bench', 'results', 'checkpoint-load.txt');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, lines.join('\n') + '\n');
}

if (process.argv[2] === '--measure') {
  measure(process.argv[3], process.argv[4]).then((m) => console.log(JSON.stringify(m)), (err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
