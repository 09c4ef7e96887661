/**
 * Model configuration: our ModelConfig (native/types.ts) <-> Hugging Face config.json (GPT2Config field names
 * plus the Backpack fields), with strict validation that names the file and field on every error.
 */
import type { ModelConfig } from './types';
import type { RawConfig } from './binding';

export class ModelConfigError extends Error {
  constructor(where: string, message: string) {
    super(`${where}: ${message}`);
    this.name = 'ModelConfigError';
  }
}

/** Rounds a real vocabulary size up to the padded row count (multiple of 8). */
export function padVocab(realVocabSize: number): number {
  return Math.ceil(realVocabSize / 8) * 8;
}

/** Width of both sense MLPs: d with the shrink ablation, sense_intermediate_scale * d otherwise. */
export function senseHidden(c: ModelConfig): number {
  return c.shrinkSenseMlp ? c.nEmbd : (c.senseIntermediateScale ?? 4) * c.nEmbd;
}

export function validateConfig(c: ModelConfig, where = 'model config'): ModelConfig {
  const positive = (name: keyof ModelConfig) => {
    const v = c[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ModelConfigError(where, `${String(name)} must be a positive integer, got ${String(v)}`);
  };
  if (c.arch !== 'gpt2' && c.arch !== 'backpack') throw new ModelConfigError(where, `arch must be "gpt2" or "backpack", got ${String(c.arch)}`);
  for (const k of ['vocabSize', 'realVocabSize', 'nPositions', 'nEmbd', 'nLayer', 'nHead'] as const) positive(k);
  if (c.realVocabSize > c.vocabSize) throw new ModelConfigError(where, `realVocabSize ${c.realVocabSize} exceeds vocabSize ${c.vocabSize}`);
  if (c.nEmbd % c.nHead !== 0) throw new ModelConfigError(where, `nEmbd ${c.nEmbd} is not divisible by nHead ${c.nHead}`);
  if (!(c.layerNormEpsilon > 0)) throw new ModelConfigError(where, `layerNormEpsilon must be > 0`);
  if (c.arch === 'backpack') {
    positive('numSenses');
    if (c.nEmbd % (c.numSenses as number) !== 0) throw new ModelConfigError(where, `nEmbd ${c.nEmbd} is not divisible by numSenses ${c.numSenses}`);
    const s = c.senseIntermediateScale ?? 4;
    if (!Number.isInteger(s) || s <= 0) throw new ModelConfigError(where, `senseIntermediateScale must be a positive integer`);
    return { ...c, senseIntermediateScale: s, shrinkSenseMlp: c.shrinkSenseMlp ?? false };
  }
  return c;
}

export function toRawConfig(c: ModelConfig): RawConfig {
  return {
    arch: c.arch,
    vocabSize: c.vocabSize,
    realVocabSize: c.realVocabSize,
    nPositions: c.nPositions,
    nEmbd: c.nEmbd,
    nLayer: c.nLayer,
    nHead: c.nHead,
    numSenses: c.arch === 'backpack' ? c.numSenses : 0,
    senseHidden: c.arch === 'backpack' ? senseHidden(c) : 0,
    scaleAttnByInverseLayerIdx: c.scaleAttnByInverseLayerIdx,
    layerNormEpsilon: c.layerNormEpsilon,
  };
}

/** The config.json we write: Hugging Face GPT2Config names, Backpack fields, and ours. */
export function toHfConfig(c: ModelConfig): Record<string, unknown> {
  const hf: Record<string, unknown> = {
    model_type: 'gpt2',
    architectures: [c.arch === 'backpack' ? 'BackpackGPT2LMHeadModel' : 'GPT2LMHeadModel'],
    vocab_size: c.vocabSize,
    real_vocab_size: c.realVocabSize,
    n_positions: c.nPositions,
    n_ctx: c.nPositions,
    n_embd: c.nEmbd,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: c.layerNormEpsilon,
    scale_attn_by_inverse_layer_idx: c.scaleAttnByInverseLayerIdx,
    reorder_and_upcast_attn: false,
    tie_word_embeddings: true,
    embd_pdrop: 0.1,
    attn_pdrop: 0.1,
    resid_pdrop: 0.1,
    initializer_range: 0.02,
  };
  if (c.arch === 'backpack') {
    hf.num_senses = c.numSenses;
    hf.sense_intermediate_scale = c.senseIntermediateScale ?? 4;
    hf.shrink_sense_mlp = c.shrinkSenseMlp ?? false;
  }
  return hf;
}

const GPT2_REAL_VOCAB = 50257;

export function fromHfConfig(json: unknown, where: string): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelConfigError(where, 'config.json must hold a JSON object');
  const o = json as Record<string, unknown>;
  const int = (key: string, fallback?: number): number => {
    const v = o[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ModelConfigError(where, `"${key}" must be a positive integer, got ${JSON.stringify(o[key])}`);
    return v;
  };
  if (o.model_type !== undefined && o.model_type !== 'gpt2') throw new ModelConfigError(where, `model_type must be "gpt2", got ${JSON.stringify(o.model_type)}`);
  const archs = Array.isArray(o.architectures) ? (o.architectures as unknown[]) : [];
  const isBackpack = archs.includes('BackpackGPT2LMHeadModel') || o.num_senses !== undefined;
  if (archs.length > 0 && !archs.includes('GPT2LMHeadModel') && !archs.includes('BackpackGPT2LMHeadModel'))
    throw new ModelConfigError(where, `architectures ${JSON.stringify(archs)} name neither GPT2LMHeadModel nor BackpackGPT2LMHeadModel`);
  const act = o.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new') throw new ModelConfigError(where, `activation_function must be "gelu_new", got ${JSON.stringify(act)}`);
  const vocabSize = int('vocab_size');
  const nEmbd = int('n_embd');
  if (o.n_inner !== undefined && o.n_inner !== null && o.n_inner !== 4 * nEmbd) throw new ModelConfigError(where, `n_inner must be null or 4*n_embd`);
  const eps = o.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) throw new ModelConfigError(where, `"layer_norm_epsilon" must be a positive number`);
  const c: ModelConfig = {
    arch: isBackpack ? 'backpack' : 'gpt2',
    vocabSize,
    realVocabSize: int('real_vocab_size', Math.min(vocabSize, GPT2_REAL_VOCAB)),
    nPositions: int('n_positions'),
    nEmbd,
    nLayer: int('n_layer'),
    nHead: int('n_head'),
    scaleAttnByInverseLayerIdx: o.scale_attn_by_inverse_layer_idx === true,
    layerNormEpsilon: eps,
  };
  if (isBackpack) {
    c.numSenses = int('num_senses');
    c.senseIntermediateScale = int('sense_intermediate_scale', 4);
    c.shrinkSenseMlp = o.shrink_sense_mlp === true || o.shrink_sense_mlp === 'both';
  }
  return validateConfig(c, where);
}
