/**
 * Fuzzing the loaders with random mutations of valid checkpoints for a fixed budget: every input
 * either loads or fails with one of our own error types; nothing crashes, nothing hangs.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openTorchStateDict, CheckpointError } from '../native/interop/torch-archive';
import { ZipArchive } from '../native/interop/zip';
import { readSafetensors, SafetensorsError } from '../native/safetensors';
import { buildTorchZip } from './helpers/interop-builders';
import { convertCheckpoint } from '../native/interop';
import { ImportError } from '../native/interop/model-tensors';
import { ModelConfigError } from '../native/config';

const FIXTURES = path.join(__dirname, 'fixtures', 'interop');
const ITERATIONS_PER_KIND = 300;
const BUDGET_MS = 2500;

/** Small deterministic PRNG so a failure can be replayed from its iteration number. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Flips, overwrites with interesting values, inserts, deletes or duplicates bytes. */
function mutate(input: Uint8Array, rand: () => number, region?: [number, number]): Uint8Array {
  let bytes = Buffer.from(input);
  const [lo, hi] = region ?? [0, bytes.length];
  const pick = () => lo + Math.floor(rand() * Math.max(1, hi - lo));
  const edits = 1 + Math.floor(rand() * 6);
  for (let e = 0; e < edits && bytes.length > 0; e++) {
    const at = Math.min(pick(), bytes.length - 1);
    const choice = rand();
    if (choice < 0.35) bytes[at] ^= 1 << Math.floor(rand() * 8);
    else if (choice < 0.6) bytes[at] = [0, 0xff, 0x7f, 0x80, 0x01, 0x28, 0x2e, 0x52, 0x62, 0x63][Math.floor(rand() * 10)];
    else if (choice < 0.7) bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + Math.floor(rand() * 8))]);
    else if (choice < 0.8) bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([Math.floor(rand() * 256)]), bytes.subarray(at)]);
    else if (choice < 0.9) {
      const len = Math.floor(rand() * 32);
      bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at, at + len), bytes.subarray(at)]);
    } else bytes = bytes.subarray(0, at);
  }
  return bytes;
}

const OUR_ERRORS = [CheckpointError, SafetensorsError, ImportError, ModelConfigError];

function loadTorch(file: string): void {
  const sd = openTorchStateDict(file);
  try {
    for (const [name, ref] of sd.tensors) sd.archive.materialize(ref, name).data;
  } finally {
    sd.archive.close();
  }
}

/** The whole Lightning import on top of the loader (mapping, shape checks, transposes). */
function importLightningFile(file: string): void {
  convertCheckpoint('lightning', file);
}

function loadSafetensors(file: string): void {
  for (const t of readSafetensors(file).tensors.values()) void t.data;
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interop-fuzz-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function fuzz(label: string, seeds: Uint8Array[], make: (seed: Uint8Array, rand: () => number) => Uint8Array, load: (file: string) => void) {
  const rand = mulberry32(label.length * 7919);
  const file = path.join(dir, `${label}.bin`);
  const start = Date.now();
  let loaded = 0;
  let refused = 0;
  const crashes: string[] = [];
  for (let i = 0; i < ITERATIONS_PER_KIND && Date.now() - start < BUDGET_MS; i++) {
    fs.writeFileSync(file, make(seeds[i % seeds.length], rand));
    const t0 = Date.now();
    try {
      load(file);
      loaded++;
    } catch (err) {
      if (OUR_ERRORS.some((E) => err instanceof E)) refused++;
      else crashes.push(`iteration ${i}: ${(err as Error)?.stack ?? String(err)}`);
    }
    // A hang guard, not a timing assertion: one tiny file must never take seconds.
    if (Date.now() - t0 > 2000) crashes.push(`iteration ${i}: took ${Date.now() - t0} ms`);
  }
  expect(crashes).toEqual([]);
  expect(loaded + refused).toBeGreaterThan(50);
  if (process.env.FUZZ_VERBOSE) console.log(label, { loaded, refused });
  return { loaded, refused };
}

describe('fuzzing', () => {
  const torchFiles = ['views.pt', 'lightning-transformer.ckpt', 'hf-gpt2/pytorch_model.bin'].map((f) => fs.readFileSync(path.join(FIXTURES, f)));

  test('raw byte mutations of torch archives (zip layer)', () => {
    const { refused } = fuzz('zip', torchFiles, (seed, rand) => {
      // Aim half of the mutations at the central directory and end record, where the structure is.
      const tail = rand() < 0.5 ? ([Math.max(0, seed.length - 1200), seed.length] as [number, number]) : undefined;
      return mutate(seed, rand, tail);
    }, loadTorch);
    expect(refused).toBeGreaterThan(0);
  });

  test('pickle mutations inside well-formed archives (interpreter layer)', () => {
    // Re-zip each mutated data.pkl with valid CRCs so the interpreter itself is exercised.
    const parts = torchFiles.map((bytes, i) => {
      const file = path.join(dir, `seed-${i}.pt`);
      fs.writeFileSync(file, bytes);
      const zip = ZipArchive.open(file);
      try {
        const entries = [...zip.entries.values()];
        const pkl = entries.find((e) => e.name.endsWith('/data.pkl'))!;
        const storages: Record<string, Uint8Array> = {};
        for (const e of entries) {
          const m = /\/data\/(\w+)$/.exec(e.name);
          if (m) storages[m[1]] = zip.read(e);
        }
        return { pickle: zip.read(pkl), storages };
      } finally {
        zip.close();
      }
    });
    let which = 0;
    const { refused } = fuzz('pickle', parts.map((p) => p.pickle), (seed, rand) => {
      const part = parts[which++ % parts.length];
      return buildTorchZip(mutate(part.pickle, rand), part.storages);
    }, loadTorch);
    expect(refused).toBeGreaterThan(0);
  });

  test('pickle mutations through the full Lightning importer', () => {
    const file = path.join(dir, 'seed-lightning.ckpt');
    fs.writeFileSync(file, fs.readFileSync(path.join(FIXTURES, 'lightning-backpack-shrink-fp16.ckpt')));
    const zip = ZipArchive.open(file);
    const entries = [...zip.entries.values()];
    const pickle = zip.read(entries.find((e) => e.name.endsWith('/data.pkl'))!);
    const storages: Record<string, Uint8Array> = {};
    for (const e of entries) {
      const m = /\/data\/(\w+)$/.exec(e.name);
      if (m) storages[m[1]] = zip.read(e);
    }
    zip.close();
    const { loaded, refused } = fuzz('lightning-import', [pickle], (seed, rand) => buildTorchZip(mutate(seed, rand), storages), importLightningFile);
    expect(refused).toBeGreaterThan(0);
    expect(loaded).toBeGreaterThan(0); // some mutations (e.g. in metadata) still import
  });

  test('safetensors header and size mutations', () => {
    const seeds = ['views.expected.safetensors', 'hf-gpt2.expected.safetensors'].map((f) => fs.readFileSync(path.join(FIXTURES, f)));
    const { refused } = fuzz('safetensors', seeds, (seed, rand) => {
      const headerEnd = 8 + Number(Buffer.from(seed).readBigUInt64LE(0));
      return mutate(seed, rand, rand() < 0.8 ? [0, headerEnd] : undefined);
    }, loadSafetensors);
    expect(refused).toBeGreaterThan(0);
  });
});
