/**
 * Finding what an eval activity needs among its upstream artifacts: checkpoints (config.json +
 * model.safetensors, at the top or one level down), a trained tokenizer (tokenizer.json) and token shards
 * (meta.json, at the top or under val/).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { InputArtifact } from '../../pipelines/activity';
import { findCheckpoint } from './sources';

export interface CheckpointInput {
  dir: string;
  input: InputArtifact;
}

export function allInputs(inputs: Record<string, InputArtifact[]>): InputArtifact[] {
  return Object.keys(inputs).sort().flatMap((step) => inputs[step]);
}

export function checkpointInputs(inputs: Record<string, InputArtifact[]>): CheckpointInput[] {
  const found: CheckpointInput[] = [];
  for (const input of allInputs(inputs)) {
    const dir = findCheckpoint(input.dir);
    if (dir) found.push({ dir, input });
  }
  return found;
}

/** A tokenizer artifact among the inputs (checkpoints that carry their own tokenizer.json are not one). */
export function tokenizerInput(inputs: Record<string, InputArtifact[]>): string | null {
  for (const input of allInputs(inputs)) {
    if (findCheckpoint(input.dir)) continue;
    for (const d of [input.dir, path.join(input.dir, 'tokenizer')]) {
      if (fs.existsSync(path.join(d, 'tokenizer.json'))) return d;
    }
  }
  return null;
}

export function shardInput(inputs: Record<string, InputArtifact[]>, split: string): string | null {
  for (const input of allInputs(inputs)) {
    for (const d of [path.join(input.dir, split), input.dir]) {
      if (fs.existsSync(path.join(d, 'meta.json')) && fs.readdirSync(d).some((f) => f.startsWith('shard-'))) return d;
    }
  }
  return null;
}

/** Reads a shard set's concatenated token stream with the datasets module (checksums verified there). */
export async function readShardStream(dir: string): Promise<Uint16Array | Uint32Array> {
  const { readTokenStream } = await import('../../datasets/shards');
  return readTokenStream(dir);
}
