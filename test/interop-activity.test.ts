/**
 * The `model.import` activity against a real HTTP server on 127.0.0.1: first-download pinning,
 * verification on later downloads, resume after a cut connection, mirrors, local paths.
 */
import * as fs from 'fs';
import * as path from 'path';
import { importActivity } from '../activities/import';
import { NonRetryableError } from '../pipelines/activity';
import { RELEASED_MODELS } from '../native/interop/released';
import { readSafetensors } from '../native/safetensors';
import { activityContext, tempDir } from './helpers/eval-ctx';
import { startMirrorServer, type MirrorServer } from './helpers/mirror-server';

const FIXTURES = path.join(__dirname, 'fixtures', 'interop');
const CKPT = 'lightning-backpack.ckpt';
let server: MirrorServer;
let cache: string;

beforeAll(async () => {
  cache = tempDir('interop-cache-');
  process.env.PIPELINE_CACHE_DIR = cache;
  server = await startMirrorServer(FIXTURES, { cutAfterBytes: { 'lightning-transformer.ckpt': 20_000 } });
});
afterAll(async () => {
  await server.close();
  fs.rmSync(cache, { recursive: true, force: true });
  delete process.env.PIPELINE_CACHE_DIR;
});

async function run(params: Record<string, unknown>) {
  const ctx = activityContext('import', {});
  const summary = (await importActivity.run(importActivity.params.parse(params), ctx)) as Record<string, unknown>;
  return { summary, ctx, modelDir: path.join(ctx.outDir, 'model') };
}

describe('model.import', () => {
  test('URL without a published sha256: first download pins it, later downloads are verified against the pin', async () => {
    const url = `${server.url}/${CKPT}`;
    const first = await run({ model: 'tiny-backpack', source: 'lightning', url });
    expect(first.summary).toMatchObject({ model: 'tiny-backpack', source: 'lightning', verifiedBy: 'first download (now pinned)', size: fs.statSync(path.join(FIXTURES, CKPT)).size });
    expect(first.ctx.logs.join('\n')).toMatch(/had no published sha256; pinned [0-9a-f]{64}/);
    const pin = JSON.parse(fs.readFileSync(first.summary.pinFile as string, 'utf8'));
    expect(pin).toMatchObject({ url, sha256: first.summary.sha256 });
    expect([...readSafetensors(path.join(first.modelDir, 'model.safetensors')).tensors.keys()]).toContain('backpack.sense_weight_net.c_attn.weight');
    expect(JSON.parse(fs.readFileSync(path.join(first.modelDir, 'import.json'), 'utf8'))).toMatchObject({ model: 'tiny-backpack', sha256: first.summary.sha256 });

    const second = await run({ model: 'tiny-backpack', source: 'lightning', url });
    expect(second.summary).toMatchObject({ verifiedBy: 'pinned sha256', sha256: first.summary.sha256 });
    // A declared sha256 that contradicts the pin is refused before any transfer.
    await expect(run({ model: 'tiny-backpack', source: 'lightning', url, sha256: 'a'.repeat(64) })).rejects.toThrow(/differs from the one pinned at first download/);
  });

  test('a wrong declared sha256 or size discards the download and is not retried', async () => {
    const err = await run({ model: 'other', source: 'lightning', url: `${server.url}/lightning-backpack-shrink-fp16.ckpt`, sha256: 'b'.repeat(64) }).catch((e) => e);
    expect(err).toBeInstanceOf(NonRetryableError);
    expect(err.message).toMatch(/checksum mismatch/);
    expect(fs.existsSync(path.join(cache, 'checkpoints', 'other', 'lightning-backpack-shrink-fp16.ckpt'))).toBe(false);
  });

  test('an interrupted transfer resumes with a Range request', async () => {
    const url = `${server.url}/lightning-transformer.ckpt`;
    await expect(run({ model: 'tiny-transformer', source: 'lightning', url })).rejects.toThrow(/run again to resume/);
    const ok = await run({ model: 'tiny-transformer', source: 'lightning', url });
    expect(ok.summary).toMatchObject({ source: 'lightning', parameters: expect.any(Number) });
    const ranged = server.requests.filter((r) => r.path === 'lightning-transformer.ckpt' && r.range);
    expect(ranged[0].range).toBe('bytes=20000-');
    expect(ranged[0].status).toBe(206);
  });

  test('a released model id through a checkpoint mirror laid out like the canonical host', async () => {
    const released = RELEASED_MODELS.find((m) => m.id === 'backpack-micro')!;
    const mirror = tempDir('interop-mirror-');
    fs.mkdirSync(path.join(mirror, path.dirname(released.files[0].mirrorPath)), { recursive: true });
    fs.copyFileSync(path.join(FIXTURES, CKPT), path.join(mirror, released.files[0].mirrorPath));
    const { summary } = await run({ model: 'backpack-micro', mirror });
    expect(summary).toMatchObject({ model: 'backpack-micro', source: 'lightning' });
    fs.rmSync(mirror, { recursive: true, force: true });
  });

  test('a Hugging Face directory by local path, verified when a sha256 is given', async () => {
    const { summary, modelDir } = await run({ model: 'tiny-gpt2', source: 'hf-gpt2', path: path.join(FIXTURES, 'hf-gpt2') });
    expect(summary).toMatchObject({ source: 'hf-gpt2', verifiedBy: 'local path, not verified' });
    expect(JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'))).toMatchObject({ vocab_size: 64, real_vocab_size: 61 });
    const bad = await run({ model: 'tiny-gpt2', source: 'hf-gpt2', path: path.join(FIXTURES, 'hf-gpt2', 'pytorch_model.bin'), sha256: 'c'.repeat(64) }).catch((e) => e);
    expect(bad).toBeInstanceOf(NonRetryableError);
    expect(bad.message).toMatch(/expected sha256 c{64}, found [0-9a-f]{64}/);
  });

  test('bad parameters and hostile files are clear, non-retryable errors', async () => {
    await expect(run({ model: 'nope' })).rejects.toThrow(/"nope" is not a released model \(backpack-micro, .*\); give url or path/);
    await expect(run({ model: 'x', path: path.join(FIXTURES, CKPT) })).rejects.toThrow(/source .* is required/);
    const evil = await run({ model: 'x', source: 'lightning', path: path.join(FIXTURES, 'evil-os-system.pt') }).catch((e) => e);
    expect(evil).toBeInstanceOf(NonRetryableError);
    expect(evil.message).toMatch(/refused global posix\.system/);
    expect(() => importActivity.params.parse({ model: 'x', bogus: 1 })).toThrow();
  });

  test('the registry covers every released checkpoint of PAPER.md §9.1 and the GPT-2 family', () => {
    const ids = RELEASED_MODELS.map((m) => m.id);
    for (const id of ['backpack-micro', 'backpack-mini', 'backpack-small', 'transformer-micro', 'transformer-mini', 'transformer-small', 'backpack-mini-k1', 'backpack-mini-k4', 'backpack-mini-k16', 'backpack-mini-k64', 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl']) {
      expect(ids).toContain(id);
    }
    expect(RELEASED_MODELS.find((m) => m.id === 'transformer-small')!.files[0].url).toBe(
      'https://downloads.cs.stanford.edu/nlp/data/backpacks-acl2023/main/gpt2-small-flash-fp16.ckpt',
    );
    expect(RELEASED_MODELS.find((m) => m.id === 'backpack-mini-k64')!.files[0].url).toBe(
      'https://downloads.cs.stanford.edu/nlp/data/backpacks-acl2023/sense_ablation/backpack-mini-flash-fp16-vecs-64.ckpt',
    );
    expect(new Set(ids).size).toBe(ids.length);
  });
});
