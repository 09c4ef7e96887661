/**
 * Checkpoints in the Hugging Face layout: config.json + model.safetensors with the `gpt2` key names
 * (`transformer.*`) or the `stanfordnlp/backpack-gpt2` ones (`backpack.*`). Conv1D weights are stored [in, out]
 * and transposed to the engine's Linear [out, in] layout on load (PAPER.md §9.3–9.5). `lm_head.weight` is tied
 * to wte and not stored. Loading is strict: every expected tensor must be present with its exact shape, and
 * only the known aliases/buffers may be extra.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readSafetensors, writeSafetensors, type TensorToWrite } from './safetensors';
import { writeTextAtomic } from './interop/atomic';
import { fromHfConfig, toHfConfig } from './config';
import type { RawTensorInfo } from './binding';
import type { ModelConfig } from './types';

export class CheckpointError extends Error {
  constructor(where: string, message: string) {
    super(`${where}: ${message}`);
    this.name = 'CheckpointError';
  }
}

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';

/** Keys a loader accepts and ignores (aliases of tied/shared tensors, attention mask buffers). */
function isIgnorableKey(key: string): boolean {
  return (
    key === 'lm_head.weight' ||
    key === 'backpack.word_embeddings.weight' ||
    key === 'backpack.position_embeddings.weight' ||
    /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/.test(key)
  );
}

function hfShape(t: RawTensorInfo): number[] {
  return t.conv1d ? [t.shape[1], t.shape[0]] : t.shape.slice();
}

/** [rows][cols] -> [cols][rows] */
function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}

export function readConfigFile(dir: string): ModelConfig {
  const file = path.join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CheckpointError(file, `cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(file, `invalid JSON: ${(e as Error).message}`);
  }
  return fromHfConfig(json, file);
}

/** Fills `params` (engine layout) from a safetensors file; throws on any mismatch. */
export function readWeights(file: string, tensors: RawTensorInfo[], params: Float32Array): void {
  const { tensors: stored } = readSafetensors(file);
  const used = new Set<string>();
  for (const t of tensors) {
    // Original `gpt2` checkpoints store the body without the `transformer.` prefix.
    const candidates = [t.key, t.key.replace(/^transformer\./, '')];
    const key = candidates.find((k) => stored.has(k));
    if (!key) throw new CheckpointError(file, `missing tensor "${t.key}"`);
    used.add(key);
    const s = stored.get(key)!;
    const want = hfShape(t);
    if (s.shape.length !== want.length || s.shape.some((x, i) => x !== want[i]))
      throw new CheckpointError(file, `tensor "${key}" has shape [${s.shape.join(', ')}], config needs [${want.join(', ')}]`);
    if (s.dtype !== 'F32' && s.dtype !== 'F16' && s.dtype !== 'BF16' && s.dtype !== 'F64')
      throw new CheckpointError(file, `tensor "${key}" has dtype ${s.dtype}; weights must be F32, F16 or BF16`);
    let data = s.data;
    if (!data.every(Number.isFinite)) throw new CheckpointError(file, `tensor "${key}" holds non-finite values`);
    if (t.conv1d) data = transpose(data, want[0], want[1]);
    params.set(data, t.offset);
  }
  for (const key of stored.keys()) {
    if (used.has(key) || isIgnorableKey(key) || isIgnorableKey(`transformer.${key}`)) continue;
    throw new CheckpointError(file, `unexpected tensor "${key}" (not part of this architecture)`);
  }
}

export function writeCheckpoint(dir: string, config: ModelConfig, tensors: RawTensorInfo[], params: Float32Array): void {
  fs.mkdirSync(dir, { recursive: true });
  const out = new Map<string, TensorToWrite>();
  for (const t of tensors) {
    // A copy made here also moves arrays created by the addon into this realm (jest runs tests in a vm context).
    let data: Float32Array = new Float32Array(params.subarray(t.offset, t.offset + t.size));
    if (t.conv1d) data = transpose(data, t.shape[0], t.shape[1]);
    out.set(t.key, { dtype: 'F32', shape: hfShape(t), data });
  }
  writeSafetensors(path.join(dir, WEIGHTS_FILE), out, { format: 'pt' });
  writeTextAtomic(path.join(dir, CONFIG_FILE), JSON.stringify(toHfConfig(config), null, 2) + '\n');
}
