/**
 * `model.train` with `source: released` imports the authors' checkpoint instead of training: the
 * switch behind `--set train.source=released`. The released file comes from a checkpoint mirror laid
 * out like the canonical host (PIPELINE_CHECKPOINT_MIRROR), here holding a tiny PyTorch-made fixture.
 */
import * as fs from 'fs';
import * as path from 'path';
import { trainActivity } from '../activities/train';
import { NonRetryableError } from '../pipelines/activity';
import { RELEASED_MODELS } from '../native/interop/released';
import { readSafetensors } from '../native/safetensors';
import { activityContext, tempDir } from './helpers/eval-ctx';

const FIXTURE = path.join(__dirname, 'fixtures', 'interop', 'lightning-backpack.ckpt');
const shape = { arch: 'backpack', nEmbd: 8, nLayer: 1, nHead: 2, steps: 1, batchSize: 1, seqLen: 8 };

test('source: released imports the released checkpoint and needs no token shards', async () => {
  const released = RELEASED_MODELS.find((m) => m.id === 'backpack-micro')!;
  const mirror = tempDir('released-mirror-');
  fs.mkdirSync(path.join(mirror, path.dirname(released.files[0].mirrorPath)), { recursive: true });
  fs.copyFileSync(FIXTURE, path.join(mirror, released.files[0].mirrorPath));
  const saved = { cache: process.env.PIPELINE_CACHE_DIR, mirror: process.env.PIPELINE_CHECKPOINT_MIRROR };
  process.env.PIPELINE_CACHE_DIR = tempDir('released-cache-');
  process.env.PIPELINE_CHECKPOINT_MIRROR = mirror;
  try {
    const ctx = activityContext('train', {});
    const summary = (await trainActivity.run(trainActivity.params.parse({ ...shape, source: 'released', releasedModel: 'backpack-micro' }), ctx)) as Record<string, unknown>;
    expect(summary).toMatchObject({ model: 'backpack-micro', source: 'lightning' });
    const tensors = readSafetensors(path.join(ctx.outDir, 'model', 'model.safetensors')).tensors;
    expect([...tensors.keys()]).toContain('backpack.sense_network.final_mlp.c_proj.weight');
    expect(JSON.parse(fs.readFileSync(path.join(ctx.outDir, 'model', 'config.json'), 'utf8')).num_senses).toBeGreaterThan(0);
  } finally {
    for (const [k, v] of [['PIPELINE_CACHE_DIR', saved.cache], ['PIPELINE_CHECKPOINT_MIRROR', saved.mirror]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('source: released with an unknown model id fails clearly and is not retried', async () => {
  const ctx = activityContext('train', {});
  const err: Error = await trainActivity.run(trainActivity.params.parse({ ...shape, source: "released", releasedModel: "transformer-tiny" }), ctx).catch((e: Error) => e) as Error;
  expect(err).toBeInstanceOf(NonRetryableError);
  expect(err.message).toMatch(/"transformer-tiny" is not a released model \(known: backpack-micro/);
});
