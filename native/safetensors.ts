/**
 * safetensors reader and writer (PAPER.md §9.6): the weight format of our checkpoints.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data region. The reader
 * validates everything before touching tensor bytes and names the file and tensor in every error;
 * the writer pads the header to 8 bytes and commits atomically (temp + fsync + rename).
 */
import * as fs from 'fs';
import { DTYPE_SIZE, decodeToFloat32, encodeFromFloat32, isDtype, type Dtype } from './interop/dtype';
import { writeAll, writeFileAtomic } from './interop/atomic';
import { parseStrictJson, JsonSyntaxError, type JsonValue } from './interop/strict-json';

export type { Dtype } from './interop/dtype';
export { DTYPE_SIZE } from './interop/dtype';

/** Headers larger than this are refused (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
    readonly tensor?: string,
  ) {
    super(`${file}: ${tensor !== undefined ? `tensor "${tensor}": ` : ''}${message}`);
    this.name = 'SafetensorsError';
  }
}

export interface TensorHeaderEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte offsets relative to the start of the data region. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  path: string;
  headerBytes: number;
  /** Absolute file offset of the data region (8 + N). */
  dataStart: number;
  fileSize: number;
  /** Entries in file order (sorted by begin). */
  entries: TensorHeaderEntry[];
  metadata: Record<string, string>;
}

/** A tensor read from a file: raw little-endian bytes, decoded to float32 on first use of `data`. */
export class LoadedTensor {
  private decoded?: Float32Array;
  constructor(
    readonly dtype: Dtype,
    readonly shape: number[],
    readonly raw: Uint8Array,
  ) {}

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Float32 values (zero-copy for aligned F32). Integer dtypes convert exactly up to 2^24. */
  get data(): Float32Array {
    if (!this.decoded) this.decoded = decodeToFloat32(this.dtype, this.raw);
    return this.decoded;
  }
}

export interface SafetensorsFile {
  tensors: Map<string, LoadedTensor>;
  metadata: Record<string, string>;
}

/** Reads and validates only the header: cheap inspection of any size of file. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openForRead(file);
  try {
    return readHeaderFromFd(file, fd);
  } finally {
    fs.closeSync(fd);
  }
}

export interface ReadOptions {
  /** Load only the tensors whose names pass this filter (the header is still fully validated). */
  select?: (name: string) => boolean;
}

/** Reads a whole file after validating it. Each tensor gets its own aligned buffer. */
export function readSafetensors(file: string, options: ReadOptions = {}): SafetensorsFile {
  const fd = openForRead(file);
  try {
    const header = readHeaderFromFd(file, fd);
    const tensors = new Map<string, LoadedTensor>();
    for (const entry of header.entries) {
      if (options.select && !options.select(entry.name)) continue;
      const length = entry.end - entry.begin;
      const raw = new Uint8Array(length);
      readExactly(fd, raw, header.dataStart + entry.begin, file, entry.name);
      tensors.set(entry.name, new LoadedTensor(entry.dtype, entry.shape, raw));
    }
    return { tensors, metadata: header.metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses and validates a header held in memory (used by readers and by tests). */
export function parseSafetensorsHeader(file: string, fileSize: number, prefix: Uint8Array): SafetensorsHeader {
  if (fileSize < 8) throw new SafetensorsError(file, `file is ${fileSize} bytes, shorter than the 8-byte length prefix`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(file, `header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  const headerBytes = Number(n);
  if (8 + headerBytes > fileSize) {
    throw new SafetensorsError(file, `header length ${headerBytes} runs past the end of the ${fileSize}-byte file (truncated?)`);
  }
  if (prefix.byteLength < 8 + headerBytes) throw new Error('internal: header prefix not fully read');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(prefix.subarray(8, 8 + headerBytes));
  } catch {
    throw new SafetensorsError(file, 'header is not valid UTF-8');
  }
  let json: JsonValue;
  try {
    json = parseStrictJson(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) throw new SafetensorsError(file, `header is not valid JSON: ${err.message}`);
    throw err;
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(file, 'header must be a JSON object');
  }

  const dataStart = 8 + headerBytes;
  const dataBytes = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries: TensorHeaderEntry[] = [];

  for (const name of Object.keys(json)) {
    const value = json[name];
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new SafetensorsError(file, '__metadata__ must be an object of strings');
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__["${k}"] must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    entries.push(parseEntry(file, name, value));
  }

  // The entries must tile the data region exactly: no gaps, no overlaps, nothing unaccounted for.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const entry of entries) {
    if (entry.begin !== cursor) {
      const what = entry.begin > cursor ? `a gap of ${entry.begin - cursor} bytes` : `an overlap of ${cursor - entry.begin} bytes`;
      throw new SafetensorsError(file, `data_offsets [${entry.begin}, ${entry.end}] leave ${what} after offset ${cursor}`, entry.name);
    }
    cursor = entry.end;
  }
  if (cursor !== dataBytes) {
    const detail = cursor > dataBytes ? `the file is truncated: tensors need ${cursor} data bytes, it holds ${dataBytes}` : `${dataBytes - cursor} trailing bytes belong to no tensor`;
    throw new SafetensorsError(file, `data region mismatch: ${detail}`);
  }
  return { path: file, headerBytes, dataStart, fileSize, entries, metadata };
}

function parseEntry(file: string, name: string, value: JsonValue): TensorHeaderEntry {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(file, 'entry must be an object with dtype, shape, data_offsets', name);
  }
  for (const key of Object.keys(value)) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') {
      throw new SafetensorsError(file, `unexpected field "${key}"`, name);
    }
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isDtype(dtype)) throw new SafetensorsError(file, `unknown dtype ${JSON.stringify(dtype)}`, name);
  if (!Array.isArray(shape) || !shape.every(isNonNegativeSafeInteger)) {
    throw new SafetensorsError(file, `shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`, name);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeSafeInteger)) {
    throw new SafetensorsError(file, `data_offsets must be [begin, end], got ${JSON.stringify(offsets)}`, name);
  }
  const [begin, end] = offsets as number[];
  if (end < begin) throw new SafetensorsError(file, `data_offsets end ${end} is before begin ${begin}`, name);
  // numel × element size in BigInt: shapes like [2^40, 2^40] must not wrap around.
  let bytes = BigInt(DTYPE_SIZE[dtype]);
  for (const dim of shape as number[]) bytes *= BigInt(dim);
  if (bytes !== BigInt(end - begin)) {
    throw new SafetensorsError(
      file,
      `shape ${JSON.stringify(shape)} of ${dtype} needs ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      name,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

function isNonNegativeSafeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function openForRead(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (err) {
    throw new SafetensorsError(file, `cannot open: ${(err as Error).message}`);
  }
}

function readHeaderFromFd(file: string, fd: number): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) return parseSafetensorsHeader(file, fileSize, new Uint8Array(8));
  const lengthPrefix = new Uint8Array(8);
  readExactly(fd, lengthPrefix, 0, file);
  const n = new DataView(lengthPrefix.buffer).getBigUint64(0, true);
  // Only read the header once its length is known to be sane.
  if (n > BigInt(MAX_HEADER_BYTES) || 8n + n > BigInt(fileSize)) return parseSafetensorsHeader(file, fileSize, lengthPrefix);
  const prefix = new Uint8Array(8 + Number(n));
  prefix.set(lengthPrefix);
  readExactly(fd, prefix.subarray(8), 8, file);
  return parseSafetensorsHeader(file, fileSize, prefix);
}

function readExactly(fd: number, into: Uint8Array, position: number, file: string, tensor?: string): void {
  let done = 0;
  while (done < into.byteLength) {
    const got = fs.readSync(fd, into, done, Math.min(into.byteLength - done, 1 << 30), position + done);
    if (got === 0) throw new SafetensorsError(file, `unexpected end of file at byte ${position + done}`, tensor);
    done += got;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * A tensor to write. Give `raw` (little-endian bytes of `dtype`) or `data`: float arrays are
 * encoded to a float dtype (F32/F16/BF16/F64); integer typed arrays must match the dtype's width.
 * A LoadedTensor qualifies and round-trips bit for bit.
 */
export interface TensorToWrite {
  dtype: Dtype;
  shape: readonly number[];
  data?: ArrayBufferView;
  raw?: Uint8Array;
}

/** Writes a safetensors file atomically. Tensors go in order of element size, then name (keeps every offset aligned). */
export function writeSafetensors(
  file: string,
  tensors: Map<string, TensorToWrite> | Iterable<[string, TensorToWrite]>,
  metadata?: Record<string, string>,
): void {
  const list = [...tensors].map(([name, t]) => ({ name, t, bytes: tensorBytes(file, name, t) }));
  list.sort((a, b) => DTYPE_SIZE[b.t.dtype] - DTYPE_SIZE[a.t.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header = buildHeader(file, list, metadata);
  writeFileAtomic(file, (fd) => {
    writeAll(fd, header);
    for (const { bytes } of list) writeAll(fd, bytes);
  });
}

/** Serialises to one in-memory buffer (small files, tests). Same layout as writeSafetensors. */
export function encodeSafetensors(
  tensors: Map<string, TensorToWrite> | Iterable<[string, TensorToWrite]>,
  metadata?: Record<string, string>,
): Uint8Array {
  const list = [...tensors].map(([name, t]) => ({ name, t, bytes: tensorBytes('<memory>', name, t) }));
  list.sort((a, b) => DTYPE_SIZE[b.t.dtype] - DTYPE_SIZE[a.t.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header = buildHeader('<memory>', list, metadata);
  const total = header.byteLength + list.reduce((s, x) => s + x.bytes.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(header);
  let at = header.byteLength;
  for (const { bytes } of list) {
    out.set(bytes, at);
    at += bytes.byteLength;
  }
  return out;
}

function buildHeader(file: string, list: { name: string; t: TensorToWrite; bytes: Uint8Array }[], metadata?: Record<string, string>): Uint8Array {
  const seen = new Set<string>();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(file, `metadata value for "${k}" must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const { name, t, bytes } of list) {
    if (name === '__metadata__') throw new SafetensorsError(file, 'the name is reserved', name);
    if (seen.has(name)) throw new SafetensorsError(file, 'duplicate tensor name', name);
    seen.add(name);
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  if (body.byteLength > MAX_HEADER_BYTES) throw new SafetensorsError(file, `header would be ${body.byteLength} bytes, over the limit`);
  const out = new Uint8Array(8 + body.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.byteLength), true);
  out.set(body, 8);
  return out;
}

const INT_ARRAY_DTYPES: [new (...args: never[]) => ArrayBufferView, Dtype[]][] = [
  [Int8Array, ['I8']],
  [Uint8Array, ['U8', 'BOOL', 'I8', 'F8_E4M3', 'F8_E5M2']],
  [Int16Array, ['I16']],
  [Uint16Array, ['U16', 'F16', 'BF16']],
  [Int32Array, ['I32']],
  [Uint32Array, ['U32']],
  [BigInt64Array, ['I64']],
  [BigUint64Array, ['U64']],
];

function tensorBytes(file: string, name: string, t: TensorToWrite): Uint8Array {
  if (!isDtype(t.dtype)) throw new SafetensorsError(file, `unknown dtype ${JSON.stringify(t.dtype)}`, name);
  if (!t.shape.every(isNonNegativeSafeInteger)) throw new SafetensorsError(file, `bad shape ${JSON.stringify(t.shape)}`, name);
  const numel = t.shape.reduce((a, b) => a * b, 1);
  const want = numel * DTYPE_SIZE[t.dtype];
  let bytes: Uint8Array;
  if (t.raw) {
    bytes = t.raw;
  } else if (t.data instanceof Float32Array || t.data instanceof Float64Array) {
    if (t.data.length !== numel) {
      throw new SafetensorsError(file, `shape ${JSON.stringify(t.shape)} has ${numel} elements but data has ${t.data.length}`, name);
    }
    if (t.data instanceof Float64Array && t.dtype === 'F64') bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    else bytes = encodeFromFloat32(t.dtype, t.data);
  } else if (t.data) {
    const match = INT_ARRAY_DTYPES.find(([ctor, dtypes]) => t.data instanceof ctor && dtypes.includes(t.dtype));
    if (!match) throw new SafetensorsError(file, `a ${t.data.constructor.name} cannot be written as ${t.dtype}`, name);
    bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  } else {
    throw new SafetensorsError(file, 'neither data nor raw bytes given', name);
  }
  if (bytes.byteLength !== want) {
    throw new SafetensorsError(file, `shape ${JSON.stringify(t.shape)} of ${t.dtype} needs ${want} bytes, got ${bytes.byteLength}`, name);
  }
  return bytes;
}
