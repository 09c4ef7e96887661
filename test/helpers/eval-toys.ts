/**
 * Toy tokenizer and language models for the evaluation tests. Their probabilities are known in closed
 * form, so a test can compute the expected log-likelihood by hand and compare.
 */
import type { LanguageModel, ModelConfig } from '../../native/types';
import type { EvalTokenizer } from '../../activities/evaluation/types';

const EOT = '<|endoftext|>';

/**
 * Greedy longest-match tokenizer over a fixed piece list. Id i = pieces[i]; the last id is EOS; a character
 * that no piece covers becomes `unkId` (id 0, the piece "<unk>").
 */
export class PieceTokenizer implements EvalTokenizer {
  readonly name = 'toy-pieces';
  readonly pieces: string[];
  readonly eosId: number;
  readonly vocabSize: number;
  readonly unkId = 0;
  private readonly byPiece: Map<string, number>;
  private readonly longest: number;

  constructor(extraPieces: string[] = []) {
    const chars: string[] = [];
    for (let c = 32; c < 127; c++) chars.push(String.fromCharCode(c));
    chars.push('\n');
    this.pieces = ['<unk>', ...chars, ...extraPieces];
    this.byPiece = new Map(this.pieces.map((p, i) => [p, i]));
    this.eosId = this.pieces.length;
    this.vocabSize = this.pieces.length + 1;
    this.longest = Math.max(...this.pieces.map((p) => p.length));
  }

  encode(text: string): number[] {
    const out: number[] = [];
    text.split(EOT).forEach((part, i) => {
      if (i > 0) out.push(this.eosId);
      let at = 0;
      while (at < part.length) {
        let len = Math.min(this.longest, part.length - at);
        while (len > 1 && !this.byPiece.has(part.slice(at, at + len))) len--;
        const id = this.byPiece.get(part.slice(at, at + len));
        out.push(id ?? this.unkId);
        at += len;
      }
    });
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) s += ids[i] === this.eosId ? EOT : this.pieces[ids[i]];
    return s;
  }
}

export function toyConfig(realVocabSize: number, extra: Partial<ModelConfig> = {}): ModelConfig {
  return {
    arch: 'gpt2',
    vocabSize: Math.ceil(realVocabSize / 8) * 8,
    realVocabSize,
    nPositions: 512,
    nEmbd: 4,
    nLayer: 1,
    nHead: 1,
    scaleAttnByInverseLayerIdx: true,
    layerNormEpsilon: 1e-5,
    ...extra,
  };
}

/** log-softmax of a logit row, float64. */
export function logSoftmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  return Array.from(logits, (z) => z - lse);
}

/**
 * A model whose logits at input position j depend on the token there and on j itself:
 * z_x = 2·[x = (tok_j + 1) mod V] + 1·[x = j mod V] (+ padRows extra rows of logit `padLogit`).
 * So a test can check both which token preceded a target and at which position it was predicted.
 */
export class PositionalBigramModel implements LanguageModel {
  readonly config: ModelConfig;
  calls = 0;
  constructor(readonly V: number, readonly padLogit = 0) {
    this.config = toyConfig(V);
  }

  /** Logits over the padded rows (real first, then vocabSize − V padding rows). */
  logitsAt(prevToken: number, position: number): number[] {
    const z = new Array(this.config.vocabSize).fill(0);
    for (let x = this.V; x < z.length; x++) z[x] = this.padLogit;
    z[(prevToken + 1) % this.V] += 2;
    z[position % this.V] += 1;
    return z;
  }

  /** Closed-form log p(target | token at `position` is `prevToken`), over the real vocabulary. */
  logProb(prevToken: number, position: number, target: number): number {
    return logSoftmax(this.logitsAt(prevToken, position).slice(0, this.V))[target];
  }

  async logProbs(tokens: Int32Array): Promise<Float32Array> {
    this.calls++;
    if (tokens.length > this.config.nPositions) throw new Error(`input of ${tokens.length} > nPositions`);
    const out = new Float32Array(tokens.length * this.V);
    for (let j = 0; j < tokens.length; j++) out.set(logSoftmax(this.logitsAt(tokens[j], j).slice(0, this.V)), j * this.V);
    return out;
  }

  /** Native-style batched forward: logits over all padded rows, and the mean loss over all padded rows. */
  async forward(
    tokens: Int32Array,
    opts: { batch: number; seq: number; logits?: boolean; targets?: Int32Array },
  ): Promise<{ logits?: Float32Array; loss?: number; perTokenLoss?: Float32Array }> {
    this.calls++;
    const Vp = this.config.vocabSize;
    const n = opts.batch * opts.seq;
    const logits = opts.logits ? new Float32Array(n * Vp) : undefined;
    const per = opts.targets ? new Float32Array(n) : undefined;
    let sum = 0;
    for (let b = 0; b < opts.batch; b++) {
      for (let j = 0; j < opts.seq; j++) {
        const i = b * opts.seq + j;
        const z = this.logitsAt(tokens[i], j);
        logits?.set(z, i * Vp);
        if (per) {
          per[i] = -logSoftmax(z)[opts.targets![i]];
          sum += per[i];
        }
      }
    }
    return { logits, ...(per ? { loss: sum / n, perTokenLoss: per } : {}) };
  }

  outputEmbeddings(): Float32Array {
    return new Float32Array(this.config.vocabSize * this.config.nEmbd);
  }
}

/** A model that ignores its input: every row is the same unigram distribution softmax(logits). */
export class UnigramModel implements LanguageModel {
  readonly config: ModelConfig;
  readonly row: number[];
  constructor(logits: number[]) {
    this.config = toyConfig(logits.length);
    this.row = logSoftmax(logits);
  }
  async logProbs(tokens: Int32Array): Promise<Float32Array> {
    const out = new Float32Array(tokens.length * this.row.length);
    for (let j = 0; j < tokens.length; j++) out.set(this.row, j * this.row.length);
    return out;
  }
  outputEmbeddings(): Float32Array {
    return new Float32Array(this.config.vocabSize * this.config.nEmbd);
  }
}

/**
 * A "Backpack" with hand-set sense vectors and embedding rows, for the lexical-similarity tests:
 * senseVectors(ids) returns senses[id] ([k][d]); outputEmbeddings returns `embedding` ([vocab][d]).
 */
export class FixedVectorModel implements LanguageModel {
  readonly config: ModelConfig;
  constructor(
    realVocabSize: number,
    readonly d: number,
    readonly k: number,
    readonly senses: (id: number) => number[][],
    readonly embedding: (id: number) => number[],
  ) {
    this.config = toyConfig(realVocabSize, { arch: 'backpack', nEmbd: d, numSenses: k });
  }
  async logProbs(): Promise<Float32Array> {
    throw new Error('not a language model');
  }
  outputEmbeddings(): Float32Array {
    const E = new Float32Array(this.config.vocabSize * this.d);
    for (let id = 0; id < this.config.realVocabSize; id++) E.set(this.embedding(id), id * this.d);
    return E;
  }
  async senseVectors(ids: Int32Array): Promise<Float32Array> {
    const out = new Float32Array(ids.length * this.k * this.d);
    ids.forEach((id, i) => this.senses(id).forEach((row, l) => out.set(row, (i * this.k + l) * this.d)));
    return out;
  }
}
