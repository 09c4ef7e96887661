import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  encodeSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
  SafetensorsError,
  type TensorToWrite,
} from '../native/safetensors';
import { f16BitsToF32, f32ToF16Bits, f32ToBf16Bits, bf16BitsToF32 } from '../native/interop/dtype';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interop-st-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Builds a file from a literal header text and data bytes, bypassing our writer. */
function handBuilt(name: string, headerText: string, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): string {
  const header = Buffer.from(headerText, 'utf8');
  const buf = Buffer.alloc(8 + header.length + data.length);
  buf.writeBigUInt64LE(lengthOverride ?? BigInt(header.length), 0);
  header.copy(buf, 8);
  Buffer.from(data).copy(buf, 8 + header.length);
  const file = path.join(dir, name);
  fs.writeFileSync(file, buf);
  return file;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

describe('safetensors writer/reader round trips', () => {
  test('F32, F16, BF16, F64, integer and empty tensors come back exactly', () => {
    const file = path.join(dir, 'round.safetensors');
    const f32 = new Float32Array([1.5, -2.25, 3e-8, 65504, -0]);
    const tensors = new Map<string, TensorToWrite>([
      ['a.f32', { dtype: 'F32', shape: [5], data: f32 }],
      ['b.f16', { dtype: 'F16', shape: [1, 5], data: f32 }],
      ['c.bf16', { dtype: 'BF16', shape: [5, 1], data: f32 }],
      ['d.f64', { dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -1e300]) }],
      ['e.i64', { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, -2n, 1n << 40n]) }],
      ['f.empty', { dtype: 'F32', shape: [0, 7], data: new Float32Array(0) }],
      ['g.scalar', { dtype: 'F32', shape: [], data: new Float32Array([42]) }],
      ['h.bool', { dtype: 'BOOL', shape: [3], raw: new Uint8Array([1, 0, 1]) }],
    ]);
    writeSafetensors(file, tensors, { format: 'pt', note: 'hello' });

    const { tensors: back, metadata } = readSafetensors(file);
    expect(metadata).toEqual({ format: 'pt', note: 'hello' });
    expect([...back.keys()].sort()).toEqual([...tensors.keys()].sort());
    expect(Array.from(back.get('a.f32')!.data)).toEqual(Array.from(f32));
    expect(back.get('b.f16')!.shape).toEqual([1, 5]);
    expect(Array.from(back.get('b.f16')!.data)).toEqual(Array.from(f32).map((v) => f16BitsToF32(f32ToF16Bits(v))));
    expect(Array.from(back.get('c.bf16')!.data)).toEqual(Array.from(f32).map((v) => bf16BitsToF32(f32ToBf16Bits(v))));
    expect(back.get('d.f64')!.data[0]).toBeCloseTo(Math.PI, 6);
    expect(Array.from(new BigInt64Array(back.get('e.i64')!.raw.slice().buffer))).toEqual([1n, -2n, 1n << 40n]);
    expect(back.get('f.empty')!.shape).toEqual([0, 7]);
    expect(back.get('f.empty')!.data.length).toBe(0);
    expect(back.get('g.scalar')!.shape).toEqual([]);
    expect(Array.from(back.get('g.scalar')!.data)).toEqual([42]);
    expect(Array.from(back.get('h.bool')!.data)).toEqual([1, 0, 1]);

    // Re-writing loaded tensors (raw bytes) reproduces the file bit for bit.
    const again = path.join(dir, 'round2.safetensors');
    writeSafetensors(again, back, metadata);
    expect(fs.readFileSync(again).equals(fs.readFileSync(file))).toBe(true);
  });

  test('header is padded to a multiple of 8 and offsets stay aligned for their dtype', () => {
    const bytes = encodeSafetensors([
      ['x', { dtype: 'F16', shape: [3], data: new Float32Array([1, 2, 3]) }],
      ['y', { dtype: 'F64', shape: [1], data: new Float64Array([1]) }],
      ['z', { dtype: 'F32', shape: [1], data: new Float32Array([1]) }],
    ]);
    const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const file = path.join(dir, 'aligned.safetensors');
    fs.writeFileSync(file, bytes);
    const header = readSafetensorsHeader(file);
    for (const e of header.entries) expect(e.begin % ({ F16: 2, F32: 4, F64: 8 } as Record<string, number>)[e.dtype]).toBe(0);
  });

  test('f16 conversion rounds to nearest even and handles subnormals, overflow and NaN', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds up to infinity
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -26)).toBe(0x0000);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN)))).toBe(true);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(bf16BitsToF32(0xc000)).toBe(-2);
  });

  test('writes are atomic: a failing write leaves the old file and no temp file', () => {
    const file = path.join(dir, 'atomic.safetensors');
    writeSafetensors(file, [['w', { dtype: 'F32', shape: [1], data: new Float32Array([7]) }]]);
    const before = fs.readFileSync(file);
    expect(() =>
      writeSafetensors(file, [['w', { dtype: 'F32', shape: [2], data: new Float32Array([1]) }]]),
    ).toThrow(/shape \[2\] has 2 elements but data has 1/);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('safetensors hand-built files', () => {
  test('a hand-written header with spaces and metadata is read', () => {
    const file = handBuilt(
      'hand.safetensors',
      '{"__metadata__":{"format":"pt"}, "b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   ',
      f32Bytes([1, 2, 3]),
    );
    const { tensors, metadata } = readSafetensors(file);
    expect(metadata).toEqual({ format: 'pt' });
    expect(Array.from(tensors.get('a')!.data)).toEqual([1, 2]);
    expect(Array.from(tensors.get('b')!.data)).toEqual([3]);
  });

  test('select loads a subset', () => {
    const file = handBuilt(
      'select.safetensors',
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}',
      f32Bytes([1, 2, 3]),
    );
    expect([...readSafetensors(file, { select: (n) => n === 'b' }).tensors.keys()]).toEqual(['b']);
  });
});

describe('safetensors rejects malformed files with errors naming file and tensor', () => {
  const ok = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const cases: [string, () => string, RegExp][] = [
    ['shorter than the length prefix', () => { const f = path.join(dir, 'tiny.safetensors'); fs.writeFileSync(f, Buffer.alloc(5)); return f; }, /shorter than the 8-byte length prefix/],
    ['truncated data', () => handBuilt('trunc.safetensors', ok, f32Bytes([1])), /truncated: tensors need 8 data bytes, it holds 4/],
    ['truncated header', () => handBuilt('trunch.safetensors', ok, new Uint8Array(0), 4000n), /runs past the end/],
    ['huge header length', () => handBuilt('huge.safetensors', ok, f32Bytes([1, 2]), 100_000_001n), /exceeds the limit of 100000000/],
    ['header length near 2^64', () => handBuilt('huge2.safetensors', ok, f32Bytes([1, 2]), (1n << 64n) - 1n), /exceeds the limit/],
    ['duplicate keys', () => handBuilt('dup.safetensors', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32Bytes([1, 2])), /duplicate key "a"/],
    ['overlapping offsets', () => handBuilt('overlap.safetensors', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', f32Bytes([1, 2, 3])), /tensor "b": .*overlap of 4 bytes/],
    ['a gap', () => handBuilt('gap.safetensors', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', f32Bytes([1, 2, 3])), /tensor "b": .*gap of 4 bytes/],
    ['first begin not 0', () => handBuilt('start.safetensors', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32Bytes([1, 2])), /tensor "a": .*gap/],
    ['trailing bytes', () => handBuilt('trail.safetensors', ok, f32Bytes([1, 2, 3])), /4 trailing bytes belong to no tensor/],
    ['size not matching shape', () => handBuilt('size.safetensors', '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', f32Bytes([1, 2])), /tensor "a": shape \[3\] of F32 needs 12 bytes/],
    ['shape product overflowing 2^64', () => handBuilt('ovf.safetensors', '{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}'), /needs 73786976294838206464 bytes/],
    ['end before begin', () => handBuilt('rev.safetensors', '{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}'), /end 0 is before begin 8/],
    ['unknown dtype', () => handBuilt('dtype.safetensors', '{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}', new Uint8Array(1)), /tensor "a": unknown dtype "F4"/],
    ['negative dim', () => handBuilt('neg.safetensors', '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', f32Bytes([1])), /non-negative integers/],
    ['not JSON', () => handBuilt('notjson.safetensors', '{"a":', new Uint8Array(0)), /not valid JSON/],
    ['JSON array', () => handBuilt('array.safetensors', '[]'), /must be a JSON object/],
    ['bad metadata', () => handBuilt('meta.safetensors', '{"__metadata__":{"x":1}}'), /__metadata__\["x"\] must be a string/],
    ['extra field', () => handBuilt('extra.safetensors', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}', f32Bytes([1])), /unexpected field "x"/],
    ['invalid UTF-8', () => { const f = handBuilt('utf.safetensors', '{"a\u00e9":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'); const b = fs.readFileSync(f); b[12] = 0xff; fs.writeFileSync(f, b); return f; }, /not valid UTF-8/],
  ];
  test.each(cases)('%s', (_label, make, message) => {
    const file = make();
    let error: unknown;
    try {
      readSafetensors(file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toMatch(message);
  });

  test('missing file', () => {
    expect(() => readSafetensors(path.join(dir, 'nope.safetensors'))).toThrow(/nope\.safetensors: cannot open/);
  });

  test('writer refuses mismatched data and duplicate names', () => {
    const f = path.join(dir, 'w.safetensors');
    expect(() => writeSafetensors(f, [['a', { dtype: 'I32', shape: [1], data: new Float32Array([1]) }]])).toThrow(/cannot encode float values as I32/);
    expect(() => writeSafetensors(f, [['a', { dtype: 'F32', shape: [1], raw: new Uint8Array(3) }]])).toThrow(/needs 4 bytes, got 3/);
    expect(() =>
      writeSafetensors(f, [
        ['a', { dtype: 'F32', shape: [1], data: new Float32Array(1) }],
        ['a', { dtype: 'F32', shape: [1], data: new Float32Array(1) }],
      ]),
    ).toThrow(/duplicate tensor name/);
    expect(fs.existsSync(f)).toBe(false);
  });
});
