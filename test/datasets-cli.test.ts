/** `pipeline tokenize` through the real CLI (compiled dist/, as users run it). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from './helpers/cli';
import { writeTokenizerArtifact, trainTokenizer } from '../datasets/tokenizer';

test('--text with --json prints ids and pieces; literal <|endoftext|> is 50256 unless --ordinary', () => {
  const r = runCli(['tokenize', '--json', '--text', 'hello\n\nhello<|endoftext|>']);
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual({ ids: [31373, 198, 198, 31373, 50256], pieces: ['hello', '\n', '\n', 'hello', '<|endoftext|>'] });
  const o = runCli(['tokenize', '--json', '--ordinary', '--text', '<|endoftext|>']);
  expect(JSON.parse(o.stdout).ids).not.toContain(50256);
});

test('human output lists id and piece per line', () => {
  const r = runCli(['tokenize', '--text', ' MacBook']);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe('28084  " MacBook"\n1 tokens (gpt2)\n');
});

test('--file tokenizes the exact bytes (BOM and final newline kept); non-UTF-8 is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-'));
  const file = path.join(dir, 'in.txt');
  fs.writeFileSync(file, '\ufeffline one\nline two\n');
  const r = runCli(['tokenize', '--json', '--file', file]);
  expect(r.code).toBe(0);
  const { ids } = JSON.parse(r.stdout);
  const back = runCli(['tokenize', '--json', '--decode', ids.join(',')]);
  expect(JSON.parse(back.stdout).text).toBe('\ufeffline one\nline two\n');
  fs.writeFileSync(file, Buffer.from([0x61, 0xff, 0x62]));
  const bad = runCli(['tokenize', '--file', file]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/in\.txt: not valid UTF-8 at byte 1 \(0xff\)/);
});

test('--decode goes the other way; bad ids and bad usage exit 2', () => {
  const r = runCli(['tokenize', '--decode', '31373,198,198,31373']);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe('hello\n\nhello');
  expect(runCli(['tokenize', '--decode', '1,x']).code).toBe(2);
  expect(runCli(['tokenize', '--decode', '50257']).stderr).toMatch(/not a token id of gpt2/);
  expect(runCli(['tokenize']).code).toBe(2);
  expect(runCli(['tokenize', '--text', 'a', '--decode', '1']).code).toBe(2);
  expect(runCli(['tokenize', '--tokenizer', '/no/such', '--text', 'a']).stderr).toMatch(/expected "gpt2" or a tokenizer artifact directory/);
});

test('a trained tokenizer artifact directory works too', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clitok-'));
  const { result } = trainTokenizer('tiny-300', ['the cat sat on the mat. '.repeat(50), 'the dog sat on the log. '.repeat(50)], { vocabSize: 300 });
  writeTokenizerArtifact(dir, result.model, { name: 'tiny-300' });
  const r = runCli(['tokenize', '--json', '--tokenizer', dir, '--text', 'the cat sat<|endoftext|>']);
  expect(r.code).toBe(0);
  const { ids, pieces } = JSON.parse(r.stdout);
  expect(ids.at(-1)).toBe(result.model.eosId); // fewer merges than asked: the tiny text runs out of pairs
  expect(pieces.join('')).toBe('the cat sat<|endoftext|>');
  expect(ids.length).toBeLessThan(6);
});
