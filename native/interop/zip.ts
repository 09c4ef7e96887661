/**
 * A read-only zip reader for torch.save archives (PAPER.md §9.7, §9.8 rule 6).
 *
 * torch writes stored (uncompressed) entries, so we accept nothing else: compressed entries are
 * refused, which also rules out decompression bombs. Every entry must be a relative path without
 * `..`, unencrypted, with its bytes inside the file and not overlapping another entry. ZIP64
 * records are followed for archives and entries over 4 GiB. CRC-32 is checked on every read.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';

export class ZipError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'ZipError';
  }
}

export interface ZipEntry {
  name: string;
  /** Absolute file offset of the entry's first payload byte. */
  dataOffset: number;
  size: number;
  crc32: number;
}

export interface ZipLimits {
  /** Most entries accepted in the central directory. */
  maxEntries: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = { maxEntries: 1_000_000 };

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();

  private constructor(
    readonly file: string,
    private fd: number | undefined,
    readonly fileSize: number,
  ) {}

  static open(file: string, limits: ZipLimits = DEFAULT_ZIP_LIMITS): ZipArchive {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      throw new ZipError(file, `cannot open: ${(err as Error).message}`);
    }
    const archive = new ZipArchive(file, fd, fs.fstatSync(fd).size);
    try {
      archive.readDirectory(limits);
    } catch (err) {
      archive.close();
      throw err;
    }
    return archive;
  }

  /** Does the file start like a zip archive? (Used to tell torch zip from other formats.) */
  static looksLikeZip(file: string): boolean {
    const head = Buffer.alloc(4);
    const fd = fs.openSync(file, 'r');
    try {
      return fs.readSync(fd, head, 0, 4, 0) === 4 && head.readUInt32LE(0) === SIG_LOCAL;
    } finally {
      fs.closeSync(fd);
    }
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  /** The one entry whose name ends with `suffix` after the top-level folder, or undefined. */
  findBySuffix(suffix: string): ZipEntry[] {
    return [...this.entries.values()].filter((e) => e.name === suffix || e.name.endsWith('/' + suffix));
  }

  /** Reads an entry's bytes into a fresh buffer and verifies its CRC-32. */
  read(entry: ZipEntry): Uint8Array {
    const out = new Uint8Array(entry.size);
    this.readAt(out, entry.dataOffset, `entry "${entry.name}"`);
    const crc = zlib.crc32(out) >>> 0;
    if (crc !== entry.crc32) {
      throw new ZipError(this.file, `entry "${entry.name}" is corrupt: CRC-32 ${hex(crc)} but the directory records ${hex(entry.crc32)}`);
    }
    return out;
  }

  private readAt(into: Uint8Array, position: number, what: string): void {
    if (this.fd === undefined) throw new ZipError(this.file, 'archive is closed');
    let done = 0;
    while (done < into.byteLength) {
      const got = fs.readSync(this.fd, into, done, Math.min(into.byteLength - done, 1 << 30), position + done);
      if (got === 0) throw new ZipError(this.file, `unexpected end of file reading ${what}`);
      done += got;
    }
  }

  private readDirectory(limits: ZipLimits): void {
    const { fileSize } = this;
    if (fileSize < 22) throw new ZipError(this.file, `not a zip archive (${fileSize} bytes, too short for an end record)`);
    // The end record sits in the last 22 + 65535 (comment) bytes.
    const tailLength = Math.min(fileSize, 22 + U16_MAX);
    const tail = Buffer.alloc(tailLength);
    this.readAt(tail, fileSize - tailLength, 'the end of central directory');
    let eocd = -1;
    for (let i = tailLength - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === SIG_EOCD && i + 22 + tail.readUInt16LE(i + 20) === tailLength) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new ZipError(this.file, 'not a zip archive (no end of central directory record)');
    const eocdOffset = fileSize - tailLength + eocd;
    if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0) {
      throw new ZipError(this.file, 'multi-disk (spanned) archives are not supported');
    }
    let count: number = tail.readUInt16LE(eocd + 10);
    let cdSize: number = tail.readUInt32LE(eocd + 12);
    let cdOffset: number = tail.readUInt32LE(eocd + 16);

    // ZIP64: a locator right before the end record points to the 64-bit end record.
    if (eocdOffset >= 20) {
      const locator = Buffer.alloc(20);
      this.readAt(locator, eocdOffset - 20, 'the ZIP64 locator');
      if (locator.readUInt32LE(0) === SIG_ZIP64_LOCATOR) {
        const z64Offset = toSafeNumber(this.file, locator.readBigUInt64LE(8), 'ZIP64 end record offset');
        if (z64Offset + 56 > eocdOffset - 20) throw new ZipError(this.file, 'ZIP64 end record lies outside the file');
        const rec = Buffer.alloc(56);
        this.readAt(rec, z64Offset, 'the ZIP64 end record');
        if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw new ZipError(this.file, 'bad ZIP64 end record signature');
        count = toSafeNumber(this.file, rec.readBigUInt64LE(32), 'ZIP64 entry count');
        cdSize = toSafeNumber(this.file, rec.readBigUInt64LE(40), 'ZIP64 directory size');
        cdOffset = toSafeNumber(this.file, rec.readBigUInt64LE(48), 'ZIP64 directory offset');
      }
    }
    if (count > limits.maxEntries) throw new ZipError(this.file, `${count} entries exceed the limit of ${limits.maxEntries}`);
    if (cdOffset + cdSize > eocdOffset) {
      throw new ZipError(this.file, `central directory [${cdOffset}, ${cdOffset + cdSize}) lies outside the file`);
    }

    const cd = Buffer.alloc(cdSize);
    this.readAt(cd, cdOffset, 'the central directory');
    const spans: { name: string; start: number; end: number }[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdSize || cd.readUInt32LE(p) !== SIG_CENTRAL) {
        throw new ZipError(this.file, `central directory record ${i} is malformed`);
      }
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      const crc32 = cd.readUInt32LE(p + 16);
      let compressedSize: number = cd.readUInt32LE(p + 20);
      let size: number = cd.readUInt32LE(p + 24);
      const nameLength = cd.readUInt16LE(p + 28);
      const extraLength = cd.readUInt16LE(p + 30);
      const commentLength = cd.readUInt16LE(p + 32);
      let localOffset: number = cd.readUInt32LE(p + 42);
      const recordEnd = p + 46 + nameLength + extraLength + commentLength;
      if (recordEnd > cdSize) throw new ZipError(this.file, `central directory record ${i} runs past the directory`);
      const name = decodeName(this.file, cd.subarray(p + 46, p + 46 + nameLength), flags);

      // ZIP64 extended information: the 64-bit values of the fields saturated at 0xFFFFFFFF, in order.
      const extra = cd.subarray(p + 46 + nameLength, p + 46 + nameLength + extraLength);
      const z64 = findExtra(extra, 0x0001);
      if (z64) {
        let q = 0;
        const next = (what: string): number => {
          if (q + 8 > z64.length) throw new ZipError(this.file, `entry "${name}": ZIP64 extra field too short for ${what}`);
          const v = toSafeNumber(this.file, z64.readBigUInt64LE(q), `entry "${name}" ${what}`);
          q += 8;
          return v;
        };
        if (size === U32_MAX) size = next('size');
        if (compressedSize === U32_MAX) compressedSize = next('compressed size');
        if (localOffset === U32_MAX) localOffset = next('offset');
      }

      if (flags & 0x1 || flags & 0x40) throw new ZipError(this.file, `entry "${name}" is encrypted; encrypted archives are refused`);
      if (method !== 0) {
        throw new ZipError(this.file, `entry "${name}" uses compression method ${method}; only stored entries are accepted (torch.save never compresses)`);
      }
      if (compressedSize !== size) {
        throw new ZipError(this.file, `entry "${name}" is stored but declares ${compressedSize} stored and ${size} real bytes`);
      }
      checkEntryName(this.file, name);
      if (this.entries.has(name)) throw new ZipError(this.file, `entry "${name}" appears twice`);

      // The local header repeats the name and may carry its own padding extra field.
      if (localOffset + 30 > cdOffset) throw new ZipError(this.file, `entry "${name}" has its local header outside the file data`);
      const local = Buffer.alloc(30);
      this.readAt(local, localOffset, `the local header of "${name}"`);
      if (local.readUInt32LE(0) !== SIG_LOCAL) throw new ZipError(this.file, `entry "${name}" has a bad local header signature`);
      const localNameLength = local.readUInt16LE(26);
      const localExtraLength = local.readUInt16LE(28);
      const localName = Buffer.alloc(localNameLength);
      this.readAt(localName, localOffset + 30, `the local name of "${name}"`);
      if (localName.toString('latin1') !== cd.subarray(p + 46, p + 46 + nameLength).toString('latin1')) {
        throw new ZipError(this.file, `entry "${name}": local header names "${localName.toString('latin1')}"`);
      }
      const dataOffset = localOffset + 30 + localNameLength + localExtraLength;
      if (dataOffset + size > cdOffset) {
        throw new ZipError(this.file, `entry "${name}" claims ${size} bytes at offset ${dataOffset}, beyond the file data (ends at ${cdOffset})`);
      }
      spans.push({ name, start: localOffset, end: dataOffset + size });
      this.entries.set(name, { name, dataOffset, size, crc32 });
      p = recordEnd;
    }

    // Overlapping entries are how "quines" and overlap bombs work: refuse them.
    spans.sort((a, b) => a.start - b.start);
    for (let i = 1; i < spans.length; i++) {
      if (spans[i].start < spans[i - 1].end) {
        throw new ZipError(this.file, `entries "${spans[i - 1].name}" and "${spans[i].name}" overlap`);
      }
    }
  }
}

function findExtra(extra: Buffer, id: number): Buffer | undefined {
  let q = 0;
  while (q + 4 <= extra.length) {
    const tag = extra.readUInt16LE(q);
    const len = extra.readUInt16LE(q + 2);
    if (q + 4 + len > extra.length) return undefined;
    if (tag === id) return extra.subarray(q + 4, q + 4 + len);
    q += 4 + len;
  }
  return undefined;
}

function decodeName(file: string, bytes: Buffer, flags: number): string {
  if (flags & 0x800) {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new ZipError(file, 'an entry name is not valid UTF-8');
    }
  }
  return bytes.toString('latin1');
}

/** Entry names must be plain relative paths: no absolute paths, drive letters, `..`, backslashes or NULs. */
function checkEntryName(file: string, name: string): void {
  const bad =
    name.length === 0 ||
    name.startsWith('/') ||
    /^[A-Za-z]:/.test(name) ||
    name.includes('\\') ||
    name.includes('\0') ||
    name.split('/').some((part) => part === '..');
  if (bad) throw new ZipError(file, `entry name "${name}" is not a safe relative path (path traversal refused)`);
}

function toSafeNumber(file: string, v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(file, `${what} ${v} is out of range`);
  return Number(v);
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}
