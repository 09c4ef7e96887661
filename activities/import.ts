/**
 * `model.import`: a released or foreign checkpoint (authors' Lightning .ckpt, Hugging Face
 * backpack-gpt2, Hugging Face GPT-2 family) → our checkpoint in ctx.outDir/model/ (config.json +
 * model.safetensors + import.json). Downloads are cached under $PIPELINE_CACHE_DIR/checkpoints,
 * resumable, verified by size and sha256 (pinned at first download when nobody published one).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { z } from 'zod';
import { defineActivity, NonRetryableError, throwIfAborted, type AnyActivity } from '../pipelines/activity';
import { importCheckpoint, type ImportSourceKind } from '../native/interop';
import { findReleasedModel, RELEASED_MODELS, type ReleasedFile } from '../native/interop/released';
import { fetchCheckpointFile, verifyLocalFile, type FetchResult } from '../native/interop/fetch';
import { ChecksumError, MissingSourceError } from '../datasets/download';
import { ImportError } from '../native/interop/model-tensors';
import { CheckpointError } from '../native/interop/torch-archive';
import { ModelConfigError } from '../native/config';

export function checkpointCacheDir(): string {
  return path.join(process.env.PIPELINE_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'backpack-pipeline'), 'checkpoints');
}

const SOURCES = ['lightning', 'hf-backpack', 'hf-gpt2'] as const;

export const importParams = z
  .object({
    /** Our model id. A released id (native/interop/released.ts) supplies source and URLs itself. */
    model: z.string().regex(/^[A-Za-z0-9._-]+$/, 'a plain id'),
    source: z.enum(SOURCES).optional(),
    /** http(s) URL of the weight file (another model than a released one). */
    url: z.string().url().optional(),
    /** Local weight file or Hugging Face model directory (no download). */
    path: z.string().optional(),
    /** config.json next to `url` for Hugging Face sources (else shapes and the size table decide). */
    configUrl: z.string().url().optional(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    size: z.number().int().positive().optional(),
    /** Head count for Lightning checkpoints whose hyper_parameters lack it. */
    nHead: z.number().int().positive().optional(),
    /** Directory or http(s) base URL laid out like the canonical hosts; default env PIPELINE_CHECKPOINT_MIRROR. */
    mirror: z.string().optional(),
  })
  .strict();

export type ImportParams = z.infer<typeof importParams>;

export const importActivity = defineActivity({
  name: 'model.import',
  version: '1',
  description: 'Download (resumable, verified) and convert a released or foreign checkpoint to our HF-layout safetensors checkpoint.',
  params: importParams,
  resources: { cpus: 1, memoryMb: 4096 },
  async run(params, ctx) {
    const released = findReleasedModel(params.model);
    if (!params.url && !params.path && !released) {
      throw new NonRetryableError(
        `model.import: "${params.model}" is not a released model (${RELEASED_MODELS.map((m) => m.id).join(', ')}); give url or path`,
      );
    }
    if (params.url && params.path) throw new NonRetryableError('model.import: give url or path, not both');
    const source: ImportSourceKind | undefined = params.source ?? released?.source;
    if (!source) throw new NonRetryableError('model.import: source (lightning | hf-backpack | hf-gpt2) is required with url or path');

    const cacheDir = checkpointCacheDir();
    let input: string;
    let verification: Record<string, unknown>;
    try {
      if (params.path) {
        if (!fs.existsSync(params.path)) throw new NonRetryableError(`model.import: path ${params.path} does not exist`);
        input = params.path;
        const weights = fs.statSync(input).isDirectory() ? undefined : input;
        if (weights && (params.sha256 || params.size)) {
          const v = await verifyLocalFile(weights, params);
          verification = { sha256: v.sha256, size: v.size, verifiedBy: 'declared sha256' };
        } else verification = { verifiedBy: 'local path, not verified' };
      } else {
        const files: ReleasedFile[] = params.url
          ? [
              { file: path.basename(new URL(params.url).pathname) || 'weights', url: params.url, sha256: params.sha256, size: params.size, mirrorPath: '' },
              ...(params.configUrl ? [{ file: 'config.json', url: params.configUrl, mirrorPath: '' }] : []),
            ]
          : released!.files.map((f, i) => (i === 0 ? { ...f, sha256: params.sha256 ?? f.sha256, size: params.size ?? f.size } : f));
        const mirror = params.mirror ?? process.env.PIPELINE_CHECKPOINT_MIRROR;
        const results: FetchResult[] = [];
        for (const [i, f] of files.entries()) {
          throwIfAborted(ctx.signal);
          const url = mirror && f.mirrorPath ? joinMirror(mirror, f.mirrorPath) : f.url;
          results.push(
            await fetchCheckpointFile({
              url,
              cacheDir,
              group: params.model,
              file: f.file,
              sha256: f.sha256,
              size: f.size,
              signal: ctx.signal,
              onProgress: (fraction, bytes) => ctx.progress({ fraction: (i + fraction) / (files.length + 1), message: `${f.file}: ${(bytes / 1e6).toFixed(0)} MB` }),
            }),
          );
        }
        // HF sources: the directory holds the weights and config.json, as on the hub.
        input = source === 'lightning' ? results[0].path : path.dirname(results[0].path);
        verification = { sha256: results[0].sha256, size: results[0].size, verifiedBy: results[0].verifiedBy, pinFile: results[0].pinFile };
        if (results[0].verifiedBy.startsWith('first download')) {
          ctx.log(`model.import: ${files[0].url} had no published sha256; pinned ${results[0].sha256} (${results[0].size} bytes) in ${results[0].pinFile}`);
        }
      }
      throwIfAborted(ctx.signal);
      ctx.progress({ message: `converting ${source} checkpoint`, fraction: 0.95 });
      const modelDir = path.join(ctx.outDir, 'model');
      const summary = importCheckpoint(source, input, modelDir, { nHead: params.nHead });
      const provenance = JSON.parse(fs.readFileSync(path.join(modelDir, 'import.json'), 'utf8'));
      fs.writeFileSync(path.join(modelDir, 'import.json'), JSON.stringify({ ...provenance, model: params.model, ...verification }, null, 2) + '\n');
      return { model: params.model, source, parameters: summary.parameters, tensors: summary.tensors, config: summary.config, ...verification };
    } catch (err) {
      // Bad bytes or a wrong file will not get better on retry.
      if (err instanceof ChecksumError || err instanceof MissingSourceError || err instanceof ImportError || err instanceof CheckpointError || err instanceof ModelConfigError) {
        throw new NonRetryableError((err as Error).message);
      }
      throw err;
    }
  },
});

function joinMirror(mirror: string, relative: string): string {
  return /^https?:\/\//.test(mirror) ? `${mirror.replace(/\/+$/, '')}/${relative}` : path.join(mirror, relative);
}

export const importActivities: AnyActivity[] = [importActivity];
