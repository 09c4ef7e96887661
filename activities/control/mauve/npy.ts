/**
 * NumPy .npy reader/writer for 2-D float feature matrices (format versions 1.0–3.0, little-endian
 * float32/float64, C order). Used for precomputed MAUVE features (`--p-features x.npy`).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { FeatureMatrix } from './mauve';

const MAGIC = '\x93NUMPY';

export function parseNpy(bytes: Uint8Array, source = '<buffer>'): FeatureMatrix {
  const fail = (msg: string): never => {
    throw new Error(`${source}: not a supported .npy feature matrix: ${msg}`);
  };
  if (bytes.length < 10) fail('file too short');
  const magic = String.fromCharCode(...bytes.subarray(0, 6));
  if (magic !== MAGIC) fail('missing \\x93NUMPY magic');
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    headerLen = view.getUint32(8, true);
    headerStart = 12;
  } else {
    return fail(`format version ${major} is unknown`);
  }
  if (headerStart + headerLen > bytes.length) fail('header runs past the end of the file');
  const header = Buffer.from(bytes.subarray(headerStart, headerStart + headerLen)).toString('latin1');
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) return fail(`cannot parse header ${JSON.stringify(header.trim())}`);
  if (fortran === 'True') fail('Fortran-ordered arrays are not supported');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (shape.length !== 2 || shape.some((s) => !Number.isInteger(s) || s < 0)) fail(`expected a 2-D shape, got (${shapeText})`);
  const [rows, dim] = shape;
  const itemSize = descr === '<f4' ? 4 : descr === '<f8' ? 8 : fail(`dtype ${descr} (need <f4 or <f8)`);
  const dataStart = headerStart + headerLen;
  const need = rows * dim * (itemSize as number);
  if (bytes.length - dataStart !== need) fail(`expected ${need} data bytes for shape (${rows}, ${dim}), found ${bytes.length - dataStart}`);
  const data = new Float64Array(rows * dim);
  for (let i = 0; i < rows * dim; i++) {
    data[i] = itemSize === 4 ? view.getFloat32(dataStart + 4 * i, true) : view.getFloat64(dataStart + 8 * i, true);
  }
  return { rows, dim, data };
}

export function readNpy(file: string): FeatureMatrix {
  return parseNpy(fs.readFileSync(file), file);
}

/** Encodes a float32 2-D matrix as .npy v1.0. */
export function encodeNpy(m: FeatureMatrix): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${m.rows}, ${m.dim}), }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write(MAGIC, 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(m.rows * m.dim * 4);
  for (let i = 0; i < m.rows * m.dim; i++) body.writeFloatLE(m.data[i], 4 * i);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}

/** Atomic write (temp + fsync + rename). */
export function writeNpy(file: string, m: FeatureMatrix): void {
  writeFileAtomicSync(file, encodeNpy(m));
}

export function writeFileAtomicSync(file: string, data: Uint8Array | string): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    if (typeof data === 'string') fs.writeSync(fd, data);
    else fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
