/**
 * The paper's topic classifier, `cardiffnlp/tweet-topic-21-multi` (RoBERTa-base, 19 labels), run by the
 * native engine from its Hugging Face directory: config.json, model.safetensors or pytorch_model.bin,
 * vocab.json, merges.txt (+ tokenizer.json for the special tokens' flags). PAPER.md §6.3: its own tokenizer with
 * default settings, P(label) = σ(logit).
 *
 * Fetch it once (any copy of the repository's files works; pin the revision you record):
 *   huggingface-cli download cardiffnlp/tweet-topic-21-multi config.json pytorch_model.bin vocab.json merges.txt tokenizer.json \
 *     --local-dir ~/.cache/backpack-pipeline/models/cardiffnlp--tweet-topic-21-multi
 * The directory is found at PIPELINE_TOPIC_CLASSIFIER_DIR, else at that default, else pass it explicitly.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRobertaTokenizer, type RobertaTokenizer } from '../../../datasets/tokenizer/roberta';
import { RobertaClassifierModel, robertaWeightsFile } from '../../../native/roberta';
import type { TopicClassifier } from './classifier';

export const ROBERTA_PROVIDER = 'tweet-topic-21-multi';
export const ROBERTA_HF_REPO = 'cardiffnlp/tweet-topic-21-multi';

/** $PIPELINE_TOPIC_CLASSIFIER_DIR, else <cache>/models/cardiffnlp--tweet-topic-21-multi. */
export function defaultTopicClassifierDir(): string {
  if (process.env.PIPELINE_TOPIC_CLASSIFIER_DIR) return process.env.PIPELINE_TOPIC_CLASSIFIER_DIR;
  const cache = process.env.PIPELINE_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'backpack-pipeline');
  return path.join(cache, 'models', ROBERTA_HF_REPO.replace('/', '--'));
}

export interface RobertaTopicOptions {
  /** Sequences per native call (they are packed, so no compute is spent on padding). */
  batchSize?: number;
}

export class RobertaTopicClassifier implements TopicClassifier {
  readonly id: string;
  readonly labels: readonly string[];
  private readonly batchSize: number;

  constructor(
    readonly model: RobertaClassifierModel,
    readonly tokenizer: RobertaTokenizer,
    options: RobertaTopicOptions = {},
  ) {
    this.labels = model.config.labels;
    this.id = `${ROBERTA_PROVIDER}:${model.weightsSha256.slice(0, 12)}`;
    this.batchSize = options.batchSize ?? 64;
    if (tokenizer.vocabSize !== model.config.vocabSize) {
      throw new Error(`${model.dir}: vocab.json has ${tokenizer.vocabSize} tokens but config.json says vocab_size ${model.config.vocabSize}`);
    }
    if (tokenizer.specials.pad !== model.config.padTokenId) {
      throw new Error(`${model.dir}: <pad> is id ${tokenizer.specials.pad} in vocab.json but pad_token_id ${model.config.padTokenId} in config.json`);
    }
  }

  /** Token ids as the model sees them: `<s> … </s>`, cut to the positions the model has. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text, this.model.maxTokens);
  }

  async logits(texts: string[], signal?: AbortSignal): Promise<Float32Array> {
    const L = this.labels.length;
    const out = new Float32Array(texts.length * L);
    const encoded = texts.map((t) => this.encode(t));
    // Similar lengths together keep the per-sequence attention blocks even across threads.
    const order = encoded.map((_, i) => i).sort((a, b) => encoded[b].length - encoded[a].length);
    for (let s = 0; s < order.length; s += this.batchSize) {
      const rows = order.slice(s, s + this.batchSize);
      const { logits } = await this.model.classify(
        rows.map((i) => encoded[i]),
        { signal },
      );
      rows.forEach((i, r) => out.set(logits.subarray(r * L, (r + 1) * L), i * L));
    }
    return out;
  }

  /** Independent label probabilities σ(logit), [texts][labels]. */
  async predict(texts: string[], signal?: AbortSignal): Promise<Float32Array> {
    const z = await this.logits(texts, signal);
    for (let k = 0; k < z.length; k++) z[k] = 1 / (1 + Math.exp(-z[k]));
    return z;
  }
}

/** Classifiers loaded in this process by directory + weight file identity: a sweep's runs share one copy. */
const loaded = new Map<string, RobertaTopicClassifier>();

/**
 * Loads the classifier from a Hugging Face model directory (default: defaultTopicClassifierDir()). Repeated
 * loads of the same unchanged files return the same instance (the weights are ~500 MB).
 */
export function loadRobertaTopicClassifier(dir: string = defaultTopicClassifierDir(), options: RobertaTopicOptions = {}): RobertaTopicClassifier {
  assertModelDir(dir);
  const key = JSON.stringify([
    fs.realpathSync(dir),
    options.batchSize ?? null,
    ...['config.json', 'vocab.json', 'merges.txt', 'tokenizer.json', path.basename(robertaWeightsFile(dir))].map((f) => {
      const p = path.join(dir, f);
      if (!fs.existsSync(p)) return null;
      const st = fs.statSync(p);
      return [f, st.size, st.mtimeMs];
    }),
  ]);
  let classifier = loaded.get(key);
  if (!classifier) {
    classifier = new RobertaTopicClassifier(RobertaClassifierModel.load(dir), loadRobertaTokenizer(dir), options);
    loaded.set(key, classifier);
  }
  return classifier;
}

function assertModelDir(dir: string): void {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new Error(
      `topic classifier ${ROBERTA_PROVIDER}: no model directory at ${dir}. Download ${ROBERTA_HF_REPO} ` +
        `(config.json, pytorch_model.bin or model.safetensors, vocab.json, merges.txt, tokenizer.json) there, ` +
        'or point PIPELINE_TOPIC_CLASSIFIER_DIR (CLI: --classifier <dir>) at a copy',
    );
  }
}
