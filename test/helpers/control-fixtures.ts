/**
 * Real artifacts for the control activity tests: a byte-level BPE trained on the TweetTopic texts of
 * the data mirror, and tiny randomly initialised Backpack and GPT-2 checkpoints saved by the native
 * engine (config.json + model.safetensors), each with the tokenizer beside it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { renderTokenizerJson, trainTokenizer } from '../../datasets/tokenizer';
import { createModel, padVocab } from '../../native/index';
import { tempDir } from './eval-ctx';
import { SHARED_DATA } from './shared-data';

export const MIRROR = SHARED_DATA;

export interface ControlFixture {
  tokenizerDir: string;
  backpackDir: string;
  gpt2Dir: string;
  vocab: number;
}

export async function buildControlFixture(vocabSize = 700): Promise<ControlFixture> {
  const root = tempDir('control-fixture-');
  const texts: string[] = [];
  for (const split of ['train', 'test']) {
    for (const line of fs.readFileSync(path.join(MIRROR, 'tweet-topic-multilingual-en', `en_${split}.jsonl`), 'utf8').split('\n')) {
      if (line.trim()) texts.push((JSON.parse(line) as { text: string }).text);
    }
  }
  // Make sure the words the experiments need exist as tokens: pronouns, a profession, edit words, bag words.
  texts.push(' he she he she the nurse the driver the teacher game team music sports family food life '.repeat(40));
  const { tokenizer, result } = trainTokenizer('control-test', texts, { vocabSize });
  const tokenizerDir = path.join(root, 'tokenizer');
  fs.mkdirSync(tokenizerDir);
  fs.writeFileSync(path.join(tokenizerDir, 'tokenizer.json'), renderTokenizerJson(result.model, { name: 'control-test' }));
  const real = tokenizer.vocabSize;
  const common = {
    vocabSize: padVocab(real),
    realVocabSize: real,
    nPositions: 128,
    nEmbd: 16,
    nLayer: 1,
    nHead: 2,
    scaleAttnByInverseLayerIdx: true,
    layerNormEpsilon: 1e-5,
  };
  const backpack = createModel({ ...common, arch: 'backpack', numSenses: 4, senseIntermediateScale: 1 }, 11);
  const gpt2 = createModel({ ...common, arch: 'gpt2' }, 12);
  const backpackDir = path.join(root, 'backpack');
  const gpt2Dir = path.join(root, 'gpt2');
  await backpack.save(backpackDir);
  await gpt2.save(gpt2Dir);
  backpack.dispose();
  gpt2.dispose();
  return { tokenizerDir, backpackDir, gpt2Dir, vocab: real };
}
