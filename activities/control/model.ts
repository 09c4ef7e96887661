/**
 * The slice of the native model the control experiments use (native/index.ts `NativeModel` satisfies
 * it structurally). Tests implement it with small closed-form toy models.
 */
import type { Interventions, ModelConfig } from '../../native/types';

/** The engine's intervention set (native/types.ts). */
export type SenseScaleInterventions = Interventions;

export interface ForwardOptions {
  batch: number;
  seq: number;
  logits?: boolean;
  hidden?: boolean;
  interventions?: SenseScaleInterventions;
}

export interface ForwardResult {
  /** [batch][seq][vocabSize] */
  logits?: Float32Array;
  /** [batch][seq][nEmbd] final hidden states (after the final LayerNorm). */
  hidden?: Float32Array;
}

export interface ControlModel {
  readonly config: ModelConfig;
  forward(tokens: Int32Array, opts: ForwardOptions): Promise<ForwardResult>;
  /** [vocabSize][nEmbd], the tied output embedding E. */
  outputEmbeddings(): Float32Array;
  /** Backpack only: [ids.length][k][nEmbd]. */
  senseVectors?(ids: Int32Array): Promise<Float32Array>;
  /**
   * KV-cache generation (native engine): returns the new tokens of each row. `senseScaleFn` gives per-row
   * [len][k] multipliers recomputed from the current sequences before every step.
   */
  generate?(opts: {
    prompt: Int32Array[];
    maxNewTokens: number;
    seed: number;
    temperature?: number;
    greedy?: boolean;
    senseScaleFn?: (sequences: Int32Array[]) => Float32Array[];
  }): Promise<Int32Array[]>;
}

export function requireSenses(model: ControlModel, what: string): (ids: Int32Array) => Promise<Float32Array> {
  if (model.config.arch !== 'backpack' || !model.senseVectors || !model.config.numSenses) {
    throw new Error(`${what} needs a Backpack model with sense vectors (got arch "${model.config.arch}")`);
  }
  return model.senseVectors.bind(model);
}
