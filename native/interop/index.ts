/**
 * Checkpoint interop entry points: import foreign checkpoints into our format, export ours to the
 * Hugging Face layout, and inspect any weight file without loading it into the engine.
 */
import * as fs from 'fs';
import * as path from 'path';
import { importLightning, type LightningImportOptions } from './lightning';
import { importHf, exportHf, resolveHfFiles, type ExportOptions } from './hf';
import { writeImportedModel, parameterCount, type ImportedModel } from './model-tensors';
import { openTensorSource, sniffFormat } from './tensor-source';
import { DTYPE_SIZE } from './dtype';

export type ImportSourceKind = 'lightning' | 'hf-backpack' | 'hf-gpt2';

export { exportHf, type ExportOptions };
export { ImportError } from './model-tensors';
export { CheckpointError } from './torch-archive';

/** Converts `input` (file or HF model directory) and returns the model in memory. */
export function convertCheckpoint(kind: ImportSourceKind, input: string, options: LightningImportOptions = {}): ImportedModel {
  if (kind === 'lightning') return importLightning(input, options);
  return importHf(kind, input);
}

/** Converts and writes our checkpoint directory (config.json, model.safetensors, import.json). */
export function importCheckpoint(kind: ImportSourceKind, input: string, outDir: string, options: LightningImportOptions = {}) {
  const model = convertCheckpoint(kind, input, options);
  writeImportedModel(outDir, model);
  return { config: model.config, parameters: parameterCount(model), tensors: model.tensors.size };
}

export interface InspectReport {
  file: string;
  format: 'safetensors' | 'torch-zip';
  kind: 'lightning' | 'state_dict';
  bytes: number;
  tensors: { name: string; dtype: string; shape: number[]; aliasOf?: string }[];
  /** Unique tensors' elements (aliases and tied weights counted once). */
  parameters: number;
  tensorBytes: number;
  dtypes: Record<string, number>;
  metadata?: Record<string, unknown>;
  config?: Record<string, unknown>;
  hyperParameters?: unknown;
  topLevelKeys?: string[];
}

/** Describes a weight file (or a model directory) from its header/pickle alone: no tensor bytes are read. */
export function inspectCheckpoint(target: string): InspectReport {
  let file = target;
  let config: Record<string, unknown> | undefined;
  if (fs.statSync(target).isDirectory()) {
    const resolved = resolveHfFiles(target);
    file = resolved.weights;
    config = resolved.config;
  }
  if (sniffFormat(file) === 'unknown') throw new Error(`${file}: neither a safetensors file nor a torch.save zip archive`);
  const source = openTensorSource(file);
  try {
    const tensors: InspectReport['tensors'] = [];
    const dtypes: Record<string, number> = {};
    let parameters = 0;
    let tensorBytes = 0;
    for (const t of source.tensors.values()) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      parameters += n;
      tensorBytes += n * DTYPE_SIZE[t.dtype];
      dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape });
    }
    for (const [name, target] of source.aliases) {
      const t = source.tensors.get(target)!;
      tensors.push({ name, dtype: t.dtype, shape: t.shape, aliasOf: target });
    }
    tensors.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const report: InspectReport = {
      file: path.resolve(file),
      format: source.format,
      kind: source.kind,
      bytes: fs.statSync(file).size,
      tensors,
      parameters,
      tensorBytes,
      dtypes,
    };
    if (source.format === 'safetensors') report.metadata = source.info;
    if (config) report.config = config;
    if (source.kind === 'lightning') {
      report.metadata = source.info;
      report.hyperParameters = source.hyperParameters;
      report.topLevelKeys = source.topLevelKeys;
    }
    return report;
  } finally {
    source.close();
  }
}
