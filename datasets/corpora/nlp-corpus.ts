/**
 * The `nlp-corpus` npm package: 100 JSON files of varied web-like English sentences. Consecutive
 * sentences are grouped into documents of `sentencesPerDocument` (the package has no document
 * boundaries of its own), joined by a space.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Corpus } from './types';

export function nlpCorpus(sentencesPerDocument = 8): Corpus {
  if (!Number.isInteger(sentencesPerDocument) || sentencesPerDocument < 1) throw new Error(`sentencesPerDocument must be a positive integer, got ${sentencesPerDocument}`);
  // The package's exports map hides package.json; its entry point is src/server/index.js.
  const root = path.resolve(path.dirname(require.resolve('nlp-corpus')), '..', '..');
  const dir = path.join(root, 'builds');
  const files = fs.readdirSync(dir).filter((f) => /^doc-\d+\.json$/.test(f)).sort((a, b) => parseInt(a.slice(4), 10) - parseInt(b.slice(4), 10));
  if (files.length === 0) throw new Error(`nlp-corpus at ${root}: no builds/doc-N.json files`);
  return {
    name: 'nlp-corpus',
    async *documents(signal?: AbortSignal) {
      for (const f of files) {
        if (signal?.aborted) throw new Error('cancelled');
        const sentences: unknown = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
        if (!Array.isArray(sentences)) throw new Error(`${path.join(dir, f)}: expected a JSON array of sentences`);
        for (let i = 0; i < sentences.length; i += sentencesPerDocument) {
          yield sentences.slice(i, i + sentencesPerDocument).map(String).join(' ');
        }
      }
    },
    describe: () => ({ source: 'npm nlp-corpus', version: JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version, files: files.length, sentencesPerDocument }),
  };
}
