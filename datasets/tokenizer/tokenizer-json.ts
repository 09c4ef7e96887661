/**
 * Tokenizer artifacts: a directory with `tokenizer.json` in the Hugging Face `tokenizers` layout
 * (model BPE over byte-level characters, ByteLevel pre-tokenizer with GPT-2's regex, `<|endoftext|>`
 * as an added special token), so other tools can load what we train, plus `tokenizer_meta.json`
 * (name and training summary; `tokenizers` rejects unknown keys inside tokenizer.json). Ids: 0..255 =
 * the bytes in byte order, then one id per merge in rank order, then `<|endoftext|>` last.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BytePairEncoder, type BpeModel } from './bpe';
import { bytesToMapped, mappedToBytes } from './byte-map';
import { EOS_TEXT } from './types';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_META_FILE = 'tokenizer_meta.json';

interface TokenizerJson {
  version: string;
  added_tokens: { id: number; content: string; special: boolean; single_word: boolean; lstrip: boolean; rstrip: boolean; normalized: boolean }[];
  normalizer: null;
  pre_tokenizer: { type: 'ByteLevel'; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  post_processor: null;
  decoder: { type: 'ByteLevel'; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean };
  model: { type: 'BPE'; dropout: null; unk_token: null; continuing_subword_prefix: null; end_of_word_suffix: null; fuse_unk: false; byte_fallback: false; vocab: Record<string, number>; merges: (string | [string, string])[] };
}

/**
 * Serialises a model (ordinary tokens + merges + EOS) to tokenizer.json text. The second argument is
 * ignored (names now live in tokenizer_meta.json: use writeTokenizerArtifact); it stays so existing
 * callers compile.
 */
export function renderTokenizerJson(model: BpeModel, _ignoredProvenance?: Record<string, unknown>): string {
  const vocab: Record<string, number> = {};
  model.tokens.forEach((bytes, id) => {
    vocab[bytesToMapped(bytes)] = id;
  });
  vocab[EOS_TEXT] = model.eosId;
  // "left right" strings (mapped tokens never contain a space): readable by old and new `tokenizers`.
  const merges: string[] = [];
  for (let r = 0; r < model.merges.length / 3; r++) {
    merges.push(`${bytesToMapped(model.tokens[model.merges[3 * r]])} ${bytesToMapped(model.tokens[model.merges[3 * r + 1]])}`);
  }
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  const json: TokenizerJson = {
    version: '1.0',
    added_tokens: [{ id: model.eosId, content: EOS_TEXT, special: true, single_word: false, lstrip: false, rstrip: false, normalized: false }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: null,
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
  return JSON.stringify(json);
}

/** Parses and validates tokenizer.json text; `where` names the file in errors. */
export function parseTokenizerJson(text: string, where: string): BpeModel {
  return modelFromJson(parseJsonText(text, where), where);
}

function parseJsonText(text: string, where: string): TokenizerJson {
  try {
    return JSON.parse(text) as TokenizerJson;
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
}

function modelFromJson(json: TokenizerJson, where: string): BpeModel {
  if (json?.model?.type !== 'BPE' || typeof json.model.vocab !== 'object' || !Array.isArray(json.model.merges)) {
    throw new Error(`${where}: expected a byte-level BPE tokenizer (model.type "BPE" with vocab and merges)`);
  }
  if (json.pre_tokenizer?.type !== 'ByteLevel') throw new Error(`${where}: pre_tokenizer must be ByteLevel (GPT-2 style), got ${JSON.stringify(json.pre_tokenizer?.type)}`);
  const eos = json.added_tokens?.find((t) => t.content === EOS_TEXT) ?? null;
  const eosId = eos ? eos.id : json.model.vocab[EOS_TEXT];
  if (typeof eosId !== 'number') throw new Error(`${where}: no ${EOS_TEXT} token`);
  const tokens: Uint8Array[] = [];
  for (const [mapped, id] of Object.entries(json.model.vocab)) {
    if (id === eosId) continue;
    if (!Number.isInteger(id) || id < 0) throw new Error(`${where}: vocab entry "${mapped}" has invalid id ${id}`);
    if (tokens[id] !== undefined) throw new Error(`${where}: id ${id} is used twice in vocab`);
    tokens[id] = mappedToBytes(mapped, `${where}: vocab`);
  }
  for (let id = 0; id < tokens.length; id++) {
    if (tokens[id] === undefined && id !== eosId) throw new Error(`${where}: vocab has no token with id ${id}`);
  }
  if (eosId < tokens.length && tokens[eosId] !== undefined) throw new Error(`${where}: ${EOS_TEXT} id ${eosId} collides with an ordinary token`);
  const idOf = new Map<string, number>();
  tokens.forEach((bytes, id) => idOf.set(bytesToMapped(bytes), id));
  const merges = new Uint32Array(json.model.merges.length * 3);
  json.model.merges.forEach((m, r) => {
    const [a, b] = typeof m === 'string' ? splitMerge(m, where, r) : m;
    const left = idOf.get(a);
    const right = idOf.get(b);
    const merged = idOf.get(a + b);
    if (left === undefined || right === undefined || merged === undefined) {
      throw new Error(`${where}: merge ${r} ("${a}" "${b}") refers to a token missing from vocab`);
    }
    merges[3 * r] = left;
    merges[3 * r + 1] = right;
    merges[3 * r + 2] = merged;
  });
  // Dense token table: EOS sits after the ordinary ids, so fill any hole it leaves with an empty slot.
  const dense = Array.from({ length: tokens.length }, (_, i) => tokens[i] ?? new Uint8Array(0));
  return { tokens: dense, merges, eosId };
}

function splitMerge(m: string, where: string, r: number): [string, string] {
  const sp = m.indexOf(' ');
  if (sp <= 0 || sp !== m.lastIndexOf(' ')) throw new Error(`${where}: merge ${r} "${m}" is not "left right"`);
  return [m.slice(0, sp), m.slice(sp + 1)];
}

/** Writes tokenizer.json + tokenizer_meta.json ({name, ...}) into `dir`. */
export function writeTokenizerArtifact(dir: string, model: BpeModel, meta: { name: string } & Record<string, unknown>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [file, text] of [[TOKENIZER_FILE, renderTokenizerJson(model)], [TOKENIZER_META_FILE, JSON.stringify(meta, null, 2) + '\n']]) {
    const tmp = path.join(dir, `${file}.tmp-${process.pid}`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, path.join(dir, file));
  }
}

export function loadTokenizerArtifact(dir: string): BytePairEncoder {
  const file = path.join(dir, TOKENIZER_FILE);
  if (!fs.existsSync(file)) throw new Error(`tokenizer artifact ${dir}: ${TOKENIZER_FILE} is missing`);
  const json = parseJsonText(fs.readFileSync(file, 'utf8'), file);
  const metaFile = path.join(dir, TOKENIZER_META_FILE);
  const meta = fs.existsSync(metaFile) ? (parseJsonText(fs.readFileSync(metaFile, 'utf8'), metaFile) as unknown as { name?: unknown }) : {};
  const name = typeof meta.name === 'string' ? meta.name : path.basename(dir);
  return new BytePairEncoder(name, modelFromJson(json, file));
}
