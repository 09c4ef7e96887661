/**
 * Importers and exporter: PyTorch-made fixtures convert to our HF-layout checkpoints that the native
 * engine loads with the logits PyTorch computed; our export → our import is bit-identical.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readSafetensors, writeSafetensors } from '../native/safetensors';
import { convertCheckpoint, importCheckpoint, exportHf, inspectCheckpoint, ImportError, type ImportSourceKind } from '../native/interop';
import { lightningKeyMap } from '../native/interop/lightning';
import { expectedTensors } from '../native/interop/model-tensors';
import { loadModel } from '../native/index';
import { buildTorchZip, PickleWriter, f32 } from './helpers/interop-builders';

const FIXTURES = path.join(__dirname, 'fixtures', 'interop');
const fixture = (name: string) => path.join(FIXTURES, name);
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interop-import-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const CASES: { label: string; kind: ImportSourceKind; input: string; expected: string; arch: string; senses?: number; shrink?: boolean; vocab: number; real: number; scale: boolean }[] = [
  { label: 'Lightning Backpack', kind: 'lightning', input: 'lightning-backpack.ckpt', expected: 'lightning-backpack', arch: 'backpack', senses: 4, shrink: false, vocab: 40, real: 40, scale: true },
  { label: 'Lightning Backpack, shrink ablation, fp16', kind: 'lightning', input: 'lightning-backpack-shrink-fp16.ckpt', expected: 'lightning-backpack-shrink-fp16', arch: 'backpack', senses: 2, shrink: true, vocab: 40, real: 40, scale: true },
  { label: 'Lightning Transformer', kind: 'lightning', input: 'lightning-transformer.ckpt', expected: 'lightning-transformer', arch: 'gpt2', vocab: 40, real: 40, scale: true },
  { label: 'HF backpack-gpt2 (pytorch_model.bin)', kind: 'hf-backpack', input: 'hf-backpack', expected: 'hf-backpack', arch: 'backpack', senses: 4, shrink: false, vocab: 40, real: 40, scale: true },
  { label: 'HF GPT-2 (no prefix, 61 rows padded to 64)', kind: 'hf-gpt2', input: 'hf-gpt2', expected: 'hf-gpt2', arch: 'gpt2', vocab: 64, real: 61, scale: false },
];

describe.each(CASES)('$label', (c) => {
  const outDir = () => path.join(dir, c.expected);

  test('converts to a complete HF-layout checkpoint with the right config', () => {
    const summary = importCheckpoint(c.kind, fixture(c.input), outDir());
    expect(summary.config).toMatchObject({ arch: c.arch, vocabSize: c.vocab, realVocabSize: c.real, nEmbd: 8, nLayer: 2, nHead: 2, nPositions: 16, scaleAttnByInverseLayerIdx: c.scale });
    if (c.senses) expect(summary.config).toMatchObject({ numSenses: c.senses, shrinkSenseMlp: c.shrink });
    const { tensors, metadata } = readSafetensors(path.join(outDir(), 'model.safetensors'));
    expect(metadata).toEqual({ format: 'pt' });
    expect([...tensors.keys()].sort()).toEqual([...expectedTensors(summary.config).keys()].sort());
    expect([...tensors.values()].every((t) => t.dtype === 'F32')).toBe(true);
    const json = JSON.parse(fs.readFileSync(path.join(outDir(), 'config.json'), 'utf8'));
    expect(json).toMatchObject({ model_type: 'gpt2', n_embd: 8, vocab_size: c.vocab, real_vocab_size: c.real });
    expect(JSON.parse(fs.readFileSync(path.join(outDir(), 'import.json'), 'utf8')).source).toBe(c.kind);
  });

  test('the native engine reproduces the logits PyTorch computed from the original file', async () => {
    const expected = readSafetensors(fixture(`${c.expected}.expected.safetensors`)).tensors;
    const tokens = Int32Array.from(expected.get('__tokens__')!.data);
    const want = expected.get('__logits__')!; // [1, 8, rows]
    const model = await loadModel(outDir());
    try {
      const { logits } = await model.forward(tokens, { batch: 1, seq: tokens.length, logits: true });
      const rows = want.shape[2];
      let maxDiff = 0;
      for (let s = 0; s < tokens.length; s++) {
        for (let v = 0; v < rows; v++) maxDiff = Math.max(maxDiff, Math.abs(logits![s * c.vocab + v] - want.data[s * rows + v]));
        // Padding rows of a padded vocabulary are zero embeddings: their logits are exactly 0.
        for (let v = rows; v < c.vocab; v++) expect(logits![s * c.vocab + v]).toBe(0);
      }
      expect(maxDiff).toBeLessThan(1e-4); // PAPER.md §9.3 acceptance: fp32, ≤ 1e-4 max abs diff
    } finally {
      model.dispose();
    }
  });

  test('our export → our import is bit-identical', () => {
    if (c.shrink) {
      expect(() => exportHf(outDir(), path.join(dir, `${c.expected}-hf`))).toThrow(/hard-codes sense MLPs of width 4·n_embd/);
    }
    const hfDir = path.join(dir, `${c.expected}-hf`);
    exportHf(outDir(), hfDir, { allowNonStandardBackpack: true });
    const reimported = path.join(dir, `${c.expected}-again`);
    importCheckpoint(c.arch === 'backpack' ? 'hf-backpack' : 'hf-gpt2', hfDir, reimported);
    expect(fs.readFileSync(path.join(reimported, 'model.safetensors')).equals(fs.readFileSync(path.join(outDir(), 'model.safetensors')))).toBe(true);
    expect(fs.readFileSync(path.join(reimported, 'config.json'), 'utf8')).toBe(fs.readFileSync(path.join(outDir(), 'config.json'), 'utf8'));
    const hfConfig = JSON.parse(fs.readFileSync(path.join(hfDir, 'config.json'), 'utf8'));
    if (c.arch === 'backpack') expect(hfConfig.auto_map.AutoModelForCausalLM).toMatch(/BackpackGPT2LMHeadModel$/);
    else expect(hfConfig.architectures).toEqual(['GPT2LMHeadModel']);
  });
});

describe('Lightning mapping details', () => {
  test('the shifted LayerNorm mapping of PAPER.md §9.3 for L = 3', () => {
    const map = Object.fromEntries(lightningKeyMap('gpt2', 3).map((m) => [m.from, `${m.to} ${m.op}`]));
    expect(map['transformer.ln_0.weight']).toBe('transformer.h.0.ln_1.weight copy');
    expect(map['transformer.layers.0.norm1.bias']).toBe('transformer.h.0.ln_2.bias copy');
    expect(map['transformer.layers.0.norm2.weight']).toBe('transformer.h.1.ln_1.weight copy');
    expect(map['transformer.layers.1.norm2.weight']).toBe('transformer.h.2.ln_1.weight copy');
    expect(map['transformer.layers.2.norm2.weight']).toBe('transformer.ln_f.weight copy');
    expect(map['transformer.layers.1.mixer.Wqkv.weight']).toBe('transformer.h.1.attn.c_attn.weight T');
    const bp = Object.fromEntries(lightningKeyMap('backpack', 12).map((m) => [m.from, `${m.to} ${m.op}`]));
    expect(bp['transformer.contextualization_attn.Wqkv.weight']).toBe('backpack.sense_weight_net.c_attn.weight copy');
    expect(bp['transformer.content_model.final_mlp.fc2.weight']).toBe('backpack.sense_network.final_mlp.c_proj.weight T');
    // Backpack-Small: 164 unique tensors = the HF key table of §9.4.
    expect(lightningKeyMap('backpack', 12).length).toBe(164);
  });

  test('Backpack-Small shapes give the paper parameter count (170,083,584)', () => {
    const c = { arch: 'backpack' as const, vocabSize: 50264, realVocabSize: 50257, nPositions: 512, nEmbd: 768, nLayer: 12, nHead: 12, numSenses: 16, senseIntermediateScale: 4, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 };
    let n = 0;
    for (const shape of expectedTensors(c).values()) n += shape.reduce((a, b) => a * b, 1);
    expect(n).toBe(170_083_584);
    expect(expectedTensors({ ...c, arch: 'gpt2' }).size).toBe(148);
  });

  test('n_head: explicit option, hyper_parameters, or an error naming what to pass', () => {
    expect(convertCheckpoint('lightning', fixture('lightning-backpack.ckpt')).provenance.nHeadFrom).toBe('hyper_parameters');
    expect(convertCheckpoint('lightning', fixture('lightning-backpack.ckpt'), { nHead: 4 }).config.nHead).toBe(4);
    // A bare state_dict with d = 8 has neither hyper_parameters nor a size-table entry.
    const p = new PickleWriter().proto().emptyDict().put();
    p.str('state_dict').emptyDict().put();
    p.str('model.transformer.embeddings.word_embeddings.weight').tensor({ key: '0', numel: 16, size: [2, 8], stride: [8, 1] }).setitem();
    p.str('model.transformer.embeddings.position_embeddings.weight').tensor({ key: '0', numel: 16, size: [2, 8], stride: [8, 1] }).setitem();
    p.str('model.transformer.layers.0.mixer.Wqkv.weight').tensor({ key: '0', numel: 16, size: [2, 8], stride: [8, 1] }).setitem();
    p.setitem().stop();
    const file = path.join(dir, 'no-heads.ckpt');
    fs.writeFileSync(file, buildTorchZip(p.bytes(), { '0': f32(new Array(16).fill(0)) }));
    expect(() => convertCheckpoint('lightning', file)).toThrow(/cannot tell n_head for n_embd 8: hyper_parameters has no model\.config\.n_head; pass nHead/);
  });

  test('wrong inputs get clear errors', () => {
    expect(() => convertCheckpoint('lightning', fixture('hf-gpt2/pytorch_model.bin'))).toThrow(ImportError);
    expect(() => convertCheckpoint('lightning', fixture('hf-gpt2/pytorch_model.bin'))).toThrow(/not a checkpoint of the authors' Backpack or Transformer/);
    expect(() => convertCheckpoint('hf-backpack', fixture('hf-gpt2'))).toThrow(/not a Backpack \(backpack\.\*\) checkpoint/);
    expect(() => convertCheckpoint('hf-gpt2', fixture('views.pt'))).toThrow(/not a GPT-2 checkpoint/);
    expect(() => convertCheckpoint('hf-gpt2', dir)).toThrow(/holds neither model\.safetensors nor pytorch_model\.bin/);
  });
});

describe('Hugging Face safetensors variants', () => {
  /** The hf-backpack fixture re-saved the way transformers saves tied weights: one name kept, others dropped or copied. */
  function resave(name: string, edit: (t: Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>) => void): string {
    const src = readSafetensors(fixture('hf-backpack.expected.safetensors')).tensors;
    const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
    for (const [k, t] of src) if (!k.startsWith('__')) tensors.set(k, { dtype: 'F32', shape: t.shape, data: t.data });
    edit(tensors);
    const out = path.join(dir, name);
    fs.mkdirSync(out, { recursive: true });
    fs.copyFileSync(fixture('hf-backpack/config.json'), path.join(out, 'config.json'));
    writeSafetensors(path.join(out, 'model.safetensors'), tensors, { format: 'pt' });
    return out;
  }

  test('wte stored only under its module alias, lm_head as a separate equal copy: same model as the .bin', () => {
    const hfDir = resave('hf-st-alias', (t) => {
      const wte = t.get('backpack.gpt2_model.wte.weight')!;
      t.delete('backpack.gpt2_model.wte.weight');
      t.set('backpack.word_embeddings.weight', wte);
      t.set('lm_head.weight', { ...wte, data: wte.data.slice() });
    });
    const fromSt = convertCheckpoint('hf-backpack', hfDir);
    const fromBin = convertCheckpoint('hf-backpack', fixture('hf-backpack'));
    expect(fromSt.config).toEqual(fromBin.config);
    for (const [k, t] of fromBin.tensors) expect(Buffer.from(fromSt.tensors.get(k)!.data.buffer, fromSt.tensors.get(k)!.data.byteOffset, fromSt.tensors.get(k)!.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))).toBe(true);
  });

  test('an untied lm_head is refused', () => {
    const hfDir = resave('hf-st-untied', (t) => {
      const wte = t.get('backpack.gpt2_model.wte.weight')!;
      const other = wte.data.slice();
      other[0] += 1;
      t.set('lm_head.weight', { ...wte, data: other });
    });
    expect(() => convertCheckpoint('hf-backpack', hfDir)).toThrow(/"lm_head\.weight" differs from "backpack\.gpt2_model\.wte\.weight"; only tied weights are supported/);
  });
});

describe('inspect', () => {
  test('a Lightning checkpoint: keys, aliases, dtypes, parameter count, hyper-parameters', () => {
    const r = inspectCheckpoint(fixture('lightning-backpack.ckpt'));
    expect(r.format).toBe('torch-zip');
    expect(r.kind).toBe('lightning');
    expect(r.tensors.find((t) => t.name === 'model.lm_head.weight')).toMatchObject({ aliasOf: 'model.transformer.gpt2_model.embeddings.word_embeddings.weight', shape: [40, 8] });
    expect(r.tensors).toHaveLength(lightningKeyMap('backpack', 2).length + 5);
    const expected = readSafetensors(fixture('lightning-backpack.expected.safetensors')).tensors;
    let params = 0;
    for (const [name, t] of expected) if (!name.startsWith('__')) params += t.numel;
    expect(r.parameters).toBe(params);
    expect(r.dtypes).toEqual({ F32: lightningKeyMap('backpack', 2).length });
    expect((r.hyperParameters as { model: { config: { n_head: number } } }).model.config.n_head).toBe(2);
  });

  test('a safetensors model directory', () => {
    const out = path.join(dir, 'inspect-me');
    importCheckpoint('hf-gpt2', fixture('hf-gpt2'), out);
    const r = inspectCheckpoint(out);
    expect(r.format).toBe('safetensors');
    expect(r.metadata).toEqual({ format: 'pt' });
    expect(r.config).toMatchObject({ vocab_size: 64, real_vocab_size: 61 });
    expect(r.tensors.find((t) => t.name === 'transformer.wte.weight')!.shape).toEqual([64, 8]);
    expect(r.tensorBytes).toBe(r.parameters * 4);
  });
});
