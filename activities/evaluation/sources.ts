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
  const native = await import('../../native/index');
  return native.loadModel(dir, opts);
}

export async function loadEvalTokenizer(spec: string): Promise<EvalTokenizer> {
  const { loadTokenizer } = await import('../../datasets/tokenizer/index');
  return loadTokenizer(spec);
}

/**
 * The tokenizer for a checkpoint: `explicit` (--tokenizer / the `tokenizer` param); a tokenizer.json saved
 * with the checkpoint; `upstream` (a tokenizer artifact among the activity's inputs); 'gpt2' for a model
 * with GPT-2's vocabulary (50,257 real ids, padded to 50,264).
 */
export function tokenizerSpecFor(checkpoint: string, explicit?: string, upstream?: string | null): string {
  if (explicit) return explicit;
  const dir = checkpointDir(checkpoint);
  for (const candidate of [dir, path.join(dir, 'tokenizer')]) {
    if (fs.existsSync(path.join(candidate, 'tokenizer.json'))) return candidate;
  }
  if (upstream) return upstream;
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { vocab_size?: number; real_vocab_size?: number };
  const real = config.real_vocab_size ?? config.vocab_size;
  if (real === 50257 || (config.real_vocab_size === undefined && config.vocab_size === 50264)) return 'gpt2';
  throw new Error(`checkpoint ${checkpoint}: cannot tell its tokenizer (real vocabulary ${real}); pass --tokenizer gpt2|<dir>`);
}

/**
 * The local path of one evaluation data file, first found of:
 * 1. `explicit` (the CLI's --file);
 * 2. `dirs`: upstream `data.fetch` artifacts (their files/ directory) or any directory holding the file;
 * 3. the datasets registry, `fetchDataset(dataset)`: verified download into the data cache, from
 *    $PIPELINE_DATA_MIRROR when set (a shared/data-layout directory or URL), else the canonical hosts.
 */
export async function resolveDataFile(dataset: string, file: string, opts: { explicit?: string; dirs?: string[]; signal?: AbortSignal } = {}): Promise<string> {
  if (opts.explicit) {
    if (!fs.existsSync(opts.explicit)) throw new Error(`--file ${opts.explicit}: no such file`);
    return path.resolve(opts.explicit);
  }
  for (const dir of opts.dirs ?? []) {
    for (const candidate of [path.join(dir, 'files', file), path.join(dir, file)]) if (fs.existsSync(candidate)) return candidate;
  }
  const [{ fetchDataset }, { dataCacheDir }] = await Promise.all([import('../../datasets/registry'), import('../data')]);
  const fetched = await fetchDataset(dataset, { cacheDir: dataCacheDir(), signal: opts.signal });
  const local = fetched.files[file];
  if (!local) throw new Error(`dataset ${dataset} has no file ${file} (files: ${Object.keys(fetched.files).join(', ')})`);
  return local;
}
