/**
 * `pipeline model inspect | import | export`: the command modules the CLI table loads, run with argv
 * as the CLI passes it, output captured.
 */
import * as fs from 'fs';
import * as path from 'path';
import { forCommand } from '../native/interop/cli';
import { COMMANDS } from '../pipelines/commands';
import { tempDir } from './helpers/eval-ctx';

const FIXTURES = path.join(__dirname, 'fixtures', 'interop');

async function cli(sub: 'inspect' | 'import' | 'export', argv: string[]) {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  try {
    const code = await forCommand(sub).run(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe('pipeline model …', () => {
  test('the commands are in the CLI table', () => {
    expect(COMMANDS.map((c) => c.path)).toEqual(expect.arrayContaining(['model inspect', 'model import', 'model export']));
  });

  test('inspect a Lightning checkpoint (text)', async () => {
    const r = await cli('inspect', [path.join(FIXTURES, 'lightning-transformer.ckpt')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/format\s+torch-zip \(Lightning checkpoint\)/);
    expect(r.stdout).toMatch(/tensors\s+28 unique \+ 1 aliases \(tied\/shared\)/);
    expect(r.stdout).toMatch(/model\.lm_head\.weight\s+F32\s+\[40, 8\]\s+= model\.transformer\.embeddings\.word_embeddings\.weight/);
    expect(r.stdout).toMatch(/top level\s+.*optimizer_states/);
  });

  test('inspect --json prints exactly one JSON document', async () => {
    const r = await cli('inspect', [path.join(FIXTURES, 'hf-backpack'), '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ format: 'torch-zip', kind: 'state_dict', config: { num_senses: 4 } });
    expect(doc.tensors.find((t: { name: string }) => t.name === 'backpack.word_embeddings.weight').aliasOf).toBe('backpack.gpt2_model.wte.weight');
  });

  test('import then export then inspect', async () => {
    const dir = tempDir('interop-cli-');
    const ours = path.join(dir, 'ours');
    const imported = await cli('import', ['lightning', path.join(FIXTURES, 'lightning-backpack.ckpt'), ours, '--json']);
    expect(imported.code).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ config: { arch: 'backpack', numSenses: 4 }, tensors: 44 });
    const exported = await cli('export', [ours, path.join(dir, 'hf')]);
    expect(exported.code).toBe(0);
    expect(exported.stdout).toMatch(/backpack, 44 tensors \(Hugging Face layout\)/);
    const inspected = await cli('inspect', [path.join(dir, 'hf'), '--json']);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ format: 'safetensors', dtypes: { F32: 44 } });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('usage errors exit 2, failures exit 1 with the reason', async () => {
    expect((await cli('inspect', [])).code).toBe(2);
    expect((await cli('import', ['torch', 'a', 'b'])).stderr).toMatch(/unknown source "torch"/);
    const bad = await cli('inspect', [path.join(FIXTURES, 'evil-os-system.pt')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/refused global posix\.system/);
    const notWeights = await cli('inspect', [path.join(FIXTURES, 'make_fixtures.py')]);
    expect(notWeights.code).toBe(1);
    expect(notWeights.stderr).toMatch(/neither a safetensors file nor a torch\.save zip archive/);
  });
});
