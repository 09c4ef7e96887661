/**
 * The RoBERTa topic classifier (provider tweet-topic-21-multi) against transformers: the tiny random
 * RobertaForSequenceClassification of test/fixtures/roberta (made by test/fixtures/make-roberta.py) holds
 * the token ids and logits transformers computed; our tokenizer and native engine must reproduce them.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadRobertaTokenizer } from '../datasets/tokenizer/roberta';
import { RobertaClassifierModel } from '../native/roberta';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../native/safetensors';
import { openClassifier } from '../activities/control/classifier/classifier';
import { loadRobertaTopicClassifier } from '../activities/control/classifier/roberta';
import { topicActivity } from '../activities/control';
import { activityContext, inputArtifact, tempDir } from './helpers/eval-ctx';
import { buildControlFixture, MIRROR } from './helpers/control-fixtures';

const FIXTURE = path.join(__dirname, 'fixtures', 'roberta');
interface Expected {
  maxTokens: number;
  labels: string[];
  texts: string[];
  ids: number[][];
  plainIds: number[][];
  truncatedIds: number[][];
  logits: number[][];
  batchLogits: number[][];
  hiddenText0: number[][];
}
const expected: Expected = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'expected.json'), 'utf8'));
const TOL = 1e-4;

function maxAbsDiff(got: ArrayLike<number>, want: number[][]): number {
  const flat = want.flat();
  expect(got.length).toBe(flat.length);
  let worst = 0;
  for (let i = 0; i < flat.length; i++) worst = Math.max(worst, Math.abs(got[i] - flat[i]));
  return worst;
}

/** A writable copy of the fixture with only the files named (default: config + safetensors + tokenizer). */
function copyFixture(files = ['config.json', 'model.safetensors', 'vocab.json', 'merges.txt', 'tokenizer.json']): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roberta-'));
  for (const f of files) fs.copyFileSync(path.join(FIXTURE, f), path.join(dir, f));
  return dir;
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(c);
  fs.writeFileSync(file, JSON.stringify(c));
}

function editWeights(dir: string, edit: (t: Map<string, TensorToWrite>) => void): void {
  const file = path.join(dir, 'model.safetensors');
  const tensors = new Map<string, TensorToWrite>(readSafetensors(file).tensors);
  edit(tensors);
  writeSafetensors(file, tensors);
}

describe('RoBERTa tokenizer (vocab.json + merges.txt)', () => {
  const tok = loadRobertaTokenizer(FIXTURE);
  it('gives the ids transformers gives, with <s> … </s> and specials matched in the text', () => {
    expected.texts.forEach((text, i) => expect({ text, ids: tok.encode(text) }).toEqual({ text, ids: expected.ids[i] }));
  });
  it('without tokenizer.json, specials strip no whitespace (as transformers from vocab.json + merges.txt)', () => {
    const dir = copyFixture(['vocab.json', 'merges.txt']);
    const plain = loadRobertaTokenizer(dir);
    expected.texts.forEach((text, i) => expect({ text, ids: plain.encode(text) }).toEqual({ text, ids: expected.plainIds[i] }));
    fs.rmSync(dir, { recursive: true });
  });
  it('truncates like truncation=True, max_length', () => {
    expected.texts.forEach((text, i) => expect(tok.encode(text, expected.maxTokens)).toEqual(expected.truncatedIds[i]));
    expect(expected.ids.some((ids) => ids.length > expected.maxTokens)).toBe(true); // the case is exercised
  });
  it('decodes back to the text (whitespace a special token strips aside)', () => {
    for (const text of expected.texts) expect(tok.decode(tok.encode(text))).toBe(`<s>${text.replace(/\s+<mask>/g, '<mask>')}</s>`);
  });
  it('reports broken vocabulary files with file and line', () => {
    const dir = copyFixture(['vocab.json', 'merges.txt']);
    fs.appendFileSync(path.join(dir, 'merges.txt'), 'Ġzz q\n');
    expect(() => loadRobertaTokenizer(dir)).toThrow(/merges\.txt:\d+: merge "Ġzz q" uses "Ġzz", which is not in vocab\.json/);
    const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'vocab.json'), 'utf8'));
    delete vocab['<pad>'];
    fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocab));
    expect(() => loadRobertaTokenizer(dir)).toThrow(/vocab\.json: no token has id 1/);
    fs.rmSync(dir, { recursive: true });
  });
  it('refuses a tokenizer.json that would tokenize differently', () => {
    const dir = copyFixture(['vocab.json', 'merges.txt', 'tokenizer.json']);
    const file = path.join(dir, 'tokenizer.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...json, pre_tokenizer: { ...json.pre_tokenizer, add_prefix_space: true } }));
    expect(() => loadRobertaTokenizer(dir)).toThrow(/tokenizer\.json: add_prefix_space is not supported/);
    fs.writeFileSync(file, JSON.stringify({ ...json, normalizer: { type: 'Lowercase' } }));
    expect(() => loadRobertaTokenizer(dir)).toThrow(/normalizer "Lowercase" is not supported/);
    json.added_tokens[4].id = 7;
    fs.writeFileSync(file, JSON.stringify(json));
    expect(() => loadRobertaTokenizer(dir)).toThrow(/added_tokens\[4\] gives <mask> id 7, vocab\.json 320/);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('RoBERTa classifier on the native engine', () => {
  const model = RobertaClassifierModel.load(FIXTURE);

  it('reads config.json: labels from id2label, positions after the padding offset', () => {
    expect(model.config.labels).toEqual(expected.labels);
    expect(model.config.problemType).toBe('multi_label_classification');
    expect(model.maxTokens).toBe(expected.maxTokens);
    expect(path.basename(model.weightsFile)).toBe('model.safetensors');
  });

  it('matches transformers logits per text within 1e-4', async () => {
    const singles: Float32Array[] = [];
    for (const ids of expected.truncatedIds) singles.push((await model.classify([ids])).logits);
    expect(maxAbsDiff(singles.flatMap((s) => Array.from(s)), expected.logits)).toBeLessThan(TOL);
  });

  it('batches (packed, any lengths) like transformers pads with an attention mask', async () => {
    const { logits } = await model.classify(expected.truncatedIds);
    expect(maxAbsDiff(logits, expected.batchLogits)).toBeLessThan(TOL);
    expect(maxAbsDiff(logits, expected.logits)).toBeLessThan(TOL);
  });

  it('matches the last encoder layer of transformers', async () => {
    const { hidden } = await model.classify([expected.truncatedIds[0]], { hidden: true });
    expect(maxAbsDiff(hidden!, expected.hiddenText0)).toBeLessThan(TOL);
  });

  it('reads pytorch_model.bin (torch zip) to the same numbers; its position_ids buffer is ignored', async () => {
    const dir = copyFixture(['config.json', 'pytorch_model.bin']);
    const bin = RobertaClassifierModel.load(dir);
    expect(path.basename(bin.weightsFile)).toBe('pytorch_model.bin');
    expect(bin.ignoredTensors).toEqual(['roberta.embeddings.position_ids']);
    const a = await bin.classify(expected.truncatedIds);
    const b = await model.classify(expected.truncatedIds);
    expect(Array.from(a.logits)).toEqual(Array.from(b.logits));
    fs.rmSync(dir, { recursive: true });
  });

  it('rejects sequences it cannot embed', async () => {
    await expect(model.classify([new Array(expected.maxTokens + 1).fill(5)])).rejects.toThrow(/longer than the 38 positions/);
    await expect(model.classify([[0, 321, 2]])).rejects.toThrow(/token id 321 at position 1 of sequence 0 is outside the vocabulary/);
    await expect(model.classify([[0, 5], []])).rejects.toThrow(/at least one token/);
  });

  it('frees its weights on dispose; later calls say so', async () => {
    const own = RobertaClassifierModel.load(FIXTURE);
    await own.dispose();
    await expect(own.classify([expected.truncatedIds[0]])).rejects.toThrow(/classifier was released/);
  });

  it('stops when its signal is aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(model.classify(expected.truncatedIds, { signal: ac.signal })).rejects.toThrow();
  });
});

describe('malformed RoBERTa checkpoints', () => {
  const load = (dir: string) => () => RobertaClassifierModel.load(dir);
  let dir: string;
  beforeEach(() => (dir = copyFixture()));
  afterEach(() => fs.rmSync(dir, { recursive: true }));

  it('names a missing tensor', () => {
    editWeights(dir, (t) => t.delete('classifier.out_proj.bias'));
    expect(load(dir)).toThrow(/model\.safetensors: missing tensor "classifier\.out_proj\.bias"/);
  });
  it('names a tensor whose shape disagrees with config.json', () => {
    editConfig(dir, (c) => (c.intermediate_size = 41));
    expect(load(dir)).toThrow(/tensor "roberta\.encoder\.layer\.0\.intermediate\.dense\.weight" has shape \[40,32\], config\.json implies \[41,32\]/);
  });
  it('refuses unexpected tensors (another architecture) and integer weights', () => {
    editWeights(dir, (t) => t.set('lm_head.dense.weight', { dtype: 'F32', shape: [32, 32], data: new Float32Array(1024) }));
    expect(load(dir)).toThrow(/unexpected tensor "lm_head\.dense\.weight"/);
    editWeights(dir, (t) => {
      t.delete('lm_head.dense.weight');
      t.set('classifier.dense.bias', { dtype: 'I32', shape: [32], data: new Int32Array(32) });
    });
    expect(load(dir)).toThrow(/"classifier\.dense\.bias" has dtype I32/);
  });
  it('checks config.json', () => {
    editConfig(dir, (c) => (c.model_type = 'bert'));
    expect(load(dir)).toThrow(/config\.json: model_type is "bert", expected "roberta"/);
    editConfig(dir, (c) => ((c.model_type = 'roberta'), (c.hidden_act = 'relu')));
    expect(load(dir)).toThrow(/hidden_act "relu" is not supported/);
    editConfig(dir, (c) => ((c.hidden_act = 'gelu'), (c.num_attention_heads = 5)));
    expect(load(dir)).toThrow(/hidden_size 32 is not a multiple of num_attention_heads 5/);
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "roberta",');
    expect(load(dir)).toThrow(/config\.json: not valid JSON/);
  });
  it('says when there are no weights, and rejects a truncated file', () => {
    fs.rmSync(path.join(dir, 'model.safetensors'));
    expect(load(dir)).toThrow(/holds neither model\.safetensors nor pytorch_model\.bin/);
    const bytes = fs.readFileSync(path.join(FIXTURE, 'model.safetensors'));
    fs.writeFileSync(path.join(dir, 'model.safetensors'), bytes.subarray(0, bytes.length - 100));
    expect(load(dir)).toThrow(/model\.safetensors/);
  });
});

describe('provider tweet-topic-21-multi', () => {
  it('scores P = σ(logit) per label, records the weights hash, keeps input order', async () => {
    const classifier = openClassifier('tweet-topic-21-multi', FIXTURE);
    const sha = createHash('sha256').update(fs.readFileSync(path.join(FIXTURE, 'model.safetensors'))).digest('hex');
    expect(classifier.id).toBe(`tweet-topic-21-multi:${sha.slice(0, 12)}`);
    expect(classifier.labels).toEqual(expected.labels);
    const probs = await classifier.predict(expected.texts);
    const want = expected.logits.map((row) => row.map((z) => 1 / (1 + Math.exp(-z))));
    expect(maxAbsDiff(probs, want)).toBeLessThan(TOL);
  });
  it('gives the same probabilities whatever the batch size', async () => {
    const one = await loadRobertaTopicClassifier(FIXTURE, { batchSize: 1 }).predict(expected.texts);
    const all = await loadRobertaTopicClassifier(FIXTURE, { batchSize: 64 }).predict(expected.texts);
    expect(maxAbsDiff(one, [Array.from(all)])).toBeLessThan(1e-6);
  });
  it('loads a directory once per process while its files are unchanged', () => {
    const dir = copyFixture();
    const a = loadRobertaTopicClassifier(dir);
    expect(loadRobertaTopicClassifier(dir)).toBe(a);
    editConfig(dir, (c) => (c.id2label = Object.fromEntries(expected.labels.map((l, i) => [i, `${l}!`]))));
    const b = loadRobertaTopicClassifier(dir);
    expect(b).not.toBe(a);
    expect(b.labels).toEqual(expected.labels.map((l) => `${l}!`));
    fs.rmSync(dir, { recursive: true });
  });
  it('checks that the tokenizer belongs to the model', () => {
    const dir = copyFixture();
    editConfig(dir, (c) => (c.vocab_size = 400));
    editWeights(dir, (t) => t.set('roberta.embeddings.word_embeddings.weight', { dtype: 'F32', shape: [400, 32], data: new Float32Array(400 * 32) }));
    expect(() => loadRobertaTopicClassifier(dir)).toThrow(/vocab\.json has 321 tokens but config\.json says vocab_size 400/);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('control.topic scored by tweet-topic-21-multi (the paper profile wiring)', () => {
  it('reads the classifier from classifierDir, records its id, and says where it looked when it is missing', async () => {
    process.env.PIPELINE_DATA_MIRROR = MIRROR;
    process.env.PIPELINE_CACHE_DIR = tempDir('roberta-cache-');
    const fx = await buildControlFixture();
    const inputs = {
      backpack: [inputArtifact('backpack', fx.backpackDir, { arch: 'backpack', size: 'test' })],
      tokenizer: [inputArtifact('tokenizer', fx.tokenizerDir)],
    };
    const ctx = activityContext('topic', inputs);
    const params = topicActivity.params.parse({ topic: 'music', strength: 1, samples: 3, batchSize: 3, totalLength: 8, classifier: 'tweet-topic-21-multi', classifierDir: FIXTURE });
    const summary = (await topicActivity.run(params, ctx)) as Record<string, unknown>;
    const sha = createHash('sha256').update(fs.readFileSync(path.join(FIXTURE, 'model.safetensors'))).digest('hex');
    expect(summary.classifier).toBe(`tweet-topic-21-multi:${sha.slice(0, 12)}`);
    expect(summary.samples).toBe(3);
    const missing = topicActivity.params.parse({ ...params, classifierDir: path.join(os.tmpdir(), 'no-such-classifier') });
    await expect(topicActivity.run(missing, activityContext('topic', inputs))).rejects.toThrow(/no model directory at .*no-such-classifier/);
  });
});
