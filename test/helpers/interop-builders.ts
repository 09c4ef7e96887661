/**
 * Byte-level builders for the interop security tests: a stored-zip writer whose every field can be
 * falsified, and a pickle assembler for hand-made (including hostile) pickles.
 */
import * as zlib from 'zlib';

export interface ZipSpec {
  name: string;
  data: Uint8Array;
  /** Compression method to declare (default 0, stored). The data is written as given. */
  method?: number;
  flags?: number;
  /** Uncompressed size to declare instead of data.length. */
  declaredSize?: number;
  /** Local header offset to declare instead of the real one. */
  declaredOffset?: number;
  crc?: number;
  /** Write the central record's size and offset as 0xFFFFFFFF with a ZIP64 extra field holding them. */
  zip64?: boolean;
  /** Truncate that ZIP64 extra field to this many bytes (malformed archives). */
  zip64ExtraLength?: number;
}

/** A zip archive with 64-byte aligned payloads, like torch.save writes. */
export function buildZip(entries: ZipSpec[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const crc = e.crc ?? zlib.crc32(e.data) >>> 0;
    const size = e.declaredSize ?? e.data.length;
    // Pad the local extra field so the payload starts on a 64-byte boundary.
    const headerEnd = offset + 30 + name.length + 4;
    const pad = (64 - (headerEnd % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x5346, 0);
    extra.writeUInt16LE(pad, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(e.flags ?? 0, 6);
    local.writeUInt16LE(e.method ?? 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    parts.push(local, name, extra, Buffer.from(e.data));
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(45, 4);
    cd.writeUInt16LE(45, 6);
    cd.writeUInt16LE(e.flags ?? 0, 8);
    cd.writeUInt16LE(e.method ?? 0, 10);
    cd.writeUInt32LE(crc, 16);
    const localOffset = e.declaredOffset ?? offset;
    let cdExtra = Buffer.alloc(0);
    if (e.zip64) {
      // Order per the spec: size, compressed size, local header offset.
      const values = Buffer.alloc(24);
      values.writeBigUInt64LE(BigInt(size), 0);
      values.writeBigUInt64LE(BigInt(e.method ? e.data.length : size), 8);
      values.writeBigUInt64LE(BigInt(localOffset), 16);
      const body = values.subarray(0, e.zip64ExtraLength ?? 24);
      cdExtra = Buffer.alloc(4 + body.length);
      cdExtra.writeUInt16LE(0x0001, 0);
      cdExtra.writeUInt16LE(body.length, 2);
      body.copy(cdExtra, 4);
    }
    cd.writeUInt32LE(e.zip64 ? 0xffffffff : e.method ? e.data.length : size, 20);
    cd.writeUInt32LE(e.zip64 ? 0xffffffff : size, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt16LE(cdExtra.length, 30);
    cd.writeUInt32LE(e.zip64 ? 0xffffffff : localOffset, 42);
    central.push(cd, name, cdExtra);
    offset += 30 + name.length + extra.length + e.data.length;
  }
  const cdBytes = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cdBytes.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cdBytes, eocd]);
}

/** A torch.save-shaped archive: archive/data.pkl, archive/byteorder, archive/data/<key>. */
export function buildTorchZip(pickle: Uint8Array, storages: Record<string, Uint8Array> = {}, extra: ZipSpec[] = []): Buffer {
  return buildZip([
    { name: 'archive/data.pkl', data: pickle },
    { name: 'archive/byteorder', data: Buffer.from('little') },
    ...Object.entries(storages).map(([key, data]) => ({ name: `archive/data/${key}`, data })),
    { name: 'archive/version', data: Buffer.from('3\n') },
    ...extra,
  ]);
}

/** A pickle assembler (protocol 2 opcodes, plus anything raw for hostile inputs). */
export class PickleWriter {
  private out: number[] = [];
  private memo = 0;

  raw(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  proto(): this {
    return this.raw(0x80, 2);
  }
  mark(): this {
    return this.raw(0x28);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  emptyList(): this {
    return this.raw(0x5d);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  none(): this {
    return this.raw(0x4e);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    return this.raw(0x58, ...len, ...b);
  }
  int(n: number | bigint): this {
    const v = BigInt(n);
    if (v >= 0n && v < 256n) return this.raw(0x4b, Number(v));
    if (v >= -(1n << 31n) && v < 1n << 31n) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(Number(v));
      return this.raw(0x4a, ...b);
    }
    // LONG1: minimal little-endian two's complement.
    const bytes: number[] = [];
    let x = v;
    while (true) {
      bytes.push(Number(x & 0xffn));
      x >>= 8n;
      const sign = bytes[bytes.length - 1] & 0x80;
      if ((x === 0n && !sign) || (x === -1n && sign)) break;
    }
    return this.raw(0x8a, bytes.length, ...bytes);
  }
  global(module: string, name: string): this {
    return this.raw(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1'));
  }
  tuple(): this {
    return this.raw(0x74);
  }
  tupleN(n: 1 | 2 | 3): this {
    return this.raw([0x85, 0x86, 0x87][n - 1]);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  build(): this {
    return this.raw(0x62);
  }
  newobj(): this {
    return this.raw(0x81);
  }
  setitem(): this {
    return this.raw(0x73);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  append(): this {
    return this.raw(0x61);
  }
  binpersid(): this {
    return this.raw(0x51);
  }
  put(): this {
    return this.raw(0x71, this.memo++);
  }
  get(index: number): this {
    return this.raw(0x68, index);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  intTuple(values: (number | bigint)[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }
  /** torch._utils._rebuild_tensor_v2(storage('storage', cls, key, 'cpu', numel), offset, size, stride, False, OrderedDict()). */
  tensor(opts: { key: string; storageType?: string; numel: number | bigint; offset?: number | bigint; size: (number | bigint)[]; stride: (number | bigint)[] }): this {
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.mark();
    this.mark().str('storage').global('torch', opts.storageType ?? 'FloatStorage').str(opts.key).str('cpu').int(opts.numel).tuple().binpersid();
    this.int(opts.offset ?? 0).intTuple(opts.size).intTuple(opts.stride).bool(false);
    this.global('collections', 'OrderedDict').emptyTuple().reduce();
    return this.tuple().reduce();
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

export function f32(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}
