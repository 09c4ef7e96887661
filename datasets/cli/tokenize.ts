/**
 * `pipeline tokenize [--tokenizer gpt2|<dir>] (--text T | --file F) [--ordinary] [--json]`
 * `pipeline tokenize [--tokenizer ...] --decode 1,2,3 [--json]`
 * Shows token ids and pieces. --file tokenizes the file's bytes exactly (nothing added or stripped,
 * a BOM included); the bytes must be UTF-8. --ordinary treats a literal <|endoftext|> as text.
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { decodeUtf8Strict } from '../corpora/utf8';
import { loadTokenizer } from '../tokenizer';

const USAGE = `usage: pipeline tokenize [--tokenizer gpt2|<dir>] (--text T | --file F) [--ordinary] [--json]
       pipeline tokenize [--tokenizer gpt2|<dir>] --decode 1,2,3 [--json]`;

export async function run(argv: string[]): Promise<number> {
  let values: { tokenizer?: string; text?: string; file?: string; decode?: string; json?: boolean; ordinary?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        tokenizer: { type: 'string', default: 'gpt2' },
        text: { type: 'string' },
        file: { type: 'string' },
        decode: { type: 'string' },
        ordinary: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    process.stderr.write(`pipeline tokenize: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const inputs = [values.text !== undefined, values.file !== undefined, values.decode !== undefined].filter(Boolean).length;
  if (inputs !== 1) {
    process.stderr.write(`pipeline tokenize: give exactly one of --text, --file, --decode\n${USAGE}\n`);
    return 2;
  }
  let tokenizer;
  try {
    tokenizer = await loadTokenizer(values.tokenizer!);
  } catch (e) {
    process.stderr.write(`pipeline tokenize: ${(e as Error).message}\n`);
    return 2;
  }

  if (values.decode !== undefined) {
    const parts = values.decode.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const ids = parts.map(Number);
    const bad = parts.find((p, i) => !/^\d+$/.test(p) || ids[i] >= tokenizer.vocabSize);
    if (bad !== undefined) {
      process.stderr.write(`pipeline tokenize: --decode: "${bad}" is not a token id of ${tokenizer.name} (0..${tokenizer.vocabSize - 1})\n`);
      return 2;
    }
    const text = tokenizer.decode(ids);
    process.stdout.write(values.json ? `${JSON.stringify({ text })}\n` : text);
    return 0;
  }

  let text: string;
  if (values.file !== undefined) {
    try {
      text = decodeUtf8Strict(fs.readFileSync(values.file), values.file);
    } catch (e) {
      process.stderr.write(`pipeline tokenize: ${(e as Error).message}\n`);
      return 1;
    }
  } else {
    text = values.text!;
  }
  const ids = values.ordinary ? tokenizer.encodeOrdinary(text) : tokenizer.encode(text);
  const pieces = ids.map((id) => (tokenizer.decodePiece ? tokenizer.decodePiece(id) : tokenizer.decode([id])));
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ids, pieces })}\n`);
  } else {
    const width = String(tokenizer.vocabSize).length;
    for (let i = 0; i < ids.length; i++) process.stdout.write(`${String(ids[i]).padStart(width)}  ${JSON.stringify(pieces[i])}\n`);
    process.stdout.write(`${ids.length} tokens (${tokenizer.name})\n`);
  }
  return 0;
}
