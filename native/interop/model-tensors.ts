/**
 * What an importer produces, and how it becomes our checkpoint directory: config.json (Hugging Face
 * GPT2Config names, native/config.ts) + model.safetensors in F32 with the HF key names (PAPER.md §9.3–9.5).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { ModelConfig } from '../types';
import { toHfConfig, validateConfig, senseHidden } from '../config';
import { writeSafetensors, type TensorToWrite } from '../safetensors';
import { writeTextAtomic } from './atomic';

export interface ImportedModel {
  config: ModelConfig;
  /** HF key → F32 tensor in the HF layout (Conv1D [in, out]). */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  /** Provenance for import.json: source format, ignored keys, aliases, hyper-parameters used. */
  provenance: Record<string, unknown>;
}

export class ImportError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'ImportError';
  }
}

/** Hidden sizes of the GPT-2 family and the paper's sizes: n_embd → n_head (PAPER.md §3.1). */
export const HEADS_BY_WIDTH: Readonly<Record<number, number>> = { 384: 6, 640: 8, 768: 12, 1024: 16, 1280: 20, 1600: 25 };

export const GPT2_REAL_VOCAB = 50257;
export const GPT2_PADDED_VOCAB = 50264;

/** The HF-layout tensors a config implies, with shapes: the contract every importer is checked against. */
export function expectedTensors(c: ModelConfig): Map<string, number[]> {
  const d = c.nEmbd;
  const out = new Map<string, number[]>();
  const body = c.arch === 'backpack' ? 'backpack.gpt2_model.' : 'transformer.';
  out.set(`${body}wte.weight`, [c.vocabSize, d]);
  out.set(`${body}wpe.weight`, [c.nPositions, d]);
  for (let i = 0; i < c.nLayer; i++) {
    const p = `${body}h.${i}.`;
    out.set(`${p}ln_1.weight`, [d]);
    out.set(`${p}ln_1.bias`, [d]);
    out.set(`${p}attn.c_attn.weight`, [d, 3 * d]);
    out.set(`${p}attn.c_attn.bias`, [3 * d]);
    out.set(`${p}attn.c_proj.weight`, [d, d]);
    out.set(`${p}attn.c_proj.bias`, [d]);
    out.set(`${p}ln_2.weight`, [d]);
    out.set(`${p}ln_2.bias`, [d]);
    out.set(`${p}mlp.c_fc.weight`, [d, 4 * d]);
    out.set(`${p}mlp.c_fc.bias`, [4 * d]);
    out.set(`${p}mlp.c_proj.weight`, [4 * d, d]);
    out.set(`${p}mlp.c_proj.bias`, [d]);
  }
  out.set(`${body}ln_f.weight`, [d]);
  out.set(`${body}ln_f.bias`, [d]);
  if (c.arch === 'backpack') {
    const h = senseHidden(c);
    const kd = (c.numSenses as number) * d;
    const n = 'backpack.sense_network.';
    for (const ln of ['ln', 'block.ln_1', 'block.ln_2']) {
      out.set(`${n}${ln}.weight`, [d]);
      out.set(`${n}${ln}.bias`, [d]);
    }
    out.set(`${n}block.mlp.c_fc.weight`, [d, h]);
    out.set(`${n}block.mlp.c_fc.bias`, [h]);
    out.set(`${n}block.mlp.c_proj.weight`, [h, d]);
    out.set(`${n}block.mlp.c_proj.bias`, [d]);
    out.set(`${n}final_mlp.c_fc.weight`, [d, h]);
    out.set(`${n}final_mlp.c_fc.bias`, [h]);
    out.set(`${n}final_mlp.c_proj.weight`, [h, kd]);
    out.set(`${n}final_mlp.c_proj.bias`, [kd]);
    out.set('backpack.sense_weight_net.c_attn.weight', [2 * d, d]);
    out.set('backpack.sense_weight_net.c_attn.bias', [2 * d]);
  }
  return out;
}

/** Checks an imported model against expectedTensors: same names, same shapes, finite values. */
export function checkComplete(file: string, model: ImportedModel): void {
  validateConfig(model.config, file);
  const want = expectedTensors(model.config);
  for (const [name, shape] of want) {
    const t = model.tensors.get(name);
    if (!t) throw new ImportError(file, `conversion produced no tensor "${name}"`);
    if (!sameShape(t.shape, shape)) throw new ImportError(file, `tensor "${name}" has shape [${t.shape}], the config needs [${shape}]`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) throw new ImportError(file, `tensor "${name}" holds ${t.data.length} values, expected ${n}`);
  }
  for (const name of model.tensors.keys()) if (!want.has(name)) throw new ImportError(file, `conversion produced an unexpected tensor "${name}"`);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** [rows][cols] → [cols][rows]: Linear [out, in] ↔ Conv1D [in, out]. */
export function transpose2d(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  // Blocked so both sides stay in cache for the 768×3072 matrices.
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = src[base + c];
      }
    }
  }
  return out;
}

/** Writes config.json, model.safetensors and import.json into dir (each atomically). */
export function writeImportedModel(dir: string, model: ImportedModel): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, t] of model.tensors) tensors.set(name, { dtype: 'F32', shape: t.shape, data: t.data });
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeTextAtomic(path.join(dir, 'config.json'), JSON.stringify(toHfConfig(model.config), null, 2) + '\n');
  writeTextAtomic(path.join(dir, 'import.json'), JSON.stringify(model.provenance, null, 2) + '\n');
}

/** Number of unique parameters of an imported model. */
export function parameterCount(model: ImportedModel): number {
  let n = 0;
  for (const t of model.tensors.values()) n += t.data.length;
  return n;
}
