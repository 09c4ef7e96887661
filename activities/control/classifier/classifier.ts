/**
 * Multi-label topic classifiers behind one interface (PAPER.md §6.3 "topic probabilities"):
 * P(label) = σ(logit_label) independently per label over the 19 TweetTopic labels.
 *
 * Providers:
 * - `hashed-logreg`: trained by the pipeline on TweetTopic (see ./train.ts); the tiny profile's scorer.
 * - `tweet-topic-21-multi`: the paper's RoBERTa-base classifier (cardiffnlp/tweet-topic-21-multi) run by
 *   the native engine from its Hugging Face directory (see ./roberta.ts); the paper profile's scorer.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readSafetensors } from '../../../native/safetensors';
import { TWEET_TOPIC_LABELS } from '../topic/topics';
import { hashedFeatures, type FeatureConfig } from './features';
import { loadRobertaTopicClassifier } from './roberta';

export interface TopicClassifier {
  /** Recorded with every score, e.g. "hashed-logreg:<sha-prefix>". */
  readonly id: string;
  readonly labels: readonly string[];
  /** [texts.length][labels.length] independent label probabilities. */
  predict(texts: string[]): Promise<Float32Array>;
}

export type ClassifierProvider = 'hashed-logreg' | 'tweet-topic-21-multi';

export const CLASSIFIER_WEIGHTS_FILE = 'classifier.safetensors';
export const CLASSIFIER_CONFIG_FILE = 'classifier.json';

export interface HashedClassifierConfig {
  provider: 'hashed-logreg';
  labels: string[];
  features: FeatureConfig;
  /** Content hash of the weights, part of `id`. */
  weightsSha256: string;
}

/** Logistic regression on hashed n-gram features; weights [labels][buckets] + bias [labels]. */
export class HashedLogRegClassifier implements TopicClassifier {
  readonly id: string;
  readonly labels: readonly string[];

  constructor(
    readonly config: HashedClassifierConfig,
    readonly weights: Float32Array,
    readonly bias: Float32Array,
  ) {
    this.labels = config.labels;
    this.id = `hashed-logreg:${config.weightsSha256.slice(0, 12)}`;
    if (weights.length !== config.labels.length * config.features.buckets) {
      throw new Error(`classifier: weights have ${weights.length} values, expected ${config.labels.length}×${config.features.buckets}`);
    }
  }

  logits(text: string): Float64Array {
    const feats = hashedFeatures(text, this.config.features);
    const L = this.labels.length;
    const B = this.config.features.buckets;
    const out = new Float64Array(L);
    for (let l = 0; l < L; l++) {
      let s = this.bias[l];
      for (let f = 0; f < feats.index.length; f++) s += this.weights[l * B + feats.index[f]] * feats.value[f];
      out[l] = s;
    }
    return out;
  }

  async predict(texts: string[]): Promise<Float32Array> {
    const L = this.labels.length;
    const out = new Float32Array(texts.length * L);
    texts.forEach((t, i) => {
      const z = this.logits(t);
      for (let l = 0; l < L; l++) out[i * L + l] = 1 / (1 + Math.exp(-z[l]));
    });
    return out;
  }
}

export function loadHashedClassifier(dir: string): HashedLogRegClassifier {
  const configPath = path.join(dir, CLASSIFIER_CONFIG_FILE);
  if (!fs.existsSync(configPath)) throw new Error(`${dir}: not a topic classifier artifact (missing ${CLASSIFIER_CONFIG_FILE})`);
  const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as HashedClassifierConfig;
  if (config.provider !== 'hashed-logreg') throw new Error(`${configPath}: provider "${config.provider}" is not hashed-logreg`);
  const file = readSafetensors(path.join(dir, CLASSIFIER_WEIGHTS_FILE));
  const w = file.tensors.get('weight');
  const b = file.tensors.get('bias');
  if (!w || !b) throw new Error(`${dir}/${CLASSIFIER_WEIGHTS_FILE}: needs tensors "weight" and "bias"`);
  return new HashedLogRegClassifier(config, Float32Array.from(w.data), Float32Array.from(b.data));
}

/**
 * Opens a classifier by provider; `location` is the artifact directory (hashed-logreg) or the Hugging Face
 * model directory (tweet-topic-21-multi; empty = the default location, see defaultTopicClassifierDir).
 */
export function openClassifier(provider: ClassifierProvider, location: string): TopicClassifier {
  if (provider === 'hashed-logreg') return loadHashedClassifier(location);
  if (provider === 'tweet-topic-21-multi') return loadRobertaTopicClassifier(location || undefined);
  throw new Error(`unknown classifier provider "${provider as string}" (hashed-logreg or tweet-topic-21-multi)`);
}

export function labelIndex(classifier: TopicClassifier, label: string): number {
  const i = classifier.labels.indexOf(label);
  if (i < 0) throw new Error(`classifier ${classifier.id} has no label "${label}"`);
  return i;
}

export { TWEET_TOPIC_LABELS };
