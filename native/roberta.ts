/**
 * RoBERTa sequence classifiers from Hugging Face checkpoints, run by the native engine (CPU, fp32):
 * `cardiffnlp/tweet-topic-21-multi` is the topic classifier of PAPER.md §6.3.
 *
 * A model directory holds config.json (RobertaConfig) and model.safetensors or pytorch_model.bin (a
 * torch.save zip, read by the allow-listed unpickler of ./interop; nothing is executed). Tensor names are
 * those of RobertaForSequenceClassification: `roberta.embeddings.*`, `roberta.encoder.layer.N.*`,
 * `classifier.dense.*`, `classifier.out_proj.*`, Linear weights [out, in].
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addon } from './binding';
import { openTensorSource } from './interop/tensor-source';
import { FLOAT_DTYPES } from './interop/dtype';

export const ROBERTA_WEIGHT_FILES = ['model.safetensors', 'pytorch_model.bin'] as const;

export class RobertaCheckpointError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'RobertaCheckpointError';
  }
}

export interface RobertaConfig {
  vocabSize: number;
  maxPositions: number;
  typeVocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  numLabels: number;
  padTokenId: number;
  layerNormEps: number;
  /** id2label in id order. */
  labels: string[];
  /** config.problem_type (multi_label_classification for tweet-topic-21-multi). */
  problemType: string | null;
}

interface RawRobertaClassifier {
  tensors(): { key: string; shape: number[] }[];
  setTensor(key: string, values: Float32Array): void;
  unsetTensors(): string[];
  classify(ids: Int32Array, lengths: Int32Array, opts?: { hidden?: boolean }, cancel?: Int32Array): Promise<{ logits: Float32Array; hidden?: Float32Array }>;
  release(): void;
}

/** Buffers a checkpoint may carry that the forward pass does not use (transformers ignores them too). */
const IGNORED_TENSORS = /^roberta\.(embeddings\.(position_ids|token_type_ids)|pooler\.dense\.(weight|bias))$/;

/** Reads and checks config.json of a RoBERTa classifier. */
export function parseRobertaConfig(json: unknown, where: string): RobertaConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new RobertaCheckpointError(where, 'config must be a JSON object');
  const c = json as Record<string, unknown>;
  if (c.model_type !== 'roberta') throw new RobertaCheckpointError(where, `model_type is ${JSON.stringify(c.model_type)}, expected "roberta"`);
  const int = (key: string, min: number, dflt?: number): number => {
    const v = c[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new RobertaCheckpointError(where, `"${key}" must be an integer >= ${min}, got ${JSON.stringify(c[key])}`);
    return v;
  };
  const act = c.hidden_act ?? 'gelu';
  if (act !== 'gelu') throw new RobertaCheckpointError(where, `hidden_act ${JSON.stringify(act)} is not supported (only "gelu", the exact erf GELU)`);
  const posType = c.position_embedding_type ?? 'absolute';
  if (posType !== 'absolute') throw new RobertaCheckpointError(where, `position_embedding_type ${JSON.stringify(posType)} is not supported (only "absolute")`);
  if (c.is_decoder === true) throw new RobertaCheckpointError(where, 'is_decoder models are not supported');
  const eps = c.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0)) throw new RobertaCheckpointError(where, `"layer_norm_eps" must be a positive number`);
  const labels = labelsOf(c, where);
  const config: RobertaConfig = {
    vocabSize: int('vocab_size', 1),
    maxPositions: int('max_position_embeddings', 3),
    typeVocabSize: int('type_vocab_size', 1, 2),
    hiddenSize: int('hidden_size', 1),
    numLayers: int('num_hidden_layers', 1),
    numHeads: int('num_attention_heads', 1),
    intermediateSize: int('intermediate_size', 1),
    numLabels: labels.length,
    padTokenId: int('pad_token_id', 0, 1),
    layerNormEps: eps,
    labels,
    problemType: typeof c.problem_type === 'string' ? c.problem_type : null,
  };
  if (config.hiddenSize % config.numHeads !== 0) throw new RobertaCheckpointError(where, `hidden_size ${config.hiddenSize} is not a multiple of num_attention_heads ${config.numHeads}`);
  if (config.padTokenId >= config.vocabSize) throw new RobertaCheckpointError(where, `pad_token_id ${config.padTokenId} is outside the vocabulary (${config.vocabSize})`);
  if (config.maxPositions <= config.padTokenId + 1) throw new RobertaCheckpointError(where, `max_position_embeddings ${config.maxPositions} leaves no positions after the padding offset ${config.padTokenId + 1}`);
  return config;
}

function labelsOf(c: Record<string, unknown>, where: string): string[] {
  const id2label = c.id2label;
  if (id2label !== undefined) {
    if (!id2label || typeof id2label !== 'object' || Array.isArray(id2label)) throw new RobertaCheckpointError(where, '"id2label" must be an object');
    const entries = Object.entries(id2label as Record<string, unknown>);
    const labels: string[] = new Array(entries.length);
    for (const [k, v] of entries) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= entries.length || labels[i] !== undefined) throw new RobertaCheckpointError(where, `"id2label" keys must be 0..${entries.length - 1}, got "${k}"`);
      if (typeof v !== 'string') throw new RobertaCheckpointError(where, `id2label["${k}"] must be a string`);
      labels[i] = v;
    }
    if (labels.length === 0) throw new RobertaCheckpointError(where, '"id2label" is empty');
    return labels;
  }
  const n = c.num_labels;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new RobertaCheckpointError(where, 'needs "id2label" (or "num_labels")');
  return Array.from({ length: n }, (_, i) => `LABEL_${i}`);
}

/** The weight file of a model directory: model.safetensors, else pytorch_model.bin. */
export function robertaWeightsFile(dir: string): string {
  for (const f of ROBERTA_WEIGHT_FILES) {
    const p = path.join(dir, f);
    if (fs.existsSync(p)) return p;
  }
  if (fs.existsSync(path.join(dir, 'model.safetensors.index.json')) || fs.existsSync(path.join(dir, 'pytorch_model.bin.index.json'))) {
    throw new RobertaCheckpointError(dir, 'sharded checkpoints are not supported');
  }
  throw new RobertaCheckpointError(dir, `holds neither ${ROBERTA_WEIGHT_FILES.join(' nor ')}`);
}

function sha256File(file: string): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

export interface ClassifyOptions {
  /** Also return the last encoder layer's hidden states, [sum of lengths][hiddenSize]. */
  hidden?: boolean;
  signal?: AbortSignal;
}

export class RobertaClassifierModel {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly config: RobertaConfig,
    readonly weightsFile: string,
    readonly weightsSha256: string,
    /** Tensors present in the file but unused (position_ids buffers, a pooler). */
    readonly ignoredTensors: string[],
    private readonly raw: RawRobertaClassifier,
  ) {}

  /** Loads config.json and the weights of a Hugging Face RobertaForSequenceClassification directory. */
  static load(dir: string): RobertaClassifierModel {
    const configFile = path.join(dir, 'config.json');
    if (!fs.existsSync(configFile)) throw new RobertaCheckpointError(dir, 'config.json is missing');
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(configFile, 'utf8'));
    } catch (e) {
      throw new RobertaCheckpointError(configFile, `not valid JSON (${(e as Error).message})`);
    }
    const config = parseRobertaConfig(json, configFile);
    const weightsFile = robertaWeightsFile(dir);
    const Ctor = (addon() as unknown as { RobertaClassifier?: new (c: RobertaConfig) => RawRobertaClassifier }).RobertaClassifier;
    if (!Ctor) throw new Error('the native engine was built without the RoBERTa classifier: run `npm run build:native`');
    const raw = new Ctor(config);
    const ignored = loadTensors(raw, weightsFile, config);
    return new RobertaClassifierModel(dir, config, weightsFile, sha256File(weightsFile), ignored, raw);
  }

  /** Logits [sequences][numLabels] for token id sequences (each `<s> … </s>`, at most maxTokens long). */
  classify(sequences: readonly (readonly number[])[], options: ClassifyOptions = {}): Promise<{ logits: Float32Array; hidden?: Float32Array }> {
    const run = async () => {
      if (sequences.length === 0) return { logits: new Float32Array(0), ...(options.hidden ? { hidden: new Float32Array(0) } : {}) };
      const lengths = Int32Array.from(sequences, (s) => s.length);
      const ids = new Int32Array(lengths.reduce((a, b) => a + b, 0));
      let o = 0;
      for (const s of sequences) {
        ids.set(s, o);
        o += s.length;
      }
      const cancel = new Int32Array(new SharedArrayBuffer(4));
      const onAbort = () => Atomics.store(cancel, 0, 1);
      options.signal?.throwIfAborted();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        return await this.raw.classify(ids, lengths, { hidden: !!options.hidden }, cancel);
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
      }
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Frees the weights once pending calls are done (otherwise the garbage collector does); later calls fail. */
  async dispose(): Promise<void> {
    await this.queue;
    this.raw.release();
  }

  /** Longest sequence the position embeddings allow, `<s>` and `</s>` included. */
  get maxTokens(): number {
    return this.config.maxPositions - this.config.padTokenId - 1;
  }
}

/** Fills every native tensor from the file; returns the names of unused tensors the file holds. */
function loadTensors(raw: RawRobertaClassifier, file: string, config: RobertaConfig): string[] {
  const source = openTensorSource(file);
  try {
    const names = new Map<string, string>(); // canonical name → name in the file
    const ignored: string[] = [];
    for (const name of [...source.tensors.keys(), ...source.aliases.keys()]) {
      // TensorFlow-era names (LayerNorm.gamma/beta) are the same tensors transformers renames on load.
      const canonical = name.replace(/LayerNorm\.gamma$/, 'LayerNorm.weight').replace(/LayerNorm\.beta$/, 'LayerNorm.bias');
      names.set(canonical, name);
    }
    const wanted = new Set<string>();
    for (const { key, shape } of raw.tensors()) {
      wanted.add(key);
      const name = names.get(key);
      if (name === undefined) throw new RobertaCheckpointError(file, `missing tensor "${key}" (expected [${shape}] for a RobertaForSequenceClassification with this config.json)`);
      const t = source.tensors.get(source.aliases.get(name) ?? name)!;
      if (!FLOAT_DTYPES.includes(t.dtype)) throw new RobertaCheckpointError(file, `tensor "${name}" has dtype ${t.dtype}; weights must be floating point`);
      if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
        throw new RobertaCheckpointError(file, `tensor "${name}" has shape [${t.shape}], config.json implies [${shape}]`);
      }
      raw.setTensor(key, t.load().data);
      t.release?.();
    }
    for (const [canonical, name] of names) {
      if (wanted.has(canonical)) continue;
      if (IGNORED_TENSORS.test(canonical)) ignored.push(name);
      else throw new RobertaCheckpointError(file, `unexpected tensor "${name}" (not part of RobertaForSequenceClassification with ${config.numLayers} layers)`);
    }
    const unset = raw.unsetTensors();
    if (unset.length) throw new RobertaCheckpointError(file, `tensors never loaded: ${unset.join(', ')}`);
    return ignored.sort();
  } finally {
    source.close();
  }
}
