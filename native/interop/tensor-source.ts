/**
 * One view over the weight files we import from: safetensors or torch.save zip archives
 * (`pytorch_model.bin`, Lightning `.ckpt`). Tensors are described up front and loaded on demand.
 */
import * as fs from 'fs';
import { readSafetensorsHeader, readSafetensors, type LoadedTensor } from '../safetensors';
import { openTorchStateDict } from './torch-archive';
import { ZipArchive } from './zip';
import type { Dtype } from './dtype';

export interface SourceTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Reads (and caches nothing): the tensor as contiguous little-endian bytes + float32 view. */
  load(): LoadedTensor;
  /** Lets the source drop its cached bytes for this tensor (torch archives). */
  release?(): void;
}

export interface TensorSource {
  file: string;
  format: 'safetensors' | 'torch-zip';
  /** torch archives: 'lightning' when a `state_dict` sits inside a training checkpoint. */
  kind: 'lightning' | 'state_dict';
  /** Unique tensors by name. */
  tensors: Map<string, SourceTensor>;
  /** Other names of the same tensor → the name kept in `tensors` (tied weights, module aliases). */
  aliases: Map<string, string>;
  hyperParameters?: unknown;
  info: Record<string, unknown>;
  topLevelKeys: string[];
  close(): void;
}

export type WeightFormat = 'safetensors' | 'torch-zip' | 'unknown';

/** Tells the formats apart by their first bytes (zip local header vs safetensors length prefix). */
export function sniffFormat(file: string): WeightFormat {
  if (ZipArchive.looksLikeZip(file)) return 'torch-zip';
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(9);
    const got = fs.readSync(fd, head, 0, 9, 0);
    if (got === 9 && head.readBigUInt64LE(0) < 100_000_000n && head[8] === 0x7b /* '{' */) return 'safetensors';
  } finally {
    fs.closeSync(fd);
  }
  return 'unknown';
}

export function openTensorSource(file: string): TensorSource {
  const format = sniffFormat(file);
  if (format === 'torch-zip') {
    const sd = openTorchStateDict(file);
    const tensors = new Map<string, SourceTensor>();
    for (const [name, ref] of sd.tensors) {
      tensors.set(name, { name, dtype: ref.dtype, shape: ref.shape, load: () => sd.archive.materialize(ref, name), release: () => sd.archive.release(ref) });
    }
    return {
      file,
      format,
      kind: sd.kind,
      tensors,
      aliases: sd.aliases,
      hyperParameters: sd.hyperParameters,
      info: sd.info,
      topLevelKeys: sd.topLevelKeys,
      close: () => sd.archive.close(),
    };
  }
  if (format === 'safetensors') {
    const header = readSafetensorsHeader(file);
    const tensors = new Map<string, SourceTensor>();
    for (const e of header.entries) {
      tensors.set(e.name, {
        name: e.name,
        dtype: e.dtype,
        shape: e.shape,
        load: () => readSafetensors(file, { select: (n) => n === e.name }).tensors.get(e.name)!,
      });
    }
    return { file, format, kind: 'state_dict', tensors, aliases: new Map(), info: { ...header.metadata }, topLevelKeys: [], close: () => {} };
  }
  throw new Error(`${file}: neither a safetensors file nor a torch.save zip archive`);
}

/** Loads every tensor of a safetensors source in one pass (faster than one read per tensor). */
export function loadAll(source: TensorSource): Map<string, LoadedTensor> {
  if (source.format === 'safetensors') return readSafetensors(source.file).tensors;
  const out = new Map<string, LoadedTensor>();
  for (const [name, t] of source.tensors) out.set(name, t.load());
  return out;
}
