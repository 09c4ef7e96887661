import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { wordTokenize } from '../activities/control/classifier/words';
import { hashedFeatures, FEATURE_DEFAULTS } from '../activities/control/classifier/features';
import { evaluateClassifier, readTweetTopic, saveHashedClassifier, trainHashedClassifier, TRAIN_DEFAULTS } from '../activities/control/classifier/train';
import { loadHashedClassifier, openClassifier, type TopicClassifier } from '../activities/control/classifier/classifier';
import { meanNllFromLogProbs, scoreSamples } from '../activities/control/classifier/score';
import { TWEET_TOPIC_LABELS } from '../activities/control/topic/topics';
import { SHARED_DATA } from './helpers/shared-data';

const DATA = path.join(SHARED_DATA, 'tweet-topic-multilingual-en');

describe('word tokenizer (Stanza stand-in)', () => {
  it('splits punctuation and clitics, keeps <|endoftext|> whole and case', () => {
    expect(wordTokenize("<|endoftext|>The team's coach didn't play, sadly.")).toEqual([
      '<|endoftext|>', 'The', 'team', "'s", 'coach', 'did', "n't", 'play', ',', 'sadly', '.',
    ]);
    expect(wordTokenize('3.5 million e-mails!!')).toEqual(['3.5', 'million', 'e-mails', '!', '!']);
  });
});

describe('hashed features', () => {
  it('are deterministic, unit-norm and sorted', () => {
    const a = hashedFeatures('Sports sports music', FEATURE_DEFAULTS);
    const b = hashedFeatures('Sports sports music', FEATURE_DEFAULTS);
    expect(Array.from(a.index)).toEqual(Array.from(b.index));
    const norm = Array.from(a.value).reduce((s, v) => s + v * v, 0);
    expect(norm).toBeCloseTo(1, 6);
    for (let i = 1; i < a.index.length; i++) expect(a.index[i]).toBeGreaterThan(a.index[i - 1]);
  });
});

describe('TweetTopic classifier (hashed-logreg)', () => {
  const all = [
    ...readTweetTopic(path.join(DATA, 'en_train.jsonl')),
    ...readTweetTopic(path.join(DATA, 'en_validation.jsonl')),
    ...readTweetTopic(path.join(DATA, 'en_test.jsonl')),
  ];
  const options = { ...TRAIN_DEFAULTS, epochs: 4 };
  const classifier = trainHashedClassifier(all.slice(0, 800), options);

  it('reads all 1,000 English tweets with 19 labels', () => {
    expect(all).toHaveLength(1000);
    expect(all[0].targets).toHaveLength(19);
  });
  it('learns: held-out micro-F1 well above an all-negative classifier (0)', async () => {
    const m = await evaluateClassifier(classifier, all.slice(800));
    expect(m.examples).toBe(200);
    expect(m.microF1).toBeGreaterThan(0.3);
  });
  it('is deterministic and round-trips through safetensors', async () => {
    const small = { ...options, epochs: 2 };
    const once = trainHashedClassifier(all.slice(0, 100), small);
    expect(trainHashedClassifier(all.slice(0, 100), small).id).toBe(once.id);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'control-cls-'));
    saveHashedClassifier(dir, classifier);
    const loaded = loadHashedClassifier(dir);
    const texts = ['I love this new album, the band is great', 'Great match today, what a goal'];
    expect(Array.from(await loaded.predict(texts))).toEqual(Array.from(await classifier.predict(texts)));
    expect(loaded.id).toBe(classifier.id);
    fs.rmSync(dir, { recursive: true });
  });
  it('gives topical text a higher probability for its label', async () => {
    const music = TWEET_TOPIC_LABELS.indexOf('music');
    const sports = TWEET_TOPIC_LABELS.indexOf('sports');
    const p = await classifier.predict(['new album and a live concert with the band tonight, great song', 'the game tonight: goal in the final minute, what a win for the team']);
    expect(p[music]).toBeGreaterThan(p[19 + music]);
    expect(p[19 + sports]).toBeGreaterThan(p[sports]);
  });
  it('reports bad input with file and line', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'control-cls-'));
    const file = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(file, '{"id": 1, "text": "x"}\n');
    expect(() => readTweetTopic(file)).toThrow(/bad\.jsonl:1: label "arts_&_culture"/);
    fs.rmSync(dir, { recursive: true });
  });
  it('says where the RoBERTa provider looked when its model directory is missing', () => {
    expect(() => openClassifier('tweet-topic-21-multi', '/nowhere')).toThrow(/no model directory at \/nowhere/);
  });
});

describe('scoring', () => {
  // Closed-form classifier: P(music) = 0.9 if the text mentions "music", 0.4 if "song", else 0.1.
  const fixed: TopicClassifier = {
    id: 'fixed',
    labels: TWEET_TOPIC_LABELS,
    async predict(texts) {
      const out = new Float32Array(texts.length * 19);
      const m = TWEET_TOPIC_LABELS.indexOf('music');
      texts.forEach((t, i) => (out[i * 19 + m] = t.includes('music') ? 0.9 : t.includes('song') ? 0.4 : 0.1));
      return out;
    },
  };
  it('computes success, above_30, Toks-in-vocab, distinct words, NLL and repetition by hand', async () => {
    const texts = ['<|endoftext|>music is music', '<|endoftext|>a song', '<|endoftext|>nothing here'];
    const nll = async (t: string) => (t.includes('song') ? 0.5 : 2);
    const { samples, run } = await scoreSamples(texts, 'music', ['music'], fixed, nll);
    expect(samples.map((s) => s.success)).toEqual([true, false, false]);
    expect(run.semanticSuccess).toBeCloseTo(1 / 3, 12);
    expect(run.above30).toBeCloseTo(2 / 3, 12);
    // words: [eos, music, is, music] [eos, a, song] [eos, nothing, here] → 2 bag words of 10
    expect(run.toksInVocab).toBeCloseTo(2 / 10, 12);
    expect(run.distinctWords).toBe(7);
    expect(run.meanNll).toBeCloseTo(1.5, 12);
    expect(run.repetition).toBeCloseTo(1 / 3, 12);
    expect(run.classifier).toBe('fixed');
  });
  it('mean NLL reads the log-probability of each next token', () => {
    // vocab 2; logProbs rows for positions 0, 1
    const lp = Float32Array.from([Math.log(0.5), Math.log(0.5), Math.log(0.25), Math.log(0.75), 0, 0]);
    expect(meanNllFromLogProbs([0, 1, 0], lp, 2)).toBeCloseTo((Math.log(2) + Math.log(4)) / 2, 6);
  });
});
