/**
 * The released checkpoints the paper's evaluations can use instead of training (PAPER.md §9.1), and
 * the Hugging Face GPT-2 family evaluated in §6.2. Data only.
 *
 * The authors published no sizes or hashes. An entry without `sha256` is verified on first download
 * by the server's checksum where it sends one (Hugging Face LFS) and otherwise trusted once: the
 * sha256 and size are then pinned in the cache (see activities/import.ts) and every later download
 * must match them. Pin them here once known, and the pin travels with the code.
 */
import type { ImportSourceKind } from './index';

export interface ReleasedFile {
  /** File name in the download cache. */
  file: string;
  url: string;
  /** Known sha256 (hex); absent = unknown until the first download pins it. */
  sha256?: string;
  size?: number;
  /** Path under a checkpoint mirror (PIPELINE_CHECKPOINT_MIRROR), laid out like the canonical host. */
  mirrorPath: string;
}

export interface ReleasedModel {
  /** Our model id (dag.yaml, CLI). */
  id: string;
  source: ImportSourceKind;
  /** The paper's name for it. */
  paperName: string;
  /** The weight file first, then companions (config.json) in the same directory. */
  files: ReleasedFile[];
  /** The name the authors' evaluation scripts use, where they name one. */
  authorsLocalName?: string;
}

const STANFORD = 'https://downloads.cs.stanford.edu/nlp/data/backpacks-acl2023';
const HF = 'https://huggingface.co';

function lightning(id: string, paperName: string, dirName: 'main' | 'sense_ablation', fileName: string, authorsLocalName?: string): ReleasedModel {
  return {
    id,
    source: 'lightning',
    paperName,
    files: [{ file: fileName, url: `${STANFORD}/${dirName}/${fileName}`, mirrorPath: `backpacks-acl2023/${dirName}/${fileName}` }],
    authorsLocalName,
  };
}

function hub(id: string, source: ImportSourceKind, paperName: string, repo: string, weights: string): ReleasedModel {
  return {
    id,
    source,
    paperName,
    files: [weights, 'config.json'].map((file) => ({ file, url: `${HF}/${repo}/resolve/main/${file}`, mirrorPath: `huggingface/${repo}/${file}` })),
  };
}

export const RELEASED_MODELS: readonly ReleasedModel[] = [
  lightning('backpack-micro', 'Backpack-Micro', 'main', 'backpack-micro-flash-fp16.ckpt'),
  lightning('backpack-mini', 'Backpack-Mini', 'main', 'backpack-mini-flash-fp16.ckpt'),
  lightning('backpack-small', 'Backpack-Small', 'main', 'backpack-small-flash-fp16.ckpt', 'backpack-small-flash-fp16/last.ckpt'),
  lightning('transformer-micro', 'Transformer-Micro', 'main', 'gpt2-micro-flash-fp16.ckpt'),
  lightning('transformer-mini', 'Transformer-Mini', 'main', 'gpt2-mini-flash-fp16.ckpt'),
  lightning('transformer-small', 'Transformer-Small', 'main', 'gpt2-small-flash-fp16.ckpt', 'gpt2s-flash-fp16/last.ckpt'),
  ...[1, 4, 16, 64].map((k) => lightning(`backpack-mini-k${k}`, `Backpack-Mini, k = ${k} (sense ablation)`, 'sense_ablation', `backpack-mini-flash-fp16-vecs-${k}.ckpt`)),
  hub('backpack-gpt2-hf', 'hf-backpack', 'Backpack-Small, Hugging Face port', 'stanfordnlp/backpack-gpt2', 'pytorch_model.bin'),
  hub('gpt2', 'hf-gpt2', 'GPT-2 (124M)', 'openai-community/gpt2', 'model.safetensors'),
  hub('gpt2-medium', 'hf-gpt2', 'GPT-2 Medium (355M)', 'openai-community/gpt2-medium', 'model.safetensors'),
  hub('gpt2-large', 'hf-gpt2', 'GPT-2 Large (774M)', 'openai-community/gpt2-large', 'model.safetensors'),
  hub('gpt2-xl', 'hf-gpt2', 'GPT-2 XL (1.5B)', 'openai-community/gpt2-xl', 'model.safetensors'),
];

export function findReleasedModel(id: string): ReleasedModel | undefined {
  return RELEASED_MODELS.find((m) => m.id === id);
}
