/**
 * Lightning `.ckpt` files of the authors' training code → our HF-layout model (PAPER.md §9.2, §9.3).
 *
 * The authors' GPT body stores its LayerNorms shifted by one (fused dropout-add-LN): `ln_0` is GPT-2's
 * h.0.ln_1, `layers.i.norm1` is h.i.ln_2, `layers.i.norm2` is h.(i+1).ln_1 and the last norm2 is ln_f.
 * All their weights are Linear [out, in]; HF GPT-2 and the sense MLPs are Conv1D [in, out], so those
 * are transposed. The contextualization weight net is a Linear in both layouts.
 */
import type { ModelConfig } from '../types';
import { openTensorSource, type TensorSource } from './tensor-source';
import {
  checkComplete,
  GPT2_PADDED_VOCAB,
  GPT2_REAL_VOCAB,
  HEADS_BY_WIDTH,
  ImportError,
  transpose2d,
  type ImportedModel,
} from './model-tensors';

type Op = 'copy' | 'T';

/** One row of the §9.3 table: Lightning key (without `model.`) → HF key. */
export interface KeyMapping {
  from: string;
  to: string;
  op: Op;
}

/** The full §9.3 mapping for a model with L layers. */
export function lightningKeyMap(arch: 'gpt2' | 'backpack', nLayer: number): KeyMapping[] {
  const src = arch === 'backpack' ? 'transformer.gpt2_model.' : 'transformer.';
  const dst = arch === 'backpack' ? 'backpack.gpt2_model.' : 'transformer.';
  const map: KeyMapping[] = [];
  const add = (from: string, to: string, op: Op = 'copy') => map.push({ from, to, op });
  const ln = (from: string, to: string) => {
    add(`${from}.weight`, `${to}.weight`);
    add(`${from}.bias`, `${to}.bias`);
  };
  const linear = (from: string, to: string) => {
    add(`${from}.weight`, `${to}.weight`, 'T');
    add(`${from}.bias`, `${to}.bias`);
  };
  add(`${src}embeddings.word_embeddings.weight`, `${dst}wte.weight`);
  add(`${src}embeddings.position_embeddings.weight`, `${dst}wpe.weight`);
  ln(`${src}ln_0`, `${dst}h.0.ln_1`);
  for (let i = 0; i < nLayer; i++) {
    const s = `${src}layers.${i}.`;
    const d = `${dst}h.${i}.`;
    linear(`${s}mixer.Wqkv`, `${d}attn.c_attn`);
    linear(`${s}mixer.out_proj`, `${d}attn.c_proj`);
    ln(`${s}norm1`, `${d}ln_2`);
    linear(`${s}mlp.fc1`, `${d}mlp.c_fc`);
    linear(`${s}mlp.fc2`, `${d}mlp.c_proj`);
    ln(`${s}norm2`, i < nLayer - 1 ? `${dst}h.${i + 1}.ln_1` : `${dst}ln_f`);
  }
  if (arch === 'backpack') {
    const c = 'transformer.content_model.';
    const n = 'backpack.sense_network.';
    ln(`${c}ln_0`, `${n}ln`);
    ln(`${c}layers.0.norm1`, `${n}block.ln_1`);
    linear(`${c}layers.0.mlp.fc1`, `${n}block.mlp.c_fc`);
    linear(`${c}layers.0.mlp.fc2`, `${n}block.mlp.c_proj`);
    ln(`${c}layers.0.norm2`, `${n}block.ln_2`);
    linear(`${c}final_mlp.fc1`, `${n}final_mlp.c_fc`);
    linear(`${c}final_mlp.fc2`, `${n}final_mlp.c_proj`);
    add('transformer.contextualization_attn.Wqkv.weight', 'backpack.sense_weight_net.c_attn.weight');
    add('transformer.contextualization_attn.Wqkv.bias', 'backpack.sense_weight_net.c_attn.bias');
  }
  return map;
}

/** Names that must be aliases (same storage) of a mapped tensor; they carry nothing new. */
function aliasKeys(arch: 'gpt2' | 'backpack'): Map<string, string> {
  const wte = arch === 'backpack' ? 'transformer.gpt2_model.embeddings.word_embeddings.weight' : 'transformer.embeddings.word_embeddings.weight';
  const wpe = wte.replace('word_embeddings', 'position_embeddings');
  const out = new Map<string, string>([['lm_head.weight', wte]]);
  if (arch === 'backpack') {
    out.set('transformer.content_model.embeddings.word_embeddings.weight', wte);
    out.set('transformer.content_model.embeddings.position_embeddings.weight', wpe);
    out.set('transformer.embeddings.word_embeddings.weight', wte);
    out.set('transformer.embeddings.position_embeddings.weight', wpe);
  }
  return out;
}

export interface LightningImportOptions {
  /** Overrides the head count (which no tensor shape determines). */
  nHead?: number;
}

export function importLightning(file: string, options: LightningImportOptions = {}): ImportedModel {
  const source = openTensorSource(file);
  try {
    return convertLightning(source, options);
  } finally {
    source.close();
  }
}

export function convertLightning(source: TensorSource, options: LightningImportOptions = {}): ImportedModel {
  const { file } = source;
  // Strip the LightningModule's `model.` prefix from names and aliases.
  const strip = (k: string) => (k.startsWith('model.') ? k.slice('model.'.length) : k);
  const tensors = new Map([...source.tensors].map(([k, t]) => [strip(k), t]));
  const aliases = new Map([...source.aliases].map(([k, v]) => [strip(k), strip(v)]));
  const has = (k: string) => tensors.has(k) || aliases.has(k);

  const arch: 'gpt2' | 'backpack' | undefined = has('transformer.gpt2_model.embeddings.word_embeddings.weight')
    ? 'backpack'
    : has('transformer.embeddings.word_embeddings.weight') && has('transformer.layers.0.mixer.Wqkv.weight')
      ? 'gpt2'
      : undefined;
  if (!arch) {
    const sample = [...tensors.keys()].slice(0, 5).join(', ');
    throw new ImportError(file, `not a checkpoint of the authors' Backpack or Transformer (keys start: ${sample})`);
  }
  const body = arch === 'backpack' ? 'transformer.gpt2_model.' : 'transformer.';
  const shapeOf = (k: string): number[] => {
    const t = tensors.get(k) ?? tensors.get(aliases.get(k) ?? '');
    if (!t) throw new ImportError(file, `missing tensor "model.${k}"`);
    return t.shape;
  };
  const [vocab, d] = shapeOf(`${body}embeddings.word_embeddings.weight`);
  const [nPositions] = shapeOf(`${body}embeddings.position_embeddings.weight`);
  let nLayer = 0;
  while (has(`${body}layers.${nLayer}.mixer.Wqkv.weight`)) nLayer++;
  if (nLayer === 0) throw new ImportError(file, `no layers found under model.${body}layers.*`);

  const nHead = options.nHead ?? headsFromHyperParameters(source.hyperParameters) ?? HEADS_BY_WIDTH[d];
  if (!nHead) {
    throw new ImportError(file, `cannot tell n_head for n_embd ${d}: hyper_parameters has no model.config.n_head; pass nHead`);
  }
  const config: ModelConfig = {
    arch,
    vocabSize: vocab,
    realVocabSize: vocab === GPT2_PADDED_VOCAB ? GPT2_REAL_VOCAB : vocab,
    nPositions,
    nEmbd: d,
    nLayer,
    nHead,
    scaleAttnByInverseLayerIdx: true,
    layerNormEpsilon: 1e-5,
  };
  if (arch === 'backpack') {
    // k = rows(final_mlp.fc2) / d; h = rows(final_mlp.fc1); shrink ⇔ h = d (both MLPs, as the code does).
    const [h] = shapeOf('transformer.content_model.final_mlp.fc1.weight');
    const [kd] = shapeOf('transformer.content_model.final_mlp.fc2.weight');
    const [hA] = shapeOf('transformer.content_model.layers.0.mlp.fc1.weight');
    if (kd % d !== 0) throw new ImportError(file, `final_mlp.fc2 has ${kd} rows, not a multiple of n_embd ${d}`);
    if (hA !== h) throw new ImportError(file, `sense MLP widths differ (${hA} vs ${h}): only shrinking both MLPs is supported`);
    if (h !== d && h % d !== 0) throw new ImportError(file, `sense MLP width ${h} is neither n_embd nor a multiple of it`);
    config.numSenses = kd / d;
    config.shrinkSenseMlp = h === d;
    config.senseIntermediateScale = h === d ? 4 : h / d;
  }

  const out: ImportedModel = { config, tensors: new Map(), provenance: {} };
  const used = new Set<string>();
  for (const { from, to, op } of lightningKeyMap(arch, nLayer)) {
    const t = tensors.get(from);
    if (!t) throw new ImportError(file, aliases.has(from) ? `"model.${from}" is an alias of "${aliases.get(from)}", expected its own tensor` : `missing tensor "model.${from}"`);
    used.add(from);
    const loaded = t.load();
    if (!['F32', 'F16', 'BF16', 'F64'].includes(loaded.dtype)) throw new ImportError(file, `tensor "model.${from}" has dtype ${loaded.dtype}; weights must be floating point`);
    let data = loaded.data;
    let shape = loaded.shape;
    if (op === 'T') {
      if (shape.length !== 2) throw new ImportError(file, `tensor "model.${from}" has shape [${shape}], expected a matrix`);
      data = transpose2d(data, shape[0], shape[1]);
      shape = [shape[1], shape[0]];
    }
    // Copies stay zero-copy views of their storage; transposed ones no longer need it.
    t.release?.();
    out.tensors.set(to, { shape: [...shape], data });
  }
  // Every other name must be one of the known aliases, pointing at the right tensor.
  const expectedAliases = aliasKeys(arch);
  for (const name of tensors.keys()) {
    if (used.has(name)) continue;
    if (expectedAliases.has(name)) {
      throw new ImportError(file, `"model.${name}" is stored separately from "model.${expectedAliases.get(name)}"; the weights must be tied`);
    }
    throw new ImportError(file, `unexpected tensor "model.${name}" [${tensors.get(name)!.shape}] (not part of the ${arch} architecture)`);
  }
  for (const [name, target] of aliases) {
    if (expectedAliases.get(name) !== target) throw new ImportError(file, `"model.${name}" unexpectedly shares storage with "model.${target}"`);
  }
  out.provenance = {
    source: 'lightning',
    file,
    format: source.format,
    checkpoint: source.info,
    aliases: Object.fromEntries([...aliases].map(([k, v]) => [`model.${k}`, `model.${v}`])),
    nHeadFrom: options.nHead ? 'option' : headsFromHyperParameters(source.hyperParameters) ? 'hyper_parameters' : 'size table',
    stateDictKeys: source.tensors.size + source.aliases.size,
  };
  checkComplete(file, out);
  return out;
}

/** `hyper_parameters.model.config.n_head` (OmegaConf containers arrive unwrapped as plain objects). */
export function headsFromHyperParameters(hp: unknown): number | undefined {
  const get = (o: unknown, k: string): unknown => (o && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>)[k] : undefined);
  const candidates = [get(get(get(hp, 'model'), 'config'), 'n_head'), get(get(hp, 'config'), 'n_head'), get(hp, 'n_head')];
  const found = candidates.find((v) => typeof v === 'number' && Number.isInteger(v) && v > 0);
  return found as number | undefined;
}

