/**
 * Trains the `hashed-logreg` topic classifier on TweetTopic (multi-label, 19 labels): one logistic
 * regression per label over shared hashed features, AdaGrad with L2, a seeded example order, so the
 * same data and seed give bit-identical weights.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { writeSafetensors } from '../../../native/safetensors';
import { Rng, deriveSeed } from '../util/rng';
import { writeFileAtomicSync } from '../mauve/npy';
import { TWEET_TOPIC_LABELS } from '../topic/topics';
import {
  CLASSIFIER_CONFIG_FILE,
  CLASSIFIER_WEIGHTS_FILE,
  HashedLogRegClassifier,
  type HashedClassifierConfig,
} from './classifier';
import { FEATURE_DEFAULTS, hashedFeatures, type FeatureConfig, type SparseVector } from './features';

export interface LabelledText {
  id: string;
  text: string;
  /** 0/1 per label, in `labels` order. */
  targets: Uint8Array;
}

/** Reads a TweetTopic JSON-lines file (fields: id, text, one 0/1 field per label). */
export function readTweetTopic(file: string, labels: readonly string[] = TWEET_TOPIC_LABELS): LabelledText[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const rows: LabelledText[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof obj.text !== 'string') throw new Error(`${file}:${i + 1}: field "text" must be a string`);
    const targets = new Uint8Array(labels.length);
    labels.forEach((label, l) => {
      const v = obj[label];
      if (v !== 0 && v !== 1) throw new Error(`${file}:${i + 1}: label "${label}" must be 0 or 1, got ${JSON.stringify(v)}`);
      targets[l] = v;
    });
    rows.push({ id: String(obj.id ?? i), text: obj.text, targets });
  });
  if (rows.length === 0) throw new Error(`${file}: no examples`);
  return rows;
}

export interface TrainOptions {
  features: FeatureConfig;
  epochs: number;
  learningRate: number;
  l2: number;
  seed: number;
  /**
   * Positive examples of label l weigh (negatives/positives)^positiveWeightPower: 0 = plain loss;
   * 0.5 counters the rarity of most labels so that P > 0.5 is reachable on topical text.
   */
  positiveWeightPower: number;
}

export const TRAIN_DEFAULTS: TrainOptions = { features: FEATURE_DEFAULTS, epochs: 20, learningRate: 0.5, l2: 1e-6, seed: 0, positiveWeightPower: 0.5 };

export function trainHashedClassifier(data: LabelledText[], options: TrainOptions = TRAIN_DEFAULTS, labels: readonly string[] = TWEET_TOPIC_LABELS) {
  const L = labels.length;
  const B = options.features.buckets;
  const weights = new Float32Array(L * B);
  const bias = new Float32Array(L);
  const gradSq = new Float32Array(L * B);
  const biasGradSq = new Float32Array(L);
  const feats: SparseVector[] = data.map((d) => hashedFeatures(d.text, options.features));
  const eps = 1e-8;
  const positiveWeight = new Float64Array(L);
  for (let l = 0; l < L; l++) {
    const pos = data.reduce((s, d) => s + d.targets[l], 0);
    positiveWeight[l] = pos > 0 ? Math.pow((data.length - pos) / pos, options.positiveWeightPower) : 1;
  }
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    const order = new Rng(deriveSeed(options.seed, 'epoch', epoch)).sampleWithoutReplacement(data.length, data.length);
    for (const idx of order) {
      const x = feats[idx];
      const y = data[idx].targets;
      for (let l = 0; l < L; l++) {
        let z = bias[l];
        for (let f = 0; f < x.index.length; f++) z += weights[l * B + x.index[f]] * x.value[f];
        const g = (1 / (1 + Math.exp(-z)) - y[l]) * (y[l] ? positiveWeight[l] : 1);
        biasGradSq[l] += g * g;
        bias[l] -= (options.learningRate * g) / Math.sqrt(biasGradSq[l] + eps);
        for (let f = 0; f < x.index.length; f++) {
          const w = l * B + x.index[f];
          const gw = g * x.value[f] + options.l2 * weights[w];
          gradSq[w] += gw * gw;
          weights[w] -= (options.learningRate * gw) / Math.sqrt(gradSq[w] + eps);
        }
      }
    }
  }
  const sha = crypto.createHash('sha256').update(Buffer.from(weights.buffer)).update(Buffer.from(bias.buffer)).digest('hex');
  const config: HashedClassifierConfig = { provider: 'hashed-logreg', labels: [...labels], features: options.features, weightsSha256: sha };
  return new HashedLogRegClassifier(config, weights, bias);
}

export interface ClassifierMetrics {
  examples: number;
  microF1: number;
  macroF1: number;
  /** Mean over examples of "every label decided correctly". */
  exactMatch: number;
}

/** F1 at threshold 0.5 (the semantic-success threshold). */
export async function evaluateClassifier(classifier: HashedLogRegClassifier, data: LabelledText[]): Promise<ClassifierMetrics> {
  const L = classifier.labels.length;
  const probs = await classifier.predict(data.map((d) => d.text));
  const tp = new Float64Array(L);
  const fp = new Float64Array(L);
  const fn = new Float64Array(L);
  let exact = 0;
  data.forEach((d, i) => {
    let allRight = true;
    for (let l = 0; l < L; l++) {
      const pred = probs[i * L + l] > 0.5 ? 1 : 0;
      if (pred && d.targets[l]) tp[l]++;
      else if (pred) fp[l]++;
      else if (d.targets[l]) fn[l]++;
      if (pred !== d.targets[l]) allRight = false;
    }
    if (allRight) exact++;
  });
  const f1 = (t: number, p: number, n: number) => (t === 0 ? 0 : (2 * t) / (2 * t + p + n));
  let macro = 0;
  let macroLabels = 0;
  for (let l = 0; l < L; l++) {
    if (tp[l] + fn[l] === 0 && fp[l] === 0) continue; // label absent from data and never predicted
    macro += f1(tp[l], fp[l], fn[l]);
    macroLabels++;
  }
  const sum = (a: Float64Array) => a.reduce((s, v) => s + v, 0);
  return {
    examples: data.length,
    microF1: f1(sum(tp), sum(fp), sum(fn)),
    macroF1: macroLabels ? macro / macroLabels : 0,
    exactMatch: exact / data.length,
  };
}

export function saveHashedClassifier(dir: string, classifier: HashedLogRegClassifier): void {
  fs.mkdirSync(dir, { recursive: true });
  const L = classifier.labels.length;
  writeSafetensors(path.join(dir, CLASSIFIER_WEIGHTS_FILE), [
    ['weight', { dtype: 'F32', shape: [L, classifier.config.features.buckets], data: classifier.weights }],
    ['bias', { dtype: 'F32', shape: [L], data: classifier.bias }],
  ], { provider: 'hashed-logreg' });
  writeFileAtomicSync(path.join(dir, CLASSIFIER_CONFIG_FILE), JSON.stringify(classifier.config, null, 2) + '\n');
}
