/**
 * Hostile checkpoints (PAPER.md §9.8): each is refused with a clear error, and nothing runs — the
 * marker file the payloads would create never appears.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openTorchStateDict, CheckpointError } from '../native/interop/torch-archive';
import { unpickle, PickleError, DEFAULT_PICKLE_LIMITS } from '../native/interop/pickle';
import { ZipArchive, ZipError } from '../native/interop/zip';
import { buildTorchZip, buildZip, PickleWriter, f32 } from './helpers/interop-builders';

const MARKER = '/tmp/backpack-interop-pwned-marker';
const FIXTURES = path.join(__dirname, 'fixtures', 'interop');
let dir: string;

beforeAll(() => {
  fs.rmSync(MARKER, { force: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interop-sec-'));
});
afterEach(() => expect(fs.existsSync(MARKER)).toBe(false));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** Loads fully (state_dict + every tensor), as an importer would. */
function loadAll(file: string): void {
  const sd = openTorchStateDict(file);
  try {
    for (const [name, ref] of sd.tensors) sd.archive.materialize(ref, name);
  } finally {
    sd.archive.close();
  }
}

function refused(file: string, message: RegExp): void {
  let error: unknown;
  try {
    loadAll(file);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(CheckpointError);
  expect((error as Error).message).toContain(file);
  expect((error as Error).message).toMatch(message);
}

/** A dict {'w': <value built by body>} as a torch archive with one 4-float storage "0". */
function archiveWith(body: (p: PickleWriter) => void, storages: Record<string, Uint8Array> = { '0': f32([1, 2, 3, 4]) }): Buffer {
  const p = new PickleWriter().proto().emptyDict().put().str('w');
  body(p);
  p.setitem().stop();
  return buildTorchZip(p.bytes(), storages);
}

describe('code execution attempts are refused', () => {
  test('os.system via REDUCE (a real torch.save of an object whose __reduce__ calls os.system)', () => {
    refused(path.join(FIXTURES, 'evil-os-system.pt'), /refused global posix\.system: it could run code/);
  });

  test('eval via __reduce__ hidden in Lightning hyper_parameters', () => {
    refused(path.join(FIXTURES, 'evil-eval.ckpt'), /refused global (__builtin__|builtins)\.eval: it could run code/);
  });

  test('__reduce__ tricks: unknown callables never run, and cannot stand in for tensors or storages', () => {
    // copyreg-style reconstructor in the state_dict: becomes an inert placeholder, then an error where a tensor must be.
    const placeholder = write('reduce-placeholder.pt', archiveWith((p) => p.global('copyreg', '_reconstructor').mark().str('x').tuple().reduce()));
    refused(placeholder, /state_dict\["w"\] holds an object of unknown class copyreg\._reconstructor, not a tensor/);
    // A placeholder passed to the tensor rebuild instead of a storage.
    const fakeStorage = write('reduce-fake-storage.pt', archiveWith((p) =>
      p.global('torch._utils', '_rebuild_tensor_v2').mark().global('mymod', 'Storage').emptyTuple().reduce()
        .int(0).intTuple([1]).intTuple([1]).bool(false).none().tuple().reduce()));
    refused(fakeStorage, /first argument is not a storage of this archive/);
    // Calling something that is not callable (a string).
    const notCallable = write('reduce-string.pt', archiveWith((p) => p.str('os.system').mark().str('touch x').tuple().reduce()));
    refused(notCallable, /REDUCE at byte \d+: cannot call a string/);
    // A storage type passed as a callable.
    const storageCall = write('reduce-storage-type.pt', archiveWith((p) => p.global('torch', 'FloatStorage').mark().int(5).tuple().reduce()));
    refused(storageCall, /cannot call a torch\.FloatStorage/);
  });

  test('nested GLOBALs: getattr(__import__("os"), "system") and dotted attribute chains', () => {
    const nested = write('nested.pt', archiveWith((p) =>
      p.global('builtins', 'getattr').mark().global('builtins', '__import__').mark().str('os').tuple().reduce().str('system').tuple().reduce()
        .mark().str(`touch ${MARKER}`).tuple().reduce()));
    refused(nested, /refused global builtins\.getattr/);
    const dotted = write('dotted.pt', archiveWith((p) => p.global('torch._utils', '_rebuild_tensor_v2.__globals__')));
    refused(dotted, /refused global torch\._utils\._rebuild_tensor_v2\.__globals__/);
    const submodule = write('submodule.pt', archiveWith((p) => p.global('os.path', 'join')));
    refused(submodule, /refused global os\.path\.join/);
    const torchLoad = write('torch-load.pt', archiveWith((p) => p.global('torch.storage', '_load_from_bytes')));
    refused(torchLoad, /refused global torch\.storage\._load_from_bytes/);
  });

  test('INST and OBJ opcodes are not interpreted', () => {
    const inst = write('inst.pt', archiveWith((p) => p.mark().str(`touch ${MARKER}`).raw(0x69, ...Buffer.from('os\nsystem\n'))));
    refused(inst, /opcode INST is not allowed/);
    const obj = write('obj.pt', archiveWith((p) => p.mark().global('subprocess', 'Popen').str('touch').raw(0x6f)));
    refused(obj, /refused global subprocess\.Popen/);
    const objPlaceholder = write('obj2.pt', archiveWith((p) => p.mark().global('mymod', 'Thing').raw(0x6f)));
    refused(objPlaceholder, /opcode OBJ is not allowed/);
  });

  test('SETITEM on a non-dict and APPEND on a tuple (CVE-class mutations) are refused', () => {
    const setitemList = write('setitem-list.pt', archiveWith((p) => p.emptyList().str('k').str('v').setitem()));
    refused(setitemList, /SETITEM at byte \d+: target is a list, not a dict/);
    const setitemPlaceholder = write('setitem-obj.pt', archiveWith((p) => p.global('mymod', 'Thing').emptyTuple().reduce().str('k').str('v').setitem()));
    refused(setitemPlaceholder, /target is a placeholder mymod\.Thing, not a dict/);
    const appendTuple = write('append-tuple.pt', archiveWith((p) => p.emptyTuple().int(1).append()));
    refused(appendTuple, /APPEND at byte \d+: target is a tuple, not a list/);
  });
});

describe('resource attacks are refused before allocating', () => {
  test('huge allocations: giant dims, broadcast views, oversize storage claims, long strings, item floods', () => {
    // A stride-0 view claiming 2^40 elements over a 4-element storage: in bounds, but would need 4 TiB.
    const broadcast = write('broadcast.pt', archiveWith((p) => p.tensor({ key: '0', numel: 4, size: [2 ** 40], stride: [0] })));
    refused(broadcast, /total tensor data would exceed \d+ bytes/);
    // Dimensions beyond 2^53 (LONG1) are not exact integers.
    const giantDim = write('giant-dim.pt', archiveWith((p) => p.tensor({ key: '0', numel: 4, size: [1n << 62n], stride: [1] })));
    refused(giantDim, /size must be a tuple of non-negative integers/);
    // A storage claiming 2^50 elements whose record holds 16 bytes.
    const bigStorage = write('big-storage.pt', archiveWith((p) => p.tensor({ key: '0', numel: 2 ** 50, size: [4], stride: [1] })));
    refused(bigStorage, /declares 1125899906842624 FloatStorage elements \(4503599627370496 bytes\) but data\/0 holds 16 bytes/);
    // A string claiming 4 GiB of text.
    const longString = write('long-string.pt', archiveWith((p) => p.raw(0x58, 0xff, 0xff, 0xff, 0xff)));
    refused(longString, /BINUNICODE at byte \d+: truncated/);
    // Item and memo floods are bounded independently of the input size.
    const flood = new PickleWriter().proto().emptyList();
    for (let i = 0; i < 100; i++) flood.get(0);
    expect(() => unpickle(new PickleWriter().proto().emptyList().put().mark().get(0).get(0).get(0).raw(0x65).stop().bytes(), hooksRefusingStorage(), { ...DEFAULT_PICKLE_LIMITS, maxItems: 2 })).toThrow(
      /containers exceed 2 items in total/,
    );
    expect(() => unpickle(new PickleWriter().proto().none().put().put().put().stop().bytes(), hooksRefusingStorage(), { ...DEFAULT_PICKLE_LIMITS, maxMemo: 2 })).toThrow(/memo exceeds 2 entries/);
    const deep = new PickleWriter().proto();
    for (let i = 0; i < 50; i++) deep.mark();
    expect(() => unpickle(deep.bytes(), hooksRefusingStorage(), { ...DEFAULT_PICKLE_LIMITS, maxMarks: 20 })).toThrow(/more than 20 nested MARKs/);
  });

  test('storage overruns: views past the end, missing records, mismatched redeclarations', () => {
    const pastEnd = write('overrun.pt', archiveWith((p) => p.tensor({ key: '0', numel: 4, offset: 2, size: [3], stride: [1] })));
    refused(pastEnd, /reaches element 4 of storage "0" with 4 elements/);
    const strided = write('overrun-stride.pt', archiveWith((p) => p.tensor({ key: '0', numel: 4, size: [2, 2], stride: [3, 1] })));
    refused(strided, /reaches element 4 of storage "0"/);
    const overflow = write('overrun-overflow.pt', archiveWith((p) => p.tensor({ key: '0', numel: 4, offset: 2 ** 53 - 1, size: [2], stride: [2 ** 53 - 1] })));
    refused(overflow, /reaches element 18014398509481982 of storage/);
    const missing = write('missing.pt', archiveWith((p) => p.tensor({ key: '7', numel: 4, size: [4], stride: [1] })));
    refused(missing, /storage "7" has no record data\/7 in the archive/);
    const badKey = write('bad-key.pt', archiveWith((p) => p.tensor({ key: '../../etc/passwd', numel: 4, size: [4], stride: [1] })));
    refused(badKey, /storage key "..\/..\/etc\/passwd" is not a plain name/);
    const redeclared = write('redeclared.pt', (() => {
      const p = new PickleWriter().proto().emptyDict().put();
      p.str('a').tensor({ key: '0', numel: 4, size: [4], stride: [1] }).setitem();
      p.str('b').tensor({ key: '0', numel: 2, storageType: 'DoubleStorage', size: [2], stride: [1] }).setitem().stop();
      return buildTorchZip(p.bytes(), { '0': f32([1, 2, 3, 4]) });
    })());
    refused(redeclared, /storage "0" is declared twice with different types or sizes/);
  });
});

describe('zip container attacks', () => {
  const pickle = new PickleWriter().proto().emptyDict().stop().bytes();

  test('path traversal and absolute entry names', () => {
    for (const name of ['../../evil.sh', 'archive/../../x', '/etc/passwd', 'C:/x', 'archive\\..\\x']) {
      const file = write('traversal.pt', buildTorchZip(pickle, {}, [{ name, data: Buffer.from('x') }]));
      expect(() => ZipArchive.open(file)).toThrow(ZipError);
      refused(file, /is not a safe relative path \(path traversal refused\)/);
    }
  });

  test('zip bombs: compressed entries, overlapping entries, sizes beyond the file', () => {
    const compressed = write('deflate.pt', buildZip([
      { name: 'archive/data.pkl', data: pickle },
      { name: 'archive/data/0', data: require('zlib').deflateRawSync(Buffer.alloc(1 << 20)), method: 8, declaredSize: 1 << 20 },
    ]));
    refused(compressed, /uses compression method 8; only stored entries are accepted/);
    const beyond = write('beyond.pt', buildZip([
      { name: 'archive/data.pkl', data: pickle },
      { name: 'archive/data/0', data: f32([1]), declaredSize: 0xfffffff0 },
    ]));
    refused(beyond, /claims 4294967280 bytes at offset \d+, beyond the file data/);
    const overlapping = write('overlap.pt', buildZip([
      { name: 'archive/data.pkl', data: pickle },
      { name: 'archive/data/0', data: f32([1, 2]) },
      { name: 'archive/data/1', data: f32([1, 2]), declaredOffset: 0 },
    ]));
    refused(overlapping, /local header names "archive\/data\.pkl"|overlap/);
  });

  test('encrypted entries, corrupt CRCs, truncated archives, duplicate names', () => {
    refused(write('encrypted.pt', buildZip([{ name: 'archive/data.pkl', data: pickle, flags: 1 }])), /is encrypted; encrypted archives are refused/);
    refused(write('crc.pt', buildZip([{ name: 'archive/data.pkl', data: pickle, crc: 1234 }])), /entry "archive\/data\.pkl" is corrupt: CRC-32/);
    const good = buildTorchZip(pickle);
    refused(write('truncated.pt', good.subarray(0, good.length - 30)), /not a zip archive \(no end of central directory record\)/);
    refused(write('dup.pt', buildZip([{ name: 'archive/data.pkl', data: pickle }, { name: 'archive/data.pkl', data: pickle }])), /appears twice/);
    refused(write('nopkl.pt', buildZip([{ name: 'archive/other', data: pickle }])), /no data\.pkl record: not a torch\.save archive/);
  });
});

function hooksRefusingStorage() {
  return {
    persistentLoad: () => {
      throw new PickleError('no storages here');
    },
    rebuildTensor: () => {
      throw new PickleError('no tensors here');
    },
  };
}
