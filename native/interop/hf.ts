/**
 * Hugging Face checkpoints ↔ our format (PAPER.md §9.4, §9.5).
 *
 * Import: `stanfordnlp/backpack-gpt2` (remote-code Backpack) and the GPT-2 family (gpt2 … gpt2-xl),
 * from `pytorch_model.bin` (torch zip) or `model.safetensors`. Module aliases and the tied lm_head are
 * accepted and de-duplicated, never required; old attention mask buffers are ignored. GPT-2's 50257
 * embedding rows are padded with zero rows to a multiple of 8 (50264) and the real size recorded.
 * Export: our checkpoint as a directory transformers can load (config.json + model.safetensors).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { ModelConfig } from '../types';
import { padVocab, toHfConfig, fromHfConfig } from '../config';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../safetensors';
import { writeTextAtomic } from './atomic';
import { openTensorSource, type TensorSource } from './tensor-source';
import { checkComplete, expectedTensors, GPT2_PADDED_VOCAB, GPT2_REAL_VOCAB, HEADS_BY_WIDTH, ImportError, sameShape, type ImportedModel } from './model-tensors';
import type { LoadedTensor } from '../safetensors';

export type HfFlavor = 'hf-backpack' | 'hf-gpt2';

/** Weight file + optional config.json for a path that is a file or a model directory. */
export function resolveHfFiles(target: string): { weights: string; config?: Record<string, unknown> } {
  let weights = target;
  let dir = path.dirname(target);
  if (fs.statSync(target).isDirectory()) {
    dir = target;
    const candidates = ['model.safetensors', 'pytorch_model.bin'].map((f) => path.join(target, f));
    const found = candidates.find((f) => fs.existsSync(f));
    if (!found) {
      const sharded = ['model.safetensors.index.json', 'pytorch_model.bin.index.json'].find((f) => fs.existsSync(path.join(target, f)));
      throw new ImportError(target, sharded ? `sharded checkpoints (${sharded}) are not supported` : 'holds neither model.safetensors nor pytorch_model.bin');
    }
    weights = found;
  }
  const configFile = path.join(dir, 'config.json');
  let config: Record<string, unknown> | undefined;
  if (fs.existsSync(configFile)) {
    try {
      const parsed = JSON.parse(fs.readFileSync(configFile, 'utf8'));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) config = parsed;
      else throw new Error('not a JSON object');
    } catch (err) {
      throw new ImportError(configFile, `invalid config: ${(err as Error).message}`);
    }
  }
  return { weights, config };
}

export function importHf(flavor: HfFlavor, target: string): ImportedModel {
  const { weights, config } = resolveHfFiles(target);
  const source = openTensorSource(weights);
  try {
    return convertHf(flavor, source, config);
  } finally {
    source.close();
  }
}

const IGNORED = /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/;

export function convertHf(flavor: HfFlavor, source: TensorSource, hfConfig: Record<string, unknown> = {}): ImportedModel {
  const { file } = source;
  const names = new Set([...source.tensors.keys(), ...source.aliases.keys()]);
  // GPT-2 files from OpenAI's conversion have no `transformer.` prefix; transformers' own saves do.
  const body = flavor === 'hf-backpack' ? 'backpack.gpt2_model.' : names.has('transformer.wte.weight') ? 'transformer.' : '';
  const outBody = flavor === 'hf-backpack' ? 'backpack.gpt2_model.' : 'transformer.';
  // Names under which the embeddings may be stored when the canonical one was dropped as a duplicate.
  const alternates: Record<string, string[]> = {
    [`${body}wte.weight`]: flavor === 'hf-backpack' ? ['backpack.word_embeddings.weight', 'lm_head.weight'] : ['lm_head.weight'],
    [`${body}wpe.weight`]: flavor === 'hf-backpack' ? ['backpack.position_embeddings.weight'] : [],
  };
  const find = (name: string): string | undefined => {
    for (const n of [name, ...(alternates[name] ?? [])]) {
      if (source.tensors.has(n)) return n;
      if (source.aliases.has(n)) return source.aliases.get(n);
    }
    return undefined;
  };
  const shapeOf = (name: string): number[] => {
    const found = find(name);
    if (!found) throw new ImportError(file, `missing tensor "${name}"`);
    return source.tensors.get(found)!.shape;
  };
  if (!find(`${body}wte.weight`)) {
    const sample = [...names].slice(0, 5).join(', ');
    throw new ImportError(file, `not a ${flavor === 'hf-backpack' ? 'Backpack (backpack.*)' : 'GPT-2'} checkpoint: no ${body}wte.weight (keys start: ${sample})`);
  }

  const [rows, d] = shapeOf(`${body}wte.weight`);
  const [nPositions] = shapeOf(`${body}wpe.weight`);
  let nLayer = 0;
  while (find(`${body}h.${nLayer}.ln_1.weight`)) nLayer++;
  const cfgInt = (key: string): number | undefined => {
    const v = hfConfig[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ImportError(file, `config "${key}" must be a positive integer`);
    return v;
  };
  const nHead = cfgInt('n_head') ?? HEADS_BY_WIDTH[d];
  if (!nHead) throw new ImportError(file, `cannot tell n_head for n_embd ${d}: no config.json with n_head`);
  const realVocab = cfgInt('real_vocab_size') ?? (flavor === 'hf-backpack' && rows === GPT2_PADDED_VOCAB ? GPT2_REAL_VOCAB : rows);
  const eps = hfConfig.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) throw new ImportError(file, 'config "layer_norm_epsilon" must be a positive number');
  const act = hfConfig.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new') throw new ImportError(file, `activation_function ${JSON.stringify(act)} is not supported (gelu_new only)`);
  for (const [key, value] of [['n_embd', d], ['n_layer', nLayer], ['n_positions', nPositions]] as const) {
    const v = cfgInt(key);
    if (v !== undefined && v !== value) throw new ImportError(file, `config says ${key} = ${v} but the tensors have ${value}`);
  }

  const config: ModelConfig = {
    arch: flavor === 'hf-backpack' ? 'backpack' : 'gpt2',
    vocabSize: padVocab(rows),
    realVocabSize: realVocab,
    nPositions,
    nEmbd: d,
    nLayer,
    nHead,
    // The Backpack port sets it; OpenAI's GPT-2 does not scale by the inverse layer index.
    scaleAttnByInverseLayerIdx: typeof hfConfig.scale_attn_by_inverse_layer_idx === 'boolean' ? hfConfig.scale_attn_by_inverse_layer_idx : flavor === 'hf-backpack',
    layerNormEpsilon: eps,
  };
  if (flavor === 'hf-backpack') {
    const [, h] = shapeOf('backpack.sense_network.final_mlp.c_fc.weight');
    const [, kd] = shapeOf('backpack.sense_network.final_mlp.c_proj.weight');
    if (kd % d !== 0) throw new ImportError(file, `final_mlp.c_proj has ${kd} columns, not a multiple of n_embd ${d}`);
    config.numSenses = cfgInt('num_senses') ?? kd / d;
    if (config.numSenses !== kd / d) throw new ImportError(file, `config says num_senses = ${config.numSenses} but final_mlp.c_proj implies ${kd / d}`);
    config.shrinkSenseMlp = h === d && hfConfig.shrink_sense_mlp !== false;
    config.senseIntermediateScale = config.shrinkSenseMlp ? (cfgInt('sense_intermediate_scale') ?? 4) : h / d;
    if (!config.shrinkSenseMlp && !Number.isInteger(h / d)) throw new ImportError(file, `sense MLP width ${h} is not a multiple of n_embd ${d}`);
  }

  const out: ImportedModel = { config, tensors: new Map(), provenance: {} };
  const used = new Set<string>();
  const loaded = new Map<string, LoadedTensor>();
  const load = (name: string): LoadedTensor => {
    let t = loaded.get(name);
    if (!t) {
      t = source.tensors.get(name)!.load();
      loaded.set(name, t);
    }
    return t;
  };
  for (const [outName, shape] of expectedTensors(config)) {
    const inName = outBody === body ? outName : body + outName.slice(outBody.length);
    const found = find(inName);
    if (!found) throw new ImportError(file, `missing tensor "${inName}"`);
    used.add(found);
    const t = load(found);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) throw new ImportError(file, `tensor "${found}" has dtype ${t.dtype}; weights must be floating point`);
    const isWte = inName === `${body}wte.weight`;
    const wantShape = isWte ? [rows, d] : shape;
    if (!sameShape(t.shape, wantShape)) throw new ImportError(file, `tensor "${found}" has shape [${t.shape}], expected [${wantShape}]`);
    let data: Float32Array;
    if (isWte && rows !== config.vocabSize) {
      data = new Float32Array(config.vocabSize * d); // zero rows pad the vocabulary to a multiple of 8
      data.set(t.data);
    } else {
      data = t.data;
    }
    out.tensors.set(outName, { shape: [...shape], data });
  }

  // Remaining names: mask buffers are ignored; aliases (stored separately in safetensors) must match.
  const ignored: string[] = [];
  const checkedAliases: string[] = [];
  for (const name of source.tensors.keys()) {
    if (used.has(name)) continue;
    if (IGNORED.test(name)) {
      ignored.push(name);
      continue;
    }
    const target = aliasTarget(flavor, body, name);
    if (!target) throw new ImportError(file, `unexpected tensor "${name}" [${source.tensors.get(name)!.shape}] (not part of the ${config.arch} architecture)`);
    const canonical = find(target);
    if (!canonical || !sameValues(load(name), load(canonical))) {
      throw new ImportError(file, `"${name}" differs from "${target}"; only tied weights are supported`);
    }
    checkedAliases.push(name);
  }
  for (const [name, target] of source.aliases) {
    if (!aliasTarget(flavor, body, name) && !IGNORED.test(name)) {
      throw new ImportError(file, `"${name}" unexpectedly shares storage with "${target}"`);
    }
  }
  out.provenance = {
    source: flavor,
    file,
    format: source.format,
    ignoredKeys: ignored.length,
    aliases: [...source.aliases.keys(), ...checkedAliases].sort(),
    paddedVocabRows: config.vocabSize - rows,
  };
  checkComplete(file, out);
  return out;
}

function aliasTarget(flavor: HfFlavor, body: string, name: string): string | undefined {
  if (name === 'lm_head.weight') return `${body}wte.weight`;
  if (flavor === 'hf-backpack' && name === 'backpack.word_embeddings.weight') return `${body}wte.weight`;
  if (flavor === 'hf-backpack' && name === 'backpack.position_embeddings.weight') return `${body}wpe.weight`;
  return undefined;
}

function sameValues(a: LoadedTensor, b: LoadedTensor): boolean {
  if (!sameShape(a.shape, b.shape)) return false;
  const x = a.data;
  const y = b.data;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && !(Number.isNaN(x[i]) && Number.isNaN(y[i]))) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Export

export interface ExportOptions {
  /**
   * The HF Backpack port hard-codes sense MLPs of width 4d, so shrink-ablation models cannot be
   * loaded by it; set this to write them anyway (our config fields describe them).
   */
  allowNonStandardBackpack?: boolean;
}

/** Repo of the remote code that loads Backpack checkpoints in transformers. */
const BACKPACK_REMOTE_CODE = 'stanfordnlp/backpack-gpt2';

/** Writes our checkpoint `srcDir` as a Hugging Face model directory `outDir`. Tensors are copied bit for bit. */
export function exportHf(srcDir: string, outDir: string, options: ExportOptions = {}): { config: ModelConfig; tensors: number } {
  const configFile = path.join(srcDir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  } catch (err) {
    throw new ImportError(configFile, `cannot read: ${(err as Error).message}`);
  }
  const config = fromHfConfig(json, configFile);
  if (config.arch === 'backpack' && !options.allowNonStandardBackpack && (config.shrinkSenseMlp || (config.senseIntermediateScale ?? 4) !== 4)) {
    throw new ImportError(srcDir, 'the Hugging Face Backpack port hard-codes sense MLPs of width 4·n_embd; this model (shrink ablation) cannot be loaded by it');
  }
  const weightsFile = path.join(srcDir, 'model.safetensors');
  const { tensors } = readSafetensors(weightsFile);
  const want = expectedTensors(config);
  for (const [name, shape] of want) {
    const t = tensors.get(name);
    if (!t) throw new ImportError(weightsFile, `missing tensor "${name}"`);
    if (!sameShape(t.shape, shape)) throw new ImportError(weightsFile, `tensor "${name}" has shape [${t.shape}], the config needs [${shape}]`);
  }
  const out = new Map<string, TensorToWrite>();
  for (const name of want.keys()) out.set(name, tensors.get(name)!);

  const hf: Record<string, unknown> = { ...toHfConfig(config) };
  // GPT-2 BPE models end documents with 50256; others have no such token (transformers would default to 50256).
  const eos = config.realVocabSize >= GPT2_REAL_VOCAB ? GPT2_REAL_VOCAB - 1 : null;
  hf.bos_token_id = eos;
  hf.eos_token_id = eos;
  if (config.arch === 'backpack') {
    hf.auto_map = {
      AutoConfig: `${BACKPACK_REMOTE_CODE}--configuration_backpack_gpt2.BackpackGPT2Config`,
      AutoModelForCausalLM: `${BACKPACK_REMOTE_CODE}--modeling_backpack_gpt2.BackpackGPT2LMHeadModel`,
    };
  }
  fs.mkdirSync(outDir, { recursive: true });
  writeSafetensors(path.join(outDir, 'model.safetensors'), out, { format: 'pt' });
  writeTextAtomic(path.join(outDir, 'config.json'), JSON.stringify(hf, null, 2) + '\n');
  return { config, tensors: out.size };
}

