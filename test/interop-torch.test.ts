/**
 * torch.save archives written by real PyTorch (test/fixtures/interop/make_fixtures.py) load to the
 * same tensors PyTorch saw.
 */
import * as path from 'path';
import { readSafetensors } from '../native/safetensors';
import { openTorchStateDict, TorchArchive } from '../native/interop/torch-archive';
import { ZipArchive } from '../native/interop/zip';
import { buildZip, PickleWriter, f32 } from './helpers/interop-builders';
import * as fs from 'fs';
import * as os from 'os';

const FIXTURES = path.join(__dirname, 'fixtures', 'interop');
const fixture = (name: string) => path.join(FIXTURES, name);

function expectSameTensors(checkpoint: string, expected: string, skip: (name: string) => boolean = () => false) {
  const sd = openTorchStateDict(fixture(checkpoint));
  try {
    const want = readSafetensors(fixture(expected)).tensors;
    const names = [...want.keys()].filter((n) => !n.startsWith('__'));
    expect([...sd.tensors.keys()].filter((n) => !skip(n)).sort()).toEqual(names.sort());
    for (const name of names) {
      const got = sd.archive.materialize(sd.tensors.get(name)!, name);
      const exp = want.get(name)!;
      expect({ name, shape: got.shape }).toEqual({ name, shape: exp.shape });
      if (exp.dtype === 'I64' || exp.dtype === 'BOOL' || exp.dtype === 'U8' || exp.dtype === 'I32') {
        expect(Buffer.from(got.raw).equals(Buffer.from(exp.raw))).toBe(true);
      } else {
        expect({ name, values: Array.from(got.data) }).toEqual({ name, values: Array.from(exp.data) });
      }
    }
    return sd;
  } finally {
    sd.archive.close();
  }
}

describe('torch.save archives from PyTorch', () => {
  test('views: shared storages, offsets, strides, 0-d, empty, fp16/bf16/f64/int/bool tensors', () => {
    const sd = expectSameTensors('views.pt', 'views.expected.safetensors');
    expect(sd.kind).toBe('state_dict');
    expect(sd.aliases.get('tied')).toBe('base');
    const dtypes = Object.fromEntries([...sd.tensors].map(([k, t]) => [k, t.dtype]));
    expect(dtypes).toMatchObject({ f16: 'F16', bf16: 'BF16', f64: 'F64', i64: 'I64', i32: 'I32', u8: 'U8', bool: 'BOOL', base: 'F32' });
    expect(sd.tensors.get('transposed')!.stride).toEqual([1, 5]);
    expect(sd.tensors.get('row_slice')!.offset).toBe(10);
  });

  test('Lightning checkpoint: state_dict with aliases and tied lm_head, OmegaConf hyper_parameters as data', () => {
    const sd = expectSameTensors('lightning-backpack.ckpt', 'lightning-backpack.expected.safetensors');
    expect(sd.kind).toBe('lightning');
    expect(sd.aliases.get('model.lm_head.weight')).toBe('model.transformer.gpt2_model.embeddings.word_embeddings.weight');
    expect(sd.aliases.get('model.transformer.content_model.embeddings.position_embeddings.weight')).toBe(
      'model.transformer.gpt2_model.embeddings.position_embeddings.weight',
    );
    expect(sd.topLevelKeys).toEqual(expect.arrayContaining(['state_dict', 'optimizer_states', 'hyper_parameters', 'loops', 'callbacks']));
    expect(sd.info).toMatchObject({ epoch: 0, global_step: 3, 'pytorch-lightning_version': '1.9.4' });
    const hp = sd.hyperParameters as { model: { config: { n_head: number; n_embd: number } }; training: { lr: number } };
    expect(hp.model.config.n_head).toBe(2);
    expect(hp.model.config.n_embd).toBe(8);
    expect(hp.training.lr).toBeCloseTo(6e-4, 10);
  });

  test('fp16 Lightning checkpoint (shrink ablation variant)', () => {
    const sd = expectSameTensors('lightning-backpack-shrink-fp16.ckpt', 'lightning-backpack-shrink-fp16.expected.safetensors');
    expect([...sd.tensors.values()].every((t) => t.dtype === 'F16')).toBe(true);
  });

  test('Lightning Transformer checkpoint', () => {
    expectSameTensors('lightning-transformer.ckpt', 'lightning-transformer.expected.safetensors');
  });

  test('HF pytorch_model.bin files (backpack with module aliases, GPT-2 with mask buffers)', () => {
    const bp = expectSameTensors('hf-backpack/pytorch_model.bin', 'hf-backpack.expected.safetensors', (n) => /\.attn\.(masked_)?bias$/.test(n));
    expect(bp.aliases.get('backpack.word_embeddings.weight')).toBe('backpack.gpt2_model.wte.weight');
    expect(bp.aliases.get('lm_head.weight')).toBe('backpack.gpt2_model.wte.weight');
    const g = expectSameTensors('hf-gpt2/pytorch_model.bin', 'hf-gpt2.expected.safetensors', (n) => /\.attn\.(masked_)?bias$/.test(n));
    expect(g.tensors.get('h.0.attn.bias')!.dtype).toBe('BOOL');
  });

  test('opening reads no storage until a tensor is materialized', () => {
    const archive = TorchArchive.open(fixture('views.pt'));
    try {
      expect(archive.root).toBeInstanceOf(Map);
      expect(archive.prefix).toBe('views/');
      expect(archive.bigEndian).toBe(false);
    } finally {
      archive.close();
    }
  });

  test('the legacy (torch < 1.6) format is refused with a clear message', () => {
    expect(() => TorchArchive.open(fixture('legacy.pt'))).toThrow(/legacy\.pt: legacy torch\.save format \(torch < 1\.6\) is not supported/);
  });

  test('ZIP64 entry records (sizes and offsets past 4 GiB are stored in the extra field) are followed', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'interop-zip64-'));
    try {
      const p = new PickleWriter().proto().emptyDict().put().str('w').tensor({ key: '0', numel: 3, size: [3], stride: [1] }).setitem().stop();
      const file = path.join(dir, 'zip64.pt');
      fs.writeFileSync(file, buildZip([
        { name: 'archive/data.pkl', data: p.bytes(), zip64: true },
        { name: 'archive/data/0', data: f32([1.5, 2.5, -3]), zip64: true },
      ]));
      const zip = ZipArchive.open(file);
      expect(zip.entries.get('archive/data/0')!.size).toBe(12);
      zip.close();
      const sd = openTorchStateDict(file);
      expect(Array.from(sd.archive.materialize(sd.tensors.get('w')!).data)).toEqual([1.5, 2.5, -3]);
      sd.archive.close();
      // A ZIP64 field too short for the values it must carry is refused.
      const bad = path.join(dir, 'zip64-short.pt');
      fs.writeFileSync(bad, buildZip([{ name: 'archive/data.pkl', data: p.bytes(), zip64: true, zip64ExtraLength: 16 }]));
      expect(() => ZipArchive.open(bad)).toThrow(/entry "archive\/data\.pkl": ZIP64 extra field too short for offset/);
      // torch.save always writes a ZIP64 end record, so every PyTorch fixture above went through that path too.
      expect(fs.readFileSync(fixture('views.pt')).includes(Buffer.from([0x50, 0x4b, 0x06, 0x06]))).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
