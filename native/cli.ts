/**
 * `pipeline model logits|senses|alpha|generate <checkpoint> ...`: look inside a checkpoint from the shell.
 * Inputs are token ids (--tokens 1,2,3) or text (--text, encoded with --tokenizer: default the checkpoint's own
 * tokenizer.json when it has one, else gpt2). With --json each prints exactly one JSON document.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel, type NativeModel } from './index';
import { loadTokenizer, type Tokenizer } from '../datasets/tokenizer';

type Values = Record<string, string | boolean | undefined>;

const COMMON = {
  tokens: { type: 'string' as const },
  text: { type: 'string' as const },
  tokenizer: { type: 'string' as const },
  threads: { type: 'string' as const },
  json: { type: 'boolean' as const, default: false },
  help: { type: 'boolean' as const, short: 'h', default: false },
};

const USAGE: Record<string, string> = {
  logits: 'usage: pipeline model logits <checkpoint> (--tokens 1,2,3 | --text T) [--tokenizer gpt2|<dir>] [--top 5] [--json]',
  senses: 'usage: pipeline model senses <checkpoint> (--tokens 5,6 | --word science) [--top 10] [--tokenizer ...] [--json]',
  alpha: 'usage: pipeline model alpha <checkpoint> (--tokens 1,2,3 | --text T) [--tokenizer ...] [--json]',
  generate: 'usage: pipeline model generate <checkpoint> (--tokens 1,2,3 | --text T) [--max-new-tokens 20] [--greedy | --temperature 1 --top-k K --top-p P] [--seed 0] [--samples 1] [--tokenizer ...] [--json]',
};

class UsageError extends Error {}

function tokenizerSpec(ckpt: string, given: string | undefined): string {
  if (given) return given;
  return fs.existsSync(path.join(ckpt, 'tokenizer.json')) ? ckpt : 'gpt2';
}

function parseIds(s: string, vocab: number): Int32Array {
  const parts = s.split(',').map((x) => x.trim()).filter((x) => x !== '');
  if (parts.length === 0) throw new UsageError('--tokens: no ids given');
  const ids = parts.map((p) => {
    if (!/^\d+$/.test(p) || Number(p) >= vocab) throw new UsageError(`--tokens: "${p}" is not a token id of this model (0..${vocab - 1})`);
    return Number(p);
  });
  return Int32Array.from(ids);
}

async function inputIds(v: Values, model: NativeModel, ckpt: string, tok: () => Promise<Tokenizer>): Promise<Int32Array> {
  if ((v.tokens === undefined) === (v.text === undefined)) throw new UsageError('give exactly one of --tokens and --text');
  if (v.tokens !== undefined) return parseIds(v.tokens as string, model.config.realVocabSize);
  const ids = (await tok()).encode(v.text as string);
  if (ids.length === 0) throw new UsageError('--text encodes to no tokens');
  return Int32Array.from(ids);
}

function checkLength(ids: Int32Array, model: NativeModel): void {
  if (ids.length > model.config.nPositions) throw new UsageError(`${ids.length} tokens exceed the model's ${model.config.nPositions} positions`);
}

function piece(tok: Tokenizer | undefined, id: number): string {
  if (!tok) return String(id);
  try {
    return tok.decodePiece ? tok.decodePiece(id) : tok.decode([id]);
  } catch {
    return String(id);
  }
}

async function logits(v: Values, model: NativeModel, ckpt: string, tok: () => Promise<Tokenizer>) {
  const ids = await inputIds(v, model, ckpt, tok);
  checkLength(ids, model);
  const { vocabSize: V, realVocabSize: R } = model.config;
  const targets = Int32Array.from(ids, (_, i) => (i + 1 < ids.length ? ids[i + 1] : -1));
  const out = await model.forward(ids, { batch: 1, seq: ids.length, logits: true, targets });
  const rows = Array.from({ length: ids.length }, (_, i) => Array.from(out.logits!.subarray(i * V, i * V + R)));
  const loss = ids.length > 1 ? out.loss! : null;
  if (v.json) return { tokens: Array.from(ids), logits: rows, loss };
  const top = Number(v.top ?? 5);
  const t = v.text !== undefined || v.tokenizer ? await tok() : undefined;
  const lines = [`mean next-token loss: ${loss === null ? 'n/a (one token)' : loss.toFixed(4)}`];
  rows.forEach((row, i) => {
    const best = row.map((x, id) => [x, id] as const).sort((a, b) => b[0] - a[0]).slice(0, top);
    lines.push(`${i} ${JSON.stringify(piece(t, ids[i]))} -> ${best.map(([x, id]) => `${JSON.stringify(piece(t, id))}(${x.toFixed(2)})`).join(' ')}`);
  });
  return lines.join('\n');
}

async function senses(v: Values, model: NativeModel, ckpt: string, tok: () => Promise<Tokenizer>) {
  if (model.config.arch !== 'backpack') throw new UsageError('sense vectors exist only for Backpack checkpoints');
  const { numSenses: k = 0, nEmbd: d, realVocabSize: R } = model.config;
  if (v.word !== undefined) {
    if (v.tokens !== undefined) throw new UsageError('give either --tokens or --word');
    const t = await tok();
    const ids = t.encode(` ${v.word as string}`);
    if (ids.length === 0) throw new UsageError('--word encodes to no tokens');
    const id = ids[0];
    const c = await model.senseVectors(Int32Array.from([id]));
    const E = model.outputEmbeddings();
    const top = Number(v.top ?? 10);
    const table = [];
    for (let l = 0; l < k; l++) {
      const scores = new Float64Array(R);
      for (let u = 0; u < R; u++) {
        let s = 0;
        for (let e = 0; e < d; e++) s += E[u * d + e] * c[l * d + e];
        scores[u] = s;
      }
      const order = Array.from({ length: R }, (_, u) => u).sort((a, b) => scores[b] - scores[a]);
      const item = (u: number) => ({ id: u, piece: piece(t, u), score: scores[u] });
      table.push({ sense: l, top: order.slice(0, top).map(item), bottom: order.slice(-top).reverse().map(item) });
    }
    const word = { word: v.word, token: id, piece: piece(t, id), multiToken: ids.length > 1, senses: table };
    if (v.json) return word;
    const lines = [`senses of ${JSON.stringify(word.piece)} (id ${id})${ids.length > 1 ? ` — first of ${ids.length} tokens` : ''}`];
    for (const s of table) lines.push(`sense ${s.sense}: + ${s.top.map((x) => x.piece).join(' ')}   − ${s.bottom.map((x) => x.piece).join(' ')}`);
    return lines.join('\n');
  }
  if (v.tokens === undefined) throw new UsageError('give --tokens or --word');
  const ids = parseIds(v.tokens as string, model.config.vocabSize);
  const c = await model.senseVectors(ids);
  const vectors = Array.from(ids, (_, i) => Array.from({ length: k }, (_, l) => Array.from(c.subarray((i * k + l) * d, (i * k + l + 1) * d))));
  if (v.json) return { tokens: Array.from(ids), senses: vectors };
  return vectors.map((s, i) => `token ${ids[i]}: ${k} senses × ${d} dims; norms ${s.map((x) => Math.hypot(...x).toFixed(3)).join(' ')}`).join('\n');
}

async function alpha(v: Values, model: NativeModel, ckpt: string, tok: () => Promise<Tokenizer>) {
  if (model.config.arch !== 'backpack') throw new UsageError('contextualization weights exist only for Backpack checkpoints');
  const ids = await inputIds(v, model, ckpt, tok);
  checkLength(ids, model);
  const T = ids.length, k = model.config.numSenses!;
  const { alpha: a } = await model.forward(ids, { batch: 1, seq: T, alpha: true });
  const out = Array.from({ length: k }, (_, l) => Array.from({ length: T }, (_, i) => Array.from(a!.subarray((l * T + i) * T, (l * T + i + 1) * T))));
  if (v.json) return { tokens: Array.from(ids), alpha: out };
  return out.map((m, l) => `sense ${l}:\n` + m.map((row) => '  ' + row.map((x) => x.toFixed(3)).join(' ')).join('\n')).join('\n');
}

async function generate(v: Values, model: NativeModel, ckpt: string, tok: () => Promise<Tokenizer>) {
  const ids = await inputIds(v, model, ckpt, tok);
  const num = (name: string, def?: number) => {
    if (v[name] === undefined) return def;
    const x = Number(v[name]);
    if (!Number.isFinite(x)) throw new UsageError(`--${name} must be a number`);
    return x;
  };
  const maxNewTokens = num('max-new-tokens', 20)!;
  const samples = num('samples', 1)!;
  if (!Number.isInteger(samples) || samples < 1) throw new UsageError('--samples must be a positive integer');
  if (ids.length + maxNewTokens > model.config.nPositions) throw new UsageError(`prompt + --max-new-tokens exceeds the model's ${model.config.nPositions} positions`);
  const out = await model.generate({
    prompt: Array.from({ length: samples }, () => ids),
    maxNewTokens,
    greedy: v.greedy === true,
    temperature: num('temperature'),
    topK: num('top-k'),
    topP: num('top-p'),
    seed: num('seed', 0)!,
  });
  const rows = out.map((o) => Array.from(o));
  const t = v.text !== undefined || v.tokenizer || fs.existsSync(path.join(ckpt, 'tokenizer.json')) ? await tok().catch(() => undefined) : undefined;
  if (v.json) return { prompt: Array.from(ids), tokens: rows, ...(t ? { text: rows.map((r) => t.decode(r)) } : {}) };
  return rows.map((r, i) => `sample ${i}: ${t ? JSON.stringify(t.decode(r)) : r.join(',')}`).join('\n');
}

const HANDLERS = { logits, senses, alpha, generate };
const EXTRA: Record<string, Record<string, { type: 'string' | 'boolean'; default?: string | boolean }>> = {
  logits: { top: { type: 'string' } },
  senses: { word: { type: 'string' }, top: { type: 'string' } },
  alpha: {},
  generate: { 'max-new-tokens': { type: 'string' }, greedy: { type: 'boolean', default: false }, temperature: { type: 'string' }, 'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, samples: { type: 'string' } },
};

export function forCommand(name: keyof typeof HANDLERS) {
  return {
    async run(argv: string[]): Promise<number> {
      const label = `pipeline model ${name}`;
      let values: Values, positionals: string[];
      try {
        ({ values, positionals } = parseArgs({ args: argv, options: { ...COMMON, ...EXTRA[name] }, allowPositionals: true, strict: true }) as { values: Values; positionals: string[] });
      } catch (e) {
        process.stderr.write(`${label}: ${(e as Error).message}\n${USAGE[name]}\n`);
        return 2;
      }
      if (values.help) {
        process.stdout.write(`${USAGE[name]}\n`);
        return 0;
      }
      if (positionals.length !== 1) {
        process.stderr.write(`${label}: expected one checkpoint directory\n${USAGE[name]}\n`);
        return 2;
      }
      const ckpt = positionals[0];
      let model: NativeModel;
      try {
        model = await loadModel(ckpt, values.threads !== undefined ? { threads: Number(values.threads) } : {});
      } catch (e) {
        process.stderr.write(`${label}: ${(e as Error).message}\n`);
        return 2;
      }
      let tokenizer: Promise<Tokenizer> | undefined;
      const tok = () => (tokenizer ??= loadTokenizer(tokenizerSpec(ckpt, values.tokenizer as string | undefined)));
      try {
        const result = await HANDLERS[name](values, model, ckpt, tok);
        process.stdout.write((typeof result === 'string' ? result : JSON.stringify(result)) + '\n');
        return 0;
      } catch (e) {
        process.stderr.write(`${label}: ${(e as Error).message}\n${e instanceof UsageError ? USAGE[name] + '\n' : ''}`);
        return e instanceof UsageError ? 2 : 1;
      } finally {
        model.dispose();
      }
    },
  };
}
