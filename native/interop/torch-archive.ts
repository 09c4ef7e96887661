/**
 * Safe reading of torch.save zip archives (`pytorch_model.bin`, Lightning `.ckpt`): PAPER.md §9.7/§9.8.
 *
 * The pickle is interpreted by our non-executing unpickler; storages stay lazy (only their zip entry
 * is recorded) until a tensor's bytes are asked for, so inspecting a checkpoint reads only data.pkl.
 * All view arithmetic (offset, sizes, strides) is checked in BigInt against the storage size.
 */
import * as fs from 'fs';
import { ZipArchive, ZipError, type ZipEntry } from './zip';
import { unpickle, Placeholder, PickleError, toJsonSafe, DEFAULT_PICKLE_LIMITS, type PickleLimits } from './pickle';
import { DTYPE_SIZE, byteSwapInPlace, type Dtype } from './dtype';
import { LoadedTensor } from '../safetensors';

export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'CheckpointError';
  }
}

const STORAGE_DTYPE: Record<string, Dtype> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

interface Storage {
  key: string;
  dtype: Dtype;
  numel: number;
  entry: ZipEntry;
  bytes?: Uint8Array;
}

/** A tensor as described by the pickle: a view into a storage. No bytes are read until `materialize`. */
export interface TorchTensorRef {
  readonly __tensor__: true;
  storage: Storage;
  dtype: Dtype;
  offset: number;
  shape: number[];
  stride: number[];
}

export interface TorchLoadOptions {
  pickleLimits?: PickleLimits;
  /**
   * Most bytes of tensor data `materialize` may produce in total. Defaults to twice the archive's
   * storage bytes (plus 1 MiB): views can overlap, but a legitimate checkpoint never needs more.
   */
  maxTensorBytes?: number;
}

/** Python pickle magic number of the legacy (torch < 1.6) format, as pickled LONG1 bytes. */
const LEGACY_MAGIC = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

export class TorchArchive {
  private storages = new Map<string, Storage>();
  private producedBytes = 0;
  private readonly maxTensorBytes: number;
  /** The unpickled top-level object. */
  readonly root: unknown;
  readonly prefix: string;
  readonly bigEndian: boolean;

  private constructor(
    readonly file: string,
    private readonly zip: ZipArchive,
    options: TorchLoadOptions,
  ) {
    const pkl = zip.findBySuffix('data.pkl').filter((e) => e.name.split('/').length <= 2);
    if (pkl.length !== 1) {
      throw new CheckpointError(file, pkl.length ? 'more than one data.pkl record' : 'no data.pkl record: not a torch.save archive');
    }
    this.prefix = pkl[0].name.slice(0, pkl[0].name.length - 'data.pkl'.length);
    const byteorder = zip.entries.get(this.prefix + 'byteorder');
    const order = byteorder ? Buffer.from(zip.read(byteorder)).toString('latin1') : 'little';
    if (order !== 'little' && order !== 'big') throw new CheckpointError(file, `byteorder record says "${order}"`);
    this.bigEndian = order === 'big';
    const storageBytes = [...zip.entries.values()].filter((e) => e.name.startsWith(this.prefix + 'data/')).reduce((s, e) => s + e.size, 0);
    this.maxTensorBytes = options.maxTensorBytes ?? 2 * storageBytes + (1 << 20);

    try {
      this.root = unpickle(zip.read(pkl[0]), {
        persistentLoad: (req) => this.storageFor(req.storageType, req.key, req.numel),
        rebuildTensor: (args) => this.rebuildTensor(args),
      }, options.pickleLimits ?? DEFAULT_PICKLE_LIMITS);
    } catch (err) {
      if (err instanceof PickleError) throw new CheckpointError(file, err.message);
      throw err;
    }
  }

  /** Opens an archive and interprets its pickle (no storage bytes are read yet). */
  static open(file: string, options: TorchLoadOptions = {}): TorchArchive {
    rejectLegacy(file);
    let zip: ZipArchive;
    try {
      zip = ZipArchive.open(file);
    } catch (err) {
      if (err instanceof ZipError) throw new CheckpointError(file, err.message.slice(file.length + 2));
      throw err;
    }
    try {
      return new TorchArchive(file, zip, options);
    } catch (err) {
      zip.close();
      if (err instanceof ZipError) throw new CheckpointError(file, err.message.slice(file.length + 2));
      throw err;
    }
  }

  close(): void {
    this.zip.close();
    for (const s of this.storages.values()) s.bytes = undefined;
  }

  /** Contiguous little-endian bytes of a tensor (zero-copy when the view is a contiguous slice). */
  materialize(ref: TorchTensorRef, name = '?'): LoadedTensor {
    const elem = DTYPE_SIZE[ref.dtype];
    const numel = ref.shape.reduce((a, b) => a * b, 1);
    const bytes = numel * elem;
    if (this.producedBytes + bytes > this.maxTensorBytes) {
      throw new CheckpointError(this.file, `tensor "${name}": total tensor data would exceed ${this.maxTensorBytes} bytes (huge or overlapping views refused)`);
    }
    this.producedBytes += bytes;
    const source = this.storageBytes(ref.storage);
    if (numel === 0) return new LoadedTensor(ref.dtype, ref.shape, new Uint8Array(0));
    if (isContiguous(ref.shape, ref.stride)) {
      return new LoadedTensor(ref.dtype, ref.shape, source.subarray(ref.offset * elem, (ref.offset + numel) * elem));
    }
    // Strided gather, element by element, in C order of the logical shape.
    const out = new Uint8Array(bytes);
    const rank = ref.shape.length;
    const index = new Array<number>(rank).fill(0);
    let src = ref.offset;
    for (let i = 0; i < numel; i++) {
      out.set(source.subarray(src * elem, src * elem + elem), i * elem);
      for (let d = rank - 1; d >= 0; d--) {
        index[d]++;
        src += ref.stride[d];
        if (index[d] < ref.shape[d]) break;
        src -= ref.stride[d] * ref.shape[d];
        index[d] = 0;
      }
    }
    return new LoadedTensor(ref.dtype, ref.shape, out);
  }

  /**
   * Drops the archive's cached bytes of the tensor's storage (tensors already materialized keep
   * theirs). Converters call it after each tensor so peak memory stays near one copy of the weights.
   */
  release(ref: TorchTensorRef): void {
    ref.storage.bytes = undefined;
  }

  private storageBytes(storage: Storage): Uint8Array {
    if (!storage.bytes) {
      try {
        storage.bytes = this.zip.read(storage.entry);
      } catch (err) {
        if (err instanceof ZipError) throw new CheckpointError(this.file, err.message.slice(this.file.length + 2));
        throw err;
      }
      if (this.bigEndian) byteSwapInPlace(storage.bytes, DTYPE_SIZE[storage.dtype]);
    }
    return storage.bytes;
  }

  private storageFor(storageType: string, key: string, numel: number): Storage {
    const dtype = STORAGE_DTYPE[storageType];
    if (!dtype) throw new PickleError(`storage type ${storageType} is not allowed`);
    const existing = this.storages.get(key);
    if (existing) {
      if (existing.dtype !== dtype || existing.numel !== numel) {
        throw new PickleError(`storage "${key}" is declared twice with different types or sizes`);
      }
      return existing;
    }
    const entry = this.zip.entries.get(`${this.prefix}data/${key}`);
    if (!entry) throw new PickleError(`storage "${key}" has no record data/${key} in the archive`);
    const want = BigInt(numel) * BigInt(DTYPE_SIZE[dtype]);
    if (want !== BigInt(entry.size)) {
      throw new PickleError(`storage "${key}" declares ${numel} ${storageType} elements (${want} bytes) but data/${key} holds ${entry.size} bytes`);
    }
    const storage: Storage = { key, dtype, numel, entry };
    this.storages.set(key, storage);
    return storage;
  }

  private rebuildTensor(args: readonly unknown[]): TorchTensorRef {
    const [storage, offset, size, stride, requiresGrad] = args;
    if (!storage || typeof storage !== 'object' || !this.isOurStorage(storage)) {
      throw new PickleError('_rebuild_tensor_v2: the first argument is not a storage of this archive');
    }
    const st = storage as Storage;
    if (!isSafeIndex(offset)) throw new PickleError(`_rebuild_tensor_v2: storage offset ${String(offset)} is invalid`);
    const shape = intTuple(size, 'size');
    const strides = intTuple(stride, 'stride');
    if (shape.length !== strides.length) throw new PickleError(`_rebuild_tensor_v2: size has ${shape.length} dims but stride has ${strides.length}`);
    if (typeof requiresGrad !== 'boolean') throw new PickleError('_rebuild_tensor_v2: requires_grad must be a bool');
    // Bounds: the last element addressed must lie inside the storage; BigInt so nothing wraps.
    const numel = shape.reduce((a, b) => a * BigInt(b), 1n);
    if (numel > 0n) {
      let last = BigInt(offset as number);
      for (let d = 0; d < shape.length; d++) last += BigInt(shape[d] - 1) * BigInt(strides[d]);
      if (last >= BigInt(st.numel)) {
        throw new PickleError(
          `tensor view (offset ${offset}, size [${shape}], stride [${strides}]) reaches element ${last} of storage "${st.key}" with ${st.numel} elements`,
        );
      }
      if (numel * BigInt(DTYPE_SIZE[st.dtype]) > BigInt(Number.MAX_SAFE_INTEGER)) throw new PickleError('tensor is too large');
    } else if ((offset as number) > st.numel) {
      throw new PickleError(`empty tensor offset ${offset} lies past storage "${st.key}"`);
    }
    return { __tensor__: true, storage: st, dtype: st.dtype, offset: offset as number, shape, stride: strides };
  }

  private isOurStorage(v: object): boolean {
    const key = (v as Storage).key;
    return typeof key === 'string' && this.storages.get(key) === v;
  }
}

function isSafeIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function intTuple(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !Object.isFrozen(v) || v.length > 64 || !v.every(isSafeIndex)) {
    throw new PickleError(`_rebuild_tensor_v2: ${what} must be a tuple of non-negative integers`);
  }
  return [...(v as number[])];
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

function rejectLegacy(file: string): void {
  let head = Buffer.alloc(0);
  try {
    const fd = fs.openSync(file, 'r');
    try {
      head = Buffer.alloc(LEGACY_MAGIC.length);
      head = head.subarray(0, fs.readSync(fd, head, 0, head.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new CheckpointError(file, `cannot open: ${(err as Error).message}`);
  }
  if (head.equals(LEGACY_MAGIC)) {
    throw new CheckpointError(file, 'legacy torch.save format (torch < 1.6) is not supported: re-save it with a newer torch (zip format)');
  }
}

export function isTorchTensorRef(v: unknown): v is TorchTensorRef {
  return typeof v === 'object' && v !== null && (v as TorchTensorRef).__tensor__ === true;
}

// ---------------------------------------------------------------------------------------------

export interface TorchStateDict {
  /** 'lightning' when the archive is a dict with a `state_dict` entry, else 'state_dict'. */
  kind: 'lightning' | 'state_dict';
  /** Unique tensors by name (first name of each distinct view). */
  tensors: Map<string, TorchTensorRef>;
  /** Later names of the same view (tied weights, module aliases) → the name kept in `tensors`. */
  aliases: Map<string, string>;
  /** JSON-safe hyper_parameters (Lightning), unknown classes rendered as placeholders. */
  hyperParameters?: unknown;
  /** Top-level keys of a Lightning checkpoint (epoch, global_step, ...). */
  topLevelKeys: string[];
  /** Small JSON-safe scalars of the top level (epoch, global_step, versions). */
  info: Record<string, unknown>;
  archive: TorchArchive;
}

/** Opens a checkpoint and finds its state_dict; tensors stay lazy (use archive.materialize). */
export function openTorchStateDict(file: string, options: TorchLoadOptions = {}): TorchStateDict {
  const archive = TorchArchive.open(file, options);
  try {
    return extractStateDict(archive);
  } catch (err) {
    archive.close();
    throw err;
  }
}

function extractStateDict(archive: TorchArchive): TorchStateDict {
  const { file, root } = archive;
  if (!(root instanceof Map)) throw new CheckpointError(file, `top-level object is a ${describeValue(root)}, expected a dict`);
  let kind: TorchStateDict['kind'] = 'state_dict';
  let dict: Map<unknown, unknown> = root;
  let hyperParameters: unknown;
  const info: Record<string, unknown> = {};
  const topLevelKeys = [...root.keys()].map(String);
  if (root.has('state_dict')) {
    kind = 'lightning';
    const sd = root.get('state_dict');
    if (!(sd instanceof Map)) throw new CheckpointError(file, `state_dict is a ${describeValue(sd)}, expected a dict`);
    dict = sd;
    if (root.has('hyper_parameters')) hyperParameters = toJsonSafe(root.get('hyper_parameters'));
    for (const [k, v] of root) {
      if (typeof k === 'string' && (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean')) info[k] = v;
    }
  }
  const tensors = new Map<string, TorchTensorRef>();
  const aliases = new Map<string, string>();
  const byView = new Map<string, string>();
  for (const [key, value] of dict) {
    if (typeof key !== 'string') throw new CheckpointError(file, `state_dict has a non-string key ${describeValue(key)}`);
    if (!isTorchTensorRef(value)) {
      const what = value instanceof Placeholder ? `an object of unknown class ${value.qualifiedName}` : `a ${describeValue(value)}`;
      throw new CheckpointError(file, `state_dict["${key}"] holds ${what}, not a tensor`);
    }
    const view = `${value.storage.key}|${value.offset}|${value.shape}|${value.stride}`;
    const first = byView.get(view);
    if (first !== undefined) aliases.set(key, first);
    else {
      byView.set(view, key);
      tensors.set(key, value);
    }
  }
  return { kind, tensors, aliases, hyperParameters, topLevelKeys, info, archive };
}

function describeValue(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'dict';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  if (v instanceof Placeholder) return `placeholder ${v.qualifiedName}`;
  return typeof v;
}
