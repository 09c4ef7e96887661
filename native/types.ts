/**
 * The model API the evaluations and experiments program against. The native addon's facade
 * (native/index.ts) implements it; tests may implement it with toy models whose probabilities are
 * known in closed form. Shapes are row-major; "vocab" means the model's padded vocabulary.
 */
export type Architecture = 'gpt2' | 'backpack';

export interface ModelConfig {
  arch: Architecture;
  /** Padded vocabulary rows (multiple of 8): 50264 for GPT-2 BPE models. */
  vocabSize: number;
  /** Real vocabulary size: rows ≥ this are padding, never targets, excluded from eval softmax. */
  realVocabSize: number;
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  /** Backpack only. */
  numSenses?: number;
  senseIntermediateScale?: number;
  shrinkSenseMlp?: boolean;
  scaleAttnByInverseLayerIdx: boolean;
  layerNormEpsilon: number;
}

/** Sense-level interventions of the control experiments (PAPER.md §6.3–§6.7), in forward and generate. */
export interface Interventions {
  /** [batch*seq][k] multiplier on C(x_j)_l per position j. */
  senseScale?: Float32Array;
  /** [vocabSize][k] multiplier on C(x)_l by token id. */
  senseScaleByToken?: Float32Array;
  /** Multiply alpha of one sense at key positions holding any of the token ids (no renormalisation). */
  alphaScale?: { sense: number; tokenIds: number[]; factor: number };
  /** Replace the sense vectors ([k][d]) of a token wherever it occurs. */
  senseReplace?: { tokenId: number; vectors: Float32Array }[];
  /** Replace a token's input embedding row (transformer input and sense-network input; the output layer keeps E). */
  embeddingReplace?: { tokenId: number; row: Float32Array }[];
}

/** What the evaluations need from a language model. */
export interface LanguageModel {
  readonly config: ModelConfig;
  /**
   * Log-softmax over the first `realVocabSize` columns (harness convention) of the next-token
   * distribution at every position: returns Float32Array [tokens.length][realVocabSize].
   */
  logProbs(tokens: Int32Array): Promise<Float32Array>;
  /** Final hidden states [tokens.length][nEmbd] (features for MAUVE). */
  hidden?(tokens: Int32Array): Promise<Float32Array>;
  /** Output embedding matrix [vocabSize][nEmbd] (tied E). */
  outputEmbeddings(): Float32Array;
  /** Backpack: sense vectors [ids.length][numSenses][nEmbd]. */
  senseVectors?(ids: Int32Array): Promise<Float32Array>;
}
