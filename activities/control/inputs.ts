/**
 * Finding what a control activity needs among its upstream artifacts — checkpoints (by architecture or
 * step), a tokenizer, a trained classifier, dataset files from `data.fetch` (files/<name>) — with the
 * datasets registry (mirror-aware, checksummed) as the fallback for dataset files.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { InputArtifact } from '../../pipelines/activity';
import { NonRetryableError } from '../../pipelines/activity';
import { allInputs, checkpointInputs, tokenizerInput } from '../evaluation/artifacts';
import { modelLabelFrom } from '../evaluation/placement';
import { checkpointDir, tokenizerSpecFor } from '../evaluation/sources';
import { CLASSIFIER_CONFIG_FILE } from './classifier/classifier';

export type Arch = 'gpt2' | 'backpack';

export interface FoundCheckpoint {
  dir: string;
  arch: Arch;
  step: string;
  label: string;
  input?: InputArtifact;
}

/** Architecture from a checkpoint's config.json (architectures / model_type). */
export function checkpointArch(dir: string): Arch {
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8')) as { architectures?: string[]; model_type?: string };
  const names = [...(config.architectures ?? []), config.model_type ?? ''].join(' ');
  return /backpack/i.test(names) ? 'backpack' : 'gpt2';
}

export function checkpointsAmong(inputs: Record<string, InputArtifact[]>): FoundCheckpoint[] {
  return checkpointInputs(inputs).map(({ dir, input }) => {
    const arch = checkpointArch(dir);
    return { dir, arch, step: input.step, label: modelLabelFrom(input.matrix, arch, arch === 'backpack' ? 'Backpack' : 'Transformer'), input };
  });
}

/**
 * One checkpoint: from `step` when given, else the only one of `arch`. Errors say what was found.
 */
export function pickCheckpoint(inputs: Record<string, InputArtifact[]>, want: { arch?: Arch; step?: string; what: string }): FoundCheckpoint {
  const all = checkpointsAmong(inputs);
  let found = all;
  if (want.step) found = found.filter((c) => c.step === want.step);
  if (want.arch) found = found.filter((c) => c.arch === want.arch);
  if (found.length === 1) return found[0];
  const seen = all.map((c) => `${c.step} (${c.arch})`).join(', ') || 'none';
  const wanted = [want.arch && `arch ${want.arch}`, want.step && `step ${want.step}`].filter(Boolean).join(', ') || 'any';
  throw new NonRetryableError(
    `${want.what}: need exactly one checkpoint (${wanted}) among the inputs, found ${found.length}; inputs hold: ${seen}`,
  );
}

export function optionalCheckpoint(inputs: Record<string, InputArtifact[]>, want: { arch?: Arch; step?: string }): FoundCheckpoint | undefined {
  const found = checkpointsAmong(inputs).filter((c) => (!want.step || c.step === want.step) && (!want.arch || c.arch === want.arch));
  return found.length === 1 ? found[0] : undefined;
}

/** Tokenizer spec for a checkpoint: explicit > tokenizer artifact among inputs > the checkpoint's own. */
export function tokenizerFor(inputs: Record<string, InputArtifact[]>, checkpoint: string, explicit?: string): string {
  return explicit ?? tokenizerInput(inputs) ?? tokenizerSpecFor(checkpoint);
}

export function checkpointFromPath(spec: string): { dir: string; arch: Arch } {
  const dir = checkpointDir(spec);
  return { dir, arch: checkpointArch(dir) };
}

/** A classifier artifact among the inputs (holds classifier.json). */
export function classifierAmong(inputs: Record<string, InputArtifact[]>): string | undefined {
  for (const input of allInputs(inputs)) {
    for (const d of [input.dir, path.join(input.dir, 'classifier')]) {
      if (fs.existsSync(path.join(d, CLASSIFIER_CONFIG_FILE))) return d;
    }
  }
  return undefined;
}

/**
 * Local path of a dataset file: a `data.fetch` artifact among the inputs (files/<file>), else the
 * registry (mirror from PIPELINE_DATA_MIRROR, or the canonical host), cached under the data cache.
 */
export async function datasetFile(inputs: Record<string, InputArtifact[]>, dataset: string, file: string, signal?: AbortSignal): Promise<string> {
  for (const input of allInputs(inputs)) {
    for (const candidate of [path.join(input.dir, 'files', file), path.join(input.dir, file)]) {
      if (fs.existsSync(candidate)) return candidate;
    }
  }
  const { fetchDataset } = await import('../../datasets/registry');
  const { dataCacheDir } = await import('../data');
  const fetched = await fetchDataset(dataset, { cacheDir: dataCacheDir(), signal });
  const p = fetched.files[file];
  if (!p) throw new NonRetryableError(`dataset ${dataset} has no file ${file}`);
  return p;
}
