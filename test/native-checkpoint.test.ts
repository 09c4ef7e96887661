/**
 * Checkpoints in the Hugging Face layout: save/load round trip, loading hand-built safetensors files (Conv1D
 * transposes, F16/BF16 conversion, tolerated aliases), and clear errors for malformed or mismatched files.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createModel, loadModel } from '../native';
import { writeSafetensors, type TensorToWrite } from '../native/safetensors';
import type { ModelConfig } from '../native/types';

const gpt2: ModelConfig = { arch: 'gpt2', vocabSize: 32, realVocabSize: 30, nPositions: 16, nEmbd: 16, nLayer: 2, nHead: 4, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 };
const backpack: ModelConfig = { ...gpt2, arch: 'backpack', numSenses: 4, senseIntermediateScale: 2 };
const tokens = Int32Array.from([1, 5, 9, 2, 29, 3, 0, 7]);

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'native-ckpt-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.each([['gpt2', gpt2], ['backpack', backpack]] as const)('%s checkpoints', (_name, config) => {
  test('save then load gives identical parameters and logits', async () => {
    const model = createModel(config, 7);
    await model.save(tmp);
    const cfg = JSON.parse(fs.readFileSync(path.join(tmp, 'config.json'), 'utf8'));
    expect(cfg.architectures).toEqual([config.arch === 'backpack' ? 'BackpackGPT2LMHeadModel' : 'GPT2LMHeadModel']);
    expect(cfg.vocab_size).toBe(32);
    expect(cfg.real_vocab_size).toBe(30);
    const loaded = await loadModel(tmp);
    expect(loaded.config).toEqual(model.config);
    expect(Buffer.from(loaded.getParams().buffer).equals(Buffer.from(model.getParams().buffer))).toBe(true);
    const a = await model.forward(tokens, { batch: 1, seq: 8, logits: true });
    const b = await loaded.forward(tokens, { batch: 1, seq: 8, logits: true });
    expect(b.logits).toEqual(a.logits);
  });
});

describe('hand-built safetensors files', () => {
  /** Writes the model's tensors by hand in the HF layout, optionally mutating the map first. */
  function handBuilt(dtype: 'F32' | 'F16' | 'BF16', mutate?: (m: Map<string, TensorToWrite>) => void) {
    const model = createModel(backpack, 3);
    const p = model.getParams();
    const m = new Map<string, TensorToWrite>();
    for (const t of model.tensors) {
      const src = p.subarray(t.offset, t.offset + t.size);
      if (t.conv1d) {
        const [out, inF] = t.shape;
        const data = new Float32Array(t.size);
        for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) data[i * out + o] = src[o * inF + i];
        m.set(t.key, { dtype, shape: [inF, out], data });
      } else {
        m.set(t.key, { dtype, shape: t.shape, data: new Float32Array(src) });
      }
    }
    // aliases written by other tools are accepted and ignored
    m.set('lm_head.weight', { dtype, shape: [32, 16], data: new Float32Array(p.subarray(0, 32 * 16)) });
    m.set('backpack.gpt2_model.h.0.attn.masked_bias', { dtype: 'F32', shape: [], data: new Float32Array([-1e4]) });
    mutate?.(m);
    writeSafetensors(path.join(tmp, 'model.safetensors'), m);
    fs.writeFileSync(
      path.join(tmp, 'config.json'),
      JSON.stringify({ model_type: 'gpt2', architectures: ['BackpackGPT2LMHeadModel'], vocab_size: 32, real_vocab_size: 30, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 4, num_senses: 4, sense_intermediate_scale: 2, scale_attn_by_inverse_layer_idx: true, layer_norm_epsilon: 1e-5 }),
    );
    return model;
  }

  test('F32 file with Conv1D [in,out] weights loads to the same model', async () => {
    const model = handBuilt('F32');
    const loaded = await loadModel(tmp);
    expect(loaded.getParams()).toEqual(model.getParams());
  });

  test.each(['F16', 'BF16'] as const)('%s weights are converted on load', async (dtype) => {
    const model = handBuilt(dtype);
    const loaded = await loadModel(tmp);
    const a = model.getParams(), b = loaded.getParams();
    const tol = dtype === 'F16' ? 1e-3 : 8e-3;
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), 1e-2));
    expect(worst).toBeLessThan(tol);
    expect(worst).toBeGreaterThan(0);
  });

  test('a tensor with the wrong shape is rejected by name', async () => {
    handBuilt('F32', (m) => m.set('backpack.sense_weight_net.c_attn.weight', { dtype: 'F32', shape: [16, 32], data: new Float32Array(512) }));
    await expect(loadModel(tmp)).rejects.toThrow(/backpack\.sense_weight_net\.c_attn\.weight.*shape \[16, 32\].*\[32, 16\]/);
  });

  test('a missing tensor is rejected', async () => {
    handBuilt('F32', (m) => m.delete('backpack.sense_network.block.ln_2.bias'));
    await expect(loadModel(tmp)).rejects.toThrow(/missing tensor "backpack\.sense_network\.block\.ln_2\.bias"/);
  });

  test('an unknown extra tensor is rejected', async () => {
    handBuilt('F32', (m) => m.set('backpack.extra.weight', { dtype: 'F32', shape: [2], data: new Float32Array(2) }));
    await expect(loadModel(tmp)).rejects.toThrow(/unexpected tensor "backpack\.extra\.weight"/);
  });

  test('a truncated file is rejected', async () => {
    handBuilt('F32');
    const file = path.join(tmp, 'model.safetensors');
    const buf = fs.readFileSync(file);
    fs.writeFileSync(file, buf.subarray(0, buf.length - 10));
    await expect(loadModel(tmp)).rejects.toThrow(/model\.safetensors/);
  });

  test('overlapping offsets are rejected', async () => {
    const header = JSON.stringify({
      'backpack.gpt2_model.wte.weight': { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      'backpack.gpt2_model.wpe.weight': { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    });
    handBuilt('F32');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    fs.writeFileSync(path.join(tmp, 'model.safetensors'), Buffer.concat([len, Buffer.from(header), Buffer.alloc(12)]));
    await expect(loadModel(tmp)).rejects.toThrow(/model\.safetensors/);
  });

  test('a huge header length is rejected before reading it', async () => {
    handBuilt('F32');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(200_000_000));
    fs.writeFileSync(path.join(tmp, 'model.safetensors'), Buffer.concat([len, Buffer.from('{}')]));
    await expect(loadModel(tmp)).rejects.toThrow(/header/i);
  });

  test('config errors name the field', async () => {
    handBuilt('F32');
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 32, n_positions: 16, n_embd: 15, n_layer: 2, n_head: 4 }));
    await expect(loadModel(tmp)).rejects.toThrow(/config\.json.*nEmbd 15 is not divisible by nHead 4/);
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 32, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 4, activation_function: 'relu' }));
    await expect(loadModel(tmp)).rejects.toThrow(/activation_function/);
  });
});
