/**
 * Where an evaluation gets its model, tokenizer and data. The CLI and the activities both come through
 * here, so a checkpoint evaluated by hand and one evaluated in the DAG load the same way.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { EvalModel, EvalTokenizer } from './types';

/** A checkpoint is a directory with config.json + model.safetensors; a path to either file means its directory. */
export function checkpointDir(spec: string): string {
  const abs = path.resolve(spec);
  if (!fs.existsSync(abs)) throw new Error(`checkpoint ${spec}: no such file or directory`);
  const dir = fs.statSync(abs).isDirectory() ? abs : path.dirname(abs);
  for (const f of ['config.json', 'model.safetensors']) {
    if (!fs.existsSync(path.join(dir, f))) throw new Error(`checkpoint ${spec}: ${path.join(dir, f)} is missing`);
  }
  return dir;
}

/** Finds a checkpoint inside an artifact: the directory itself or one level down (e.g. final/). */
export function findCheckpoint(artifactDir: string): string | null {
  const isCkpt = (d: string) => fs.existsSync(path.join(d, 'config.json')) && fs.existsSync(path.join(d, 'model.safetensors'));
  if (isCkpt(artifactDir)) return artifactDir;
  const subdirs = fs.readdirSync(artifactDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  // prefer the names a training step gives its final weights
  for (const name of ['final', 'checkpoint', 'model', ...subdirs]) {
    const d = path.join(artifactDir, name);
    if (fs.existsSync(d) && isCkpt(d)) return d;
  }
  return null;
}

export interface ModelLoadOptions {
  device?: string;
  threads?: number;
}

/** Loads a checkpoint with the native engine (imported lazily: the CLI does not pay for it elsewhere). */
export async function loadEvalModel(spec: string, opts: ModelLoadOptions = {}): Promise<EvalModel & { dispose?(): void }> {
  const dir = checkpointDir(spec);
  const enginePath = '../../native/index'; // TODO(native): typed import once native/index.ts lands
  const native = (await import(enginePath)) as { loadModel(dir: string, opts: ModelLoadOptions): Promise<EvalModel & { dispose?(): void }> };
  return native.loadModel(dir, opts);
}

export async function loadEvalTokenizer(spec: string): Promise<EvalTokenizer> {
  const { loadTokenizer } = await import('../../datasets/tokenizer/index');
  return loadTokenizer(spec);
}

/** The tokenizer a checkpoint was trained with: its `tokenizer` record in config.json when there is one. */
export function tokenizerSpecFor(checkpoint: string, explicit?: string): string {
  if (explicit) return explicit;
  const dir = checkpointDir(checkpoint);
  for (const candidate of [dir, path.join(dir, 'tokenizer')]) {
    if (fs.existsSync(path.join(candidate, 'tokenizer.json'))) return candidate;
  }
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { vocab_size?: number; real_vocab_size?: number };
  const real = config.real_vocab_size ?? config.vocab_size;
  if (real === 50257 || config.vocab_size === 50264 || config.vocab_size === 50257) return 'gpt2';
  throw new Error(`checkpoint ${checkpoint}: cannot tell its tokenizer (real vocabulary ${real}); pass --tokenizer gpt2|<dir>`);
}

/** The repository root (holds package.json), found from this file in both src and dist layouts. */
function repoRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'activities'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

/**
 * The local path of one evaluation data file. `explicit` (--file) wins. Otherwise the datasets registry
 * fetches it (mirror-aware, checksummed) when that module is present; otherwise the data mirror directory
 * ($BACKPACK_DATA_DIR, else ../shared/data beside the repository) is read directly.
 */
export async function resolveDataFile(dataset: string, file: string, explicit?: string): Promise<string> {
  if (explicit) {
    if (!fs.existsSync(explicit)) throw new Error(`--file ${explicit}: no such file`);
    return path.resolve(explicit);
  }
  const registry = await importRegistry();
  if (registry) return registry.fetchDataset(dataset, file);
  const roots = [process.env.BACKPACK_DATA_DIR, path.resolve(repoRoot(), '../shared/data')].filter((r): r is string => !!r);
  for (const root of roots) {
    const p = path.join(root, dataset, file);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`data file ${dataset}/${file} not found (looked in ${roots.join(', ')}); pass --file <path> or set BACKPACK_DATA_DIR`);
}

interface Registry {
  fetchDataset(dataset: string, file: string): Promise<string>;
}

async function importRegistry(): Promise<Registry | null> {
  const candidate = path.join(repoRoot(), 'datasets', 'registry');
  const exists = ['.ts', '.js'].some((ext) => fs.existsSync(candidate + ext)) || fs.existsSync(path.join(__dirname, '../../datasets/registry.js'));
  if (!exists) return null;
  const modulePath = '../../datasets/registry';
  const mod = (await import(modulePath)) as Partial<Registry>;
  return typeof mod.fetchDataset === 'function' ? (mod as Registry) : null;
}
