/**
 * Element types shared by safetensors and torch archives, and the conversions between their bit
 * patterns and float32. All conversions are little-endian and round to nearest, ties to even.
 */

export type Dtype =
  | 'BOOL'
  | 'U8'
  | 'I8'
  | 'F8_E5M2'
  | 'F8_E4M3'
  | 'I16'
  | 'U16'
  | 'F16'
  | 'BF16'
  | 'I32'
  | 'U32'
  | 'F32'
  | 'F64'
  | 'I64'
  | 'U64';

export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

export function isDtype(value: unknown): value is Dtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, value);
}

export const FLOAT_DTYPES: readonly Dtype[] = ['F16', 'BF16', 'F32', 'F64'];

// One shared scratch word for bit casts.
const scratch = new DataView(new ArrayBuffer(8));

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero or subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** float32 → IEEE half bits, round to nearest even, overflow to ±Inf. */
export function f32ToF16Bits(value: number): number {
  scratch.setFloat32(0, value, true);
  const x = scratch.getUint32(0, true);
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // underflows to zero
    mant |= 0x800000; // implicit leading one
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

export function bf16BitsToF32(b: number): number {
  scratch.setUint32(0, (b & 0xffff) << 16, true);
  return scratch.getFloat32(0, true);
}

/** float32 → bfloat16 bits, round to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16Bits(value: number): number {
  scratch.setFloat32(0, value, true);
  const x = scratch.getUint32(0, true);
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff)) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** OCP FP8 E4M3 ("fn": no infinities, S.1111.111 is NaN). */
export function f8e4m3ToF32(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const frac = b & 0x7;
  if (exp === 0xf && frac === 0x7) return NaN;
  if (exp === 0) return sign * frac * 2 ** -9;
  return sign * (1 + frac / 8) * 2 ** (exp - 7);
}

/** FP8 E5M2 is the top byte of an IEEE half. */
export function f8e5m2ToF32(b: number): number {
  return f16BitsToF32((b & 0xff) << 8);
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Decodes `numel` elements of `dtype` from little-endian bytes into float32. F32 bytes that are
 * 4-byte aligned on a little-endian host come back as a zero-copy view.
 */
export function decodeToFloat32(dtype: Dtype, bytes: Uint8Array): Float32Array {
  const size = DTYPE_SIZE[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new Error(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  const n = bytes.byteLength / size;
  if (dtype === 'F32' && LITTLE_ENDIAN_HOST && bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  }
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
      break;
    case 'F16':
      decodeHalfTable(view, n, out);
      break;
    case 'BF16': {
      // Widen into the high half of a uint32 and reinterpret.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(i * 2, true) << 16;
      if (!LITTLE_ENDIAN_HOST) for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(view.getUint16(i * 2, true));
      break;
    }
    case 'F8_E4M3':
      for (let i = 0; i < n; i++) out[i] = f8e4m3ToF32(bytes[i]);
      break;
    case 'F8_E5M2':
      for (let i = 0; i < n; i++) out[i] = f8e5m2ToF32(bytes[i]);
      break;
    case 'BOOL':
    case 'U8':
      for (let i = 0; i < n; i++) out[i] = bytes[i];
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true);
      break;
    case 'U16':
      for (let i = 0; i < n; i++) out[i] = view.getUint16(i * 2, true);
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = view.getInt32(i * 4, true);
      break;
    case 'U32':
      for (let i = 0; i < n; i++) out[i] = view.getUint32(i * 4, true);
      break;
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(i * 8, true));
      break;
    case 'U64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigUint64(i * 8, true));
      break;
  }
  return out;
}

let halfTable: Float32Array | undefined;

/** Half → float through a 64k-entry table: the hot path when importing fp16 checkpoints. */
function decodeHalfTable(view: DataView, n: number, out: Float32Array): void {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = f16BitsToF32(h);
  }
  const table = halfTable;
  if (LITTLE_ENDIAN_HOST && view.byteOffset % 2 === 0) {
    const src = new Uint16Array(view.buffer, view.byteOffset, n);
    for (let i = 0; i < n; i++) out[i] = table[src[i]];
  } else {
    for (let i = 0; i < n; i++) out[i] = table[view.getUint16(i * 2, true)];
  }
}

/** Encodes float32 values as little-endian bytes of a float dtype. */
export function encodeFromFloat32(dtype: Dtype, values: Float32Array | Float64Array): Uint8Array {
  const n = values.length;
  if (dtype === 'F32' && values instanceof Float32Array && LITTLE_ENDIAN_HOST) {
    return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  }
  const out = new Uint8Array(n * DTYPE_SIZE[dtype]);
  const view = new DataView(out.buffer);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) view.setFloat32(i * 4, values[i], true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) view.setFloat64(i * 8, values[i], true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32ToF16Bits(values[i]), true);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) view.setUint16(i * 2, f32ToBf16Bits(values[i]), true);
      break;
    default:
      throw new Error(`cannot encode float values as ${dtype}; pass raw bytes (Uint8Array) instead`);
  }
  return out;
}

/** Reverses the byte order of every element in place (big-endian torch archives). */
export function byteSwapInPlace(bytes: Uint8Array, elementSize: number): void {
  if (elementSize === 1) return;
  for (let i = 0; i + elementSize <= bytes.length; i += elementSize) {
    for (let a = i, b = i + elementSize - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}
