/**
 * A bespoke, non-executing pickle interpreter for the opcode subset torch.save writes
 * (PAPER.md §9.7, security rules §9.8). It never imports or calls anything: GLOBAL resolves through
 * a fixed table of data constructors, every other global becomes an inert Placeholder that records
 * its name, and dangerous modules are refused outright.
 *
 * Python values map to: None → null, bool → boolean, int → number (bigint beyond 2^53), float →
 * number, str → string, list → array, tuple → frozen array, dict/OrderedDict → Map.
 */

export class PickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PickleError';
  }
}

/** An unknown global, or the result of calling/building one. Holds data only; never runs. */
export class Placeholder {
  args?: unknown;
  state?: unknown;
  constructor(
    readonly module: string,
    readonly name: string,
    readonly kind: 'global' | 'instance' = 'global',
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** What the persistent-id callback returns for ('storage', cls, key, location, numel). */
export interface PersistentStorageRequest {
  storageType: string;
  key: string;
  location: string;
  numel: number;
}

/** Data constructors the caller supplies (the tensor/storage layer); called only via the fixed table. */
export interface PickleHooks {
  /** A storage record; returns the object that tensors refer to. */
  persistentLoad(request: PersistentStorageRequest): unknown;
  /** torch._utils._rebuild_tensor_v2 arguments, already type-checked loosely. */
  rebuildTensor(args: readonly unknown[]): unknown;
}

export interface PickleLimits {
  maxBytes: number;
  maxMemo: number;
  maxStack: number;
  maxMarks: number;
  /** Items across all containers created (bounds memory independently of the pickle size). */
  maxItems: number;
}

export const DEFAULT_PICKLE_LIMITS: PickleLimits = {
  maxBytes: 256 * 1024 * 1024,
  maxMemo: 4_000_000,
  maxStack: 1_000_000,
  maxMarks: 10_000,
  maxItems: 50_000_000,
};

/** Storage class names (they only name a dtype). */
export const STORAGE_TYPES = [
  'FloatStorage',
  'HalfStorage',
  'BFloat16Storage',
  'DoubleStorage',
  'LongStorage',
  'IntStorage',
  'ShortStorage',
  'CharStorage',
  'ByteStorage',
  'BoolStorage',
] as const;

/** A storage class global: inert marker carrying the class name. */
export class StorageType {
  constructor(readonly name: string) {}
}

class DataConstructor {
  constructor(readonly qualifiedName: string) {}
}

const ORDERED_DICT = new DataConstructor('collections.OrderedDict');
const REBUILD_TENSOR_V2 = new DataConstructor('torch._utils._rebuild_tensor_v2');
const REBUILD_PARAMETER = new DataConstructor('torch._utils._rebuild_parameter');

/** Modules whose globals are refused outright, not even made into placeholders. */
const REFUSED_MODULES = [
  'os', 'posix', 'nt', 'sys', 'subprocess', 'shutil', 'socket', 'importlib', 'runpy', 'ctypes', 'pickle',
  '_pickle', 'marshal', 'code', 'codeop', 'pty', 'webbrowser', 'multiprocessing', 'signal', 'pdb', 'commands',
  'asyncio', 'threading', '_thread', 'operator', 'torch.hub', 'torch._C', 'torch.jit', 'torch.ops', 'torch.serialization', 'torch.storage',
  'torch._dynamo', 'torch._inductor', 'torch.utils.cpp_extension', 'numpy.testing', 'pip', 'setuptools',
];
/** Names in builtins that evaluate, import, open or reach into attributes. */
const REFUSED_BUILTINS = new Set([
  'eval', 'exec', 'compile', 'open', '__import__', 'getattr', 'setattr', 'delattr', 'globals', 'locals',
  'vars', 'input', 'breakpoint', 'exit', 'quit', 'help', 'apply', 'execfile', 'reload', 'memoryview', 'super',
  'type', 'object.__reduce__', 'classmethod', 'staticmethod', 'property',
]);

function isRefusedGlobal(module: string, name: string): boolean {
  if (REFUSED_MODULES.some((m) => module === m || module.startsWith(m + '.'))) return true;
  if (module === 'builtins' || module === '__builtin__') {
    return REFUSED_BUILTINS.has(name) || name.includes('.') || name.startsWith('_');
  }
  if (name.includes('.') || name.startsWith('__')) return true; // attribute chains and dunders
  if (module === 'torch' && (name === 'load' || name === 'save' || name === 'from_file')) return true;
  return false;
}

function resolveGlobal(module: string, name: string): unknown {
  if (isRefusedGlobal(module, name)) {
    throw new PickleError(`refused global ${module}.${name}: it could run code (only data constructors are allowed)`);
  }
  if (module === 'collections' && name === 'OrderedDict') return ORDERED_DICT;
  if (module === 'torch._utils' && name === '_rebuild_tensor_v2') return REBUILD_TENSOR_V2;
  if (module === 'torch._utils' && name === '_rebuild_parameter') return REBUILD_PARAMETER;
  if (module === 'torch' && (STORAGE_TYPES as readonly string[]).includes(name)) return new StorageType(name);
  return new Placeholder(module, name);
}

class Mark {}

/** Tuples are frozen arrays; lists are plain arrays. */
export function isTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'dict';
  if (isTuple(v)) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Placeholder) return `placeholder ${v.qualifiedName}`;
  if (v instanceof DataConstructor) return v.qualifiedName;
  if (v instanceof StorageType) return `torch.${v.name}`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}

const OPCODE_NAMES: Record<number, string> = {
  0x80: 'PROTO', 0x7d: 'EMPTY_DICT', 0x5d: 'EMPTY_LIST', 0x29: 'EMPTY_TUPLE', 0x28: 'MARK', 0x58: 'BINUNICODE',
  0x4a: 'BININT', 0x4b: 'BININT1', 0x4d: 'BININT2', 0x8a: 'LONG1', 0x47: 'BINFLOAT', 0x4e: 'NONE', 0x88: 'NEWTRUE',
  0x89: 'NEWFALSE', 0x74: 'TUPLE', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3', 0x71: 'BINPUT', 0x72: 'LONG_BINPUT',
  0x68: 'BINGET', 0x6a: 'LONG_BINGET', 0x73: 'SETITEM', 0x75: 'SETITEMS', 0x61: 'APPEND', 0x65: 'APPENDS',
  0x63: 'GLOBAL', 0x52: 'REDUCE', 0x62: 'BUILD', 0x51: 'BINPERSID', 0x81: 'NEWOBJ', 0x2e: 'STOP',
};
/** Names of some refused opcodes, so the error says what was found. */
const REFUSED_OPCODE_NAMES: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x93: 'STACK_GLOBAL', 0x50: 'PERSID', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
  0x95: 'FRAME', 0x94: 'MEMOIZE', 0x8c: 'SHORT_BINUNICODE', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES',
  0x92: 'NEWOBJ_EX', 0x8b: 'LONG4', 0x53: 'STRING', 0x55: 'SHORT_BINSTRING', 0x54: 'BINSTRING', 0x56: 'UNICODE',
  0x49: 'INT', 0x4c: 'LONG', 0x46: 'FLOAT', 0x70: 'PUT', 0x67: 'GET', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
};

/** Interprets a pickle. Throws PickleError naming the opcode and byte offset on anything outside the rules. */
export function unpickle(bytes: Uint8Array, hooks: PickleHooks, limits: PickleLimits = DEFAULT_PICKLE_LIMITS): unknown {
  if (bytes.byteLength > limits.maxBytes) throw new PickleError(`pickle is ${bytes.byteLength} bytes, over the limit of ${limits.maxBytes}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let items = 0;
  let pos = 0;
  let opStart = 0;
  let opName = '';

  const fail = (message: string): never => {
    throw new PickleError(`pickle ${opName} at byte ${opStart}: ${message}`);
  };
  const need = (n: number): void => {
    if (pos + n > bytes.byteLength) fail(`truncated: needs ${n} more bytes`);
  };
  const push = (v: unknown): void => {
    if (stack.length >= limits.maxStack) fail(`stack exceeds ${limits.maxStack} entries`);
    stack.push(v);
  };
  const pop = (): unknown => {
    const floor = marks.length ? marks[marks.length - 1] : 0;
    if (stack.length <= floor) fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    const floor = marks.length ? marks[marks.length - 1] : 0;
    if (stack.length <= floor) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popToMark = (): unknown[] => {
    if (!marks.length) fail('no MARK on the stack');
    const at = marks.pop()!;
    return stack.splice(at);
  };
  const countItems = (n: number): void => {
    items += n;
    if (items > limits.maxItems) fail(`containers exceed ${limits.maxItems} items in total`);
  };
  const tuple = (xs: unknown[]): readonly unknown[] => {
    countItems(xs.length);
    return Object.freeze(xs);
  };
  const memoPut = (index: number): void => {
    if (memo.size >= limits.maxMemo && !memo.has(index)) fail(`memo exceeds ${limits.maxMemo} entries`);
    memo.set(index, top());
  };
  const memoGet = (index: number): void => {
    if (!memo.has(index)) fail(`memo index ${index} was never stored`);
    push(memo.get(index));
  };
  const readLine = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 1024) fail('unterminated or overlong GLOBAL name');
    const s = Buffer.from(bytes.buffer, bytes.byteOffset + pos, end - pos).toString('latin1');
    pos = end + 1;
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(s)) fail(`malformed global name ${JSON.stringify(s)}`);
    return s;
  };
  const setItem = (target: unknown, key: unknown, value: unknown): void => {
    if (!(target instanceof Map)) fail(`target is a ${describe(target)}, not a dict`);
    if (!isHashable(key)) fail(`a ${describe(key)} cannot be a dict key`);
    (target as Map<unknown, unknown>).set(key, value);
    countItems(1);
  };

  while (true) {
    if (pos >= bytes.byteLength) {
      opStart = pos;
      opName = 'end';
      fail('pickle ended without STOP');
    }
    opStart = pos;
    const op = bytes[pos++];
    opName = OPCODE_NAMES[op] ?? REFUSED_OPCODE_NAMES[op] ?? `0x${op.toString(16)}`;
    switch (op) {
      case 0x80: // PROTO
        need(1);
        if (bytes[pos] > 5) fail(`unsupported protocol ${bytes[pos]}`);
        pos++;
        break;
      case 0x7d: // EMPTY_DICT
        push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        push(tuple([]));
        break;
      case 0x28: // MARK
        if (marks.length >= limits.maxMarks) fail(`more than ${limits.maxMarks} nested MARKs`);
        marks.push(stack.length);
        break;
      case 0x58: {
        // BINUNICODE
        need(4);
        const n = view.getUint32(pos, true);
        pos += 4;
        need(n);
        let s: string;
        try {
          s = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(pos, pos + n));
        } catch {
          s = fail('string is not valid UTF-8');
        }
        pos += n;
        push(s);
        break;
      }
      case 0x4a: // BININT
        need(4);
        push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        push(bytes[pos++]);
        break;
      case 0x4d: // BININT2
        need(2);
        push(view.getUint16(pos, true));
        pos += 2;
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n ≤ 255 bytes
        need(1);
        const n = bytes[pos++];
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[pos + i]);
        if (n > 0 && bytes[pos + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        pos += n;
        push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x74: // TUPLE
        push(tuple(popToMark()));
        break;
      case 0x85: // TUPLE1
        push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        push(tuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        push(tuple([a, b, c]));
        break;
      }
      case 0x71: // BINPUT
        need(1);
        memoPut(bytes[pos++]);
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memoPut(view.getUint32(pos, true));
        pos += 4;
        break;
      case 0x68: // BINGET
        need(1);
        memoGet(bytes[pos++]);
        break;
      case 0x6a: // LONG_BINGET
        need(4);
        memoGet(view.getUint32(pos, true));
        pos += 4;
        break;
      case 0x73: {
        // SETITEM
        const value = pop();
        const key = pop();
        setItem(top(), key, value);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popToMark();
        if (kv.length % 2) fail('odd number of items for SETITEMS');
        const target = top();
        for (let i = 0; i < kv.length; i += 2) setItem(target, kv[i], kv[i + 1]);
        break;
      }
      case 0x61: {
        // APPEND
        const value = pop();
        const list = top();
        if (!Array.isArray(list) || isTuple(list)) fail(`target is a ${describe(list)}, not a list`);
        countItems(1);
        (list as unknown[]).push(value);
        break;
      }
      case 0x65: {
        // APPENDS
        const values = popToMark();
        const list = top();
        if (!Array.isArray(list) || isTuple(list)) fail(`target is a ${describe(list)}, not a list`);
        countItems(values.length);
        for (const v of values) (list as unknown[]).push(v);
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = readLine();
        const name = readLine();
        try {
          push(resolveGlobal(module, name));
        } catch (err) {
          fail((err as Error).message);
        }
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const callable = pop();
        if (!isTuple(args)) fail(`arguments are a ${describe(args)}, not a tuple`);
        push(callConstructor(callable, args as readonly unknown[], hooks, fail));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = pop();
        if (!isTuple(args)) fail(`arguments are a ${describe(args)}, not a tuple`);
        if (cls === ORDERED_DICT && (args as unknown[]).length === 0) push(new Map());
        else if (cls instanceof Placeholder && cls.kind === 'global') {
          const obj = new Placeholder(cls.module, cls.name, 'instance');
          obj.args = args;
          push(obj);
        } else fail(`cannot create an instance of ${describe(cls)}`);
        break;
      }
      case 0x62: {
        // BUILD: only OrderedDict (its _metadata is dropped) and placeholders accept state.
        const state = pop();
        const target = top();
        if (target instanceof Placeholder) target.state = state;
        else if (target instanceof Map) {
          /* OrderedDict state such as `_metadata`: ignorable */
        } else if (!isTensorLike(target)) fail(`cannot set state on a ${describe(target)}`);
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        push(persistentLoad(pid, hooks, fail));
        break;
      }
      case 0x2e: {
        // STOP
        if (marks.length) fail('unclosed MARK at STOP');
        if (stack.length !== 1) fail(`stack holds ${stack.length} values at STOP, expected 1`);
        return stack[0];
      }
      default:
        fail(`opcode ${opName} is not allowed (only the torch.save subset is interpreted)`);
    }
  }
}

function isHashable(key: unknown): boolean {
  if (key === null) return true;
  const t = typeof key;
  if (t === 'string' || t === 'number' || t === 'bigint' || t === 'boolean') return true;
  return isTuple(key) || key instanceof Placeholder;
}

/** Tensors built by hooks are plain objects we created; BUILD on them (requires_grad state) is ignored. */
function isTensorLike(v: unknown): boolean {
  return typeof v === 'object' && v !== null && (v as { __tensor__?: boolean }).__tensor__ === true;
}

function callConstructor(callable: unknown, args: readonly unknown[], hooks: PickleHooks, fail: (m: string) => never): unknown {
  if (callable === ORDERED_DICT) {
    const out = new Map<unknown, unknown>();
    if (args.length === 0) return out;
    // OrderedDict([(k, v), ...]) is the only argument shape accepted.
    const pairs = args[0];
    if (args.length !== 1 || !Array.isArray(pairs)) return fail('OrderedDict takes one list of pairs');
    for (const pair of pairs as unknown[]) {
      if (!isTuple(pair) || pair.length !== 2 || !isHashable(pair[0])) return fail('OrderedDict items must be (key, value) tuples');
      out.set(pair[0], pair[1]);
    }
    return out;
  }
  if (callable === REBUILD_TENSOR_V2) {
    if (args.length !== 6 && args.length !== 7) return fail(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
    return hooks.rebuildTensor(args);
  }
  if (callable === REBUILD_PARAMETER) {
    if (args.length !== 3) return fail(`_rebuild_parameter takes 3 arguments, got ${args.length}`);
    if (!isTensorLike(args[0])) return fail(`_rebuild_parameter needs a tensor, got a ${describe(args[0])}`);
    return args[0];
  }
  if (callable instanceof Placeholder && callable.kind === 'global') {
    // An unknown callable: record the call, run nothing.
    const result = new Placeholder(callable.module, callable.name, 'instance');
    result.args = args;
    return result;
  }
  return fail(`cannot call a ${describe(callable)}`);
}

function persistentLoad(pid: unknown, hooks: PickleHooks, fail: (m: string) => never): unknown {
  if (!isTuple(pid) || pid.length !== 5 || pid[0] !== 'storage') {
    return fail('persistent id must be (\'storage\', class, key, location, numel)');
  }
  const [, cls, key, location, numel] = pid;
  if (!(cls instanceof StorageType)) return fail(`storage class is a ${describe(cls)}, not an allowed torch storage type`);
  if (typeof key !== 'string' || !/^[A-Za-z0-9_]+$/.test(key)) return fail(`storage key ${JSON.stringify(key)} is not a plain name`);
  if (typeof location !== 'string') return fail('storage location must be a string');
  if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) return fail(`storage numel ${String(numel)} is invalid`);
  return hooks.persistentLoad({ storageType: cls.name, key, location, numel });
}

/**
 * A JSON-safe rendering of unpickled metadata (hyper_parameters and friends): Maps become objects,
 * placeholders become {"$placeholder": "module.name", ...}, OmegaConf-style containers are unwrapped
 * to their content (`_content`, `_val`). Bounded: memo references can make cycles and exponentially
 * shared graphs, so cycles render as "<cycle>" and at most `maxNodes` values are visited.
 */
export function toJsonSafe(value: unknown, maxNodes = 100_000): unknown {
  const budget = { left: maxNodes };
  return renderJson(value, 0, new Set(), budget);
}

function renderJson(value: unknown, depth: number, path: Set<unknown>, budget: { left: number }): unknown {
  if (--budget.left < 0) return '<truncated>';
  if (depth > 64) return '<too deep>';
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object') return String(value);
  if (path.has(value)) return '<cycle>';
  path.add(value);
  try {
    const next = (v: unknown) => renderJson(v, depth + 1, path, budget);
    if (Array.isArray(value)) return value.map(next);
    if (value instanceof Map) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of value) out[typeof k === 'string' ? k : JSON.stringify(next(k))] = next(v);
      return out;
    }
    if (value instanceof Placeholder) {
      const state = value.state;
      if (state instanceof Map) {
        const stateMap = state as Map<unknown, unknown>;
        const dict = stateMap.get('__dict__') instanceof Map ? (stateMap.get('__dict__') as Map<unknown, unknown>) : stateMap;
        if (dict.has('_content')) return next(dict.get('_content'));
        if (dict.has('_val')) return next(dict.get('_val'));
      }
      const out: Record<string, unknown> = { $placeholder: value.qualifiedName };
      if (value.args !== undefined) out.args = next(value.args);
      if (state !== undefined) out.state = next(state);
      return out;
    }
    if (isTensorLike(value)) {
      const t = value as unknown as { dtype: string; shape: number[] };
      return { $tensor: { dtype: t.dtype, shape: t.shape } };
    }
    if (value instanceof StorageType) return { $placeholder: `torch.${value.name}` };
    return String(value);
  } finally {
    path.delete(value);
  }
}
