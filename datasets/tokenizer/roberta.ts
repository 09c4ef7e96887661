/**
 * RoBERTa's tokenizer: GPT-2's byte-level BPE (same pre-tokeniser, same merges) over the model's own
 * `vocab.json` + `merges.txt`, whose ids differ from GPT-2's, with special tokens `<s>` `<pad>` `</s>`
 * `<unk>` `<mask>` (ids read from vocab.json; 0, 1, 2, 3 and the last id in RoBERTa). A text becomes
 * `<s> …tokens… </s>`. Special-token strings inside the text are matched exactly and become their ids,
 * as the Hugging Face tokenizer does with its added tokens; where the directory has a tokenizer.json, its
 * `lstrip`/`rstrip` flags apply (RoBERTa's `<mask>` swallows the whitespace before it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BytePairEncoder, type BpeModel } from './bpe';
import { mappedToBytes } from './byte-map';

export const VOCAB_FILE = 'vocab.json';
export const MERGES_FILE = 'merges.txt';
export const HF_TOKENIZER_FILE = 'tokenizer.json';

/** RoBERTa's special tokens by role (tokenizer_config.json defaults). */
export const ROBERTA_SPECIALS = { bos: '<s>', pad: '<pad>', eos: '</s>', unk: '<unk>', mask: '<mask>' } as const;

export interface RobertaSpecialIds {
  bos: number;
  pad: number;
  eos: number;
  unk: number;
  /** Absent from some vocabularies. */
  mask?: number;
}

/** Whether a special token also consumes the whitespace on its left / right (Hugging Face added-token flags). */
export interface SpecialStrip {
  lstrip: boolean;
  rstrip: boolean;
}

/** Unicode White_Space, the set Hugging Face tokenizers strip (Rust's char::is_whitespace). */
function isWhiteSpace(c: number): boolean {
  return (
    (c >= 9 && c <= 13) || c === 32 || c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000
  );
}

export class RobertaTokenizer {
  readonly vocabSize: number;
  private readonly bpe: BytePairEncoder;
  /** Special-token text → id, longest first (so a longer special wins at the same position). */
  private readonly specialText: [string, number][];
  private readonly specialById = new Map<number, string>();

  constructor(
    readonly name: string,
    model: BpeModel,
    readonly specials: RobertaSpecialIds,
    /** By special-token id; absent = strips nothing. */
    private readonly strip: ReadonlyMap<number, SpecialStrip> = new Map(),
  ) {
    this.bpe = new BytePairEncoder(name, model, { wholeTokenShortcut: false });
    this.vocabSize = model.tokens.length;
    const entries: [string, number][] = [
      [ROBERTA_SPECIALS.bos, specials.bos],
      [ROBERTA_SPECIALS.pad, specials.pad],
      [ROBERTA_SPECIALS.eos, specials.eos],
      [ROBERTA_SPECIALS.unk, specials.unk],
    ];
    if (specials.mask !== undefined) entries.push([ROBERTA_SPECIALS.mask, specials.mask]);
    this.specialText = entries.sort((a, b) => b[0].length - a[0].length);
    for (const [text, id] of entries) this.specialById.set(id, text);
  }

  /**
   * `<s> …text… </s>`. With `maxLength` (counting both specials) the text's tokens are cut from the end,
   * like the Hugging Face tokenizer's `truncation=True, max_length=maxLength`.
   */
  encode(text: string, maxLength?: number): number[] {
    let body = this.encodeBody(text);
    if (maxLength !== undefined) {
      if (!Number.isInteger(maxLength) || maxLength < 2) throw new RangeError(`${this.name}: maxLength must be an integer >= 2, got ${maxLength}`);
      if (body.length > maxLength - 2) body = body.slice(0, maxLength - 2);
    }
    return [this.specials.bos, ...body, this.specials.eos];
  }

  /** The text's tokens without `<s>`/`</s>` around them. */
  encodeBody(text: string): number[] {
    const out: number[] = [];
    let from = 0;
    while (from < text.length) {
      let at = -1;
      let match: [string, number] | undefined;
      for (const entry of this.specialText) {
        const i = text.indexOf(entry[0], from);
        if (i >= 0 && (at < 0 || i < at)) {
          at = i;
          match = entry;
        }
      }
      if (!match) break;
      const flags = this.strip.get(match[1]);
      let end = at;
      if (flags?.lstrip) while (end > from && isWhiteSpace(text.charCodeAt(end - 1))) end--;
      this.bpe.encodeSegment(text, from, end, out);
      out.push(match[1]);
      from = at + match[0].length;
      if (flags?.rstrip) while (from < text.length && isWhiteSpace(text.charCodeAt(from))) from++;
    }
    this.bpe.encodeSegment(text, from, text.length, out);
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    let text = '';
    let run: number[] = [];
    const flush = () => {
      if (run.length) text += this.bpe.decode(run);
      run = [];
    };
    for (let k = 0; k < ids.length; k++) {
      const special = this.specialById.get(ids[k]);
      if (special !== undefined) {
        flush();
        text += special;
      } else run.push(ids[k]);
    }
    flush();
    return text;
  }
}

/**
 * Builds the BPE model from vocab.json text (mapped token → id, ids 0..n-1 without holes) and merges.txt
 * text ("left right" per line after an optional `#version` line). `where` names the files in errors.
 */
export function parseVocabMerges(vocabText: string, mergesText: string, where: { vocab: string; merges: string }): { model: BpeModel; specials: RobertaSpecialIds } {
  let vocab: unknown;
  try {
    vocab = JSON.parse(vocabText);
  } catch (e) {
    throw new Error(`${where.vocab}: not valid JSON (${(e as Error).message})`);
  }
  if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) throw new Error(`${where.vocab}: expected an object of token → id`);
  const specialNames = new Set<string>(Object.values(ROBERTA_SPECIALS));
  const tokens: (Uint8Array | undefined)[] = [];
  const idOf = new Map<string, number>();
  for (const [token, id] of Object.entries(vocab as Record<string, unknown>)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 10_000_000) throw new Error(`${where.vocab}: token "${token}" has invalid id ${JSON.stringify(id)}`);
    if (tokens[id] !== undefined) throw new Error(`${where.vocab}: id ${id} is used twice`);
    // Special tokens never come out of the BPE: an empty byte string keeps them out of its tables.
    tokens[id] = specialNames.has(token) ? new Uint8Array(0) : mappedToBytes(token, `${where.vocab}: token ${id}`);
    idOf.set(token, id);
  }
  for (let id = 0; id < tokens.length; id++) if (tokens[id] === undefined) throw new Error(`${where.vocab}: no token has id ${id} (ids must be 0..${tokens.length - 1})`);
  const special = (role: keyof typeof ROBERTA_SPECIALS): number | undefined => idOf.get(ROBERTA_SPECIALS[role]);
  const required = (role: 'bos' | 'pad' | 'eos' | 'unk'): number => {
    const id = special(role);
    if (id === undefined) throw new Error(`${where.vocab}: no ${ROBERTA_SPECIALS[role]} token (a RoBERTa vocabulary has <s>, <pad>, </s>, <unk>)`);
    return id;
  };
  const specials: RobertaSpecialIds = { bos: required('bos'), pad: required('pad'), eos: required('eos'), unk: required('unk') };
  const mask = special('mask');
  if (mask !== undefined) specials.mask = mask;

  const lines = mergesText.split('\n');
  const merges: number[] = [];
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    const parts = line.split(' ');
    if (parts.length !== 2 || !parts[0] || !parts[1]) throw new Error(`${where.merges}:${i + 1}: expected "left right", got ${JSON.stringify(line)}`);
    const [a, b] = parts;
    const left = idOf.get(a);
    const right = idOf.get(b);
    const merged = idOf.get(a + b);
    if (left === undefined || right === undefined || merged === undefined) {
      const missing = [a, b, a + b].find((t) => !idOf.has(t));
      throw new Error(`${where.merges}:${i + 1}: merge "${a} ${b}" uses "${missing}", which is not in ${path.basename(where.vocab)}`);
    }
    merges.push(left, right, merged);
  });
  return { model: { tokens: tokens as Uint8Array[], merges: Uint32Array.from(merges), eosId: specials.eos }, specials };
}

/**
 * The lstrip/rstrip flags of the special tokens in a tokenizer.json's `added_tokens` (its vocabulary and
 * merges are the same as vocab.json + merges.txt and are not read). Ids must agree with vocab.json, and
 * anything that would tokenize differently from RoBERTa's pipeline (a normalizer, a prefix space, another
 * pre-tokenizer, merge skipping) is refused rather than ignored.
 */
export function parseSpecialStrip(text: string, where: string, specials: RobertaSpecialIds): Map<number, SpecialStrip> {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const unsupported = (what: string) => new Error(`${where}: ${what} is not supported (RoBERTa's byte-level BPE only)`);
  if (json?.normalizer != null) throw unsupported(`normalizer ${JSON.stringify((json.normalizer as { type?: unknown }).type)}`);
  const pre = json?.pre_tokenizer as Record<string, unknown> | null | undefined;
  if (pre != null && (pre.type !== 'ByteLevel' || pre.use_regex === false)) throw unsupported(`pre_tokenizer ${JSON.stringify(pre.type)} without GPT-2's regex`);
  if (pre?.add_prefix_space === true) throw unsupported('add_prefix_space');
  const model = json?.model as Record<string, unknown> | undefined;
  if (model && (model.type !== 'BPE' || model.ignore_merges === true || (model.dropout != null && model.dropout !== 0))) throw unsupported('this BPE model (type, ignore_merges or dropout)');
  const added = json?.added_tokens ?? [];
  if (!Array.isArray(added)) throw new Error(`${where}: "added_tokens" must be a list`);
  const idByText = new Map<string, number | undefined>(
    (Object.keys(ROBERTA_SPECIALS) as (keyof typeof ROBERTA_SPECIALS)[]).map((role) => [ROBERTA_SPECIALS[role], specials[role]]),
  );
  const out = new Map<number, SpecialStrip>();
  added.forEach((t: unknown, i) => {
    const { id, content, lstrip, rstrip } = (t ?? {}) as Record<string, unknown>;
    if (typeof content !== 'string' || !idByText.has(content)) return; // other added tokens: not part of RoBERTa's set
    if (id !== idByText.get(content)) throw new Error(`${where}: added_tokens[${i}] gives ${content} id ${JSON.stringify(id)}, vocab.json ${idByText.get(content)}`);
    if ((t as Record<string, unknown>).single_word === true) throw unsupported(`single_word on ${content}`);
    out.set(id as number, { lstrip: lstrip === true, rstrip: rstrip === true });
  });
  return out;
}

/** Loads `vocab.json` + `merges.txt` (and the special tokens' flags of tokenizer.json, if present) from a model directory. */
export function loadRobertaTokenizer(dir: string): RobertaTokenizer {
  const vocab = path.join(dir, VOCAB_FILE);
  const merges = path.join(dir, MERGES_FILE);
  for (const f of [vocab, merges]) if (!fs.existsSync(f)) throw new Error(`RoBERTa tokenizer ${dir}: ${path.basename(f)} is missing`);
  const { model, specials } = parseVocabMerges(fs.readFileSync(vocab, 'utf8'), fs.readFileSync(merges, 'utf8'), { vocab, merges });
  const hfFile = path.join(dir, HF_TOKENIZER_FILE);
  const strip = fs.existsSync(hfFile) ? parseSpecialStrip(fs.readFileSync(hfFile, 'utf8'), hfFile, specials) : new Map<number, SpecialStrip>();
  return new RobertaTokenizer(path.basename(path.resolve(dir)), model, specials, strip);
}
