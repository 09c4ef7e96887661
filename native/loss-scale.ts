/**
 * Dynamic loss scaling for fp16 training (PAPER.md §4: the authors trained with fp16 AMP and PyTorch's GradScaler
 * at its defaults). The loss, and so every gradient, is multiplied by a scale large enough that small gradients
 * survive fp16's range; the optimizer step divides it out. A step whose gradients overflowed (non-finite norm) is
 * skipped and the scale backs off; after `growthInterval` clean steps in a row it grows again.
 */

export interface LossScaleSettings {
  initial: number;
  growthInterval: number;
  growthFactor: number;
  backoffFactor: number;
}

/** GradScaler's defaults, which the paper's runs used. */
export const DEFAULT_LOSS_SCALE: LossScaleSettings = { initial: 65536, growthInterval: 2000, growthFactor: 2, backoffFactor: 0.5 };

/** What a resumed run needs to continue with the same scale (saved in the run checkpoint's state.json). */
export interface LossScaleState {
  scale: number;
  /** Clean steps since the last growth or backoff. */
  cleanSteps: number;
  /** Steps skipped for overflow over the whole run. */
  skippedSteps: number;
}

/**
 * Below this the gradients are non-finite at any scale: the run has diverged and waiting longer only burns steps.
 * (2^-24 is fp16's smallest subnormal; a loss scaled that small is no longer representable.)
 */
const MIN_SCALE = 2 ** -24;

export class DynamicLossScaler {
  private s: LossScaleState;

  constructor(
    readonly settings: LossScaleSettings,
    state?: LossScaleState,
  ) {
    const { initial, growthInterval, growthFactor, backoffFactor } = settings;
    if (!(initial > 0) || !Number.isFinite(initial)) throw new Error(`loss scale: initial scale must be a positive finite number, got ${initial}`);
    if (!Number.isInteger(growthInterval) || growthInterval < 1) throw new Error(`loss scale: growthInterval must be a positive integer, got ${growthInterval}`);
    if (!(growthFactor > 1)) throw new Error(`loss scale: growthFactor must be > 1, got ${growthFactor}`);
    if (!(backoffFactor > 0 && backoffFactor < 1)) throw new Error(`loss scale: backoffFactor must be in (0, 1), got ${backoffFactor}`);
    this.s = state ? { ...state } : { scale: initial, cleanSteps: 0, skippedSteps: 0 };
  }

  get scale(): number {
    return this.s.scale;
  }

  state(): LossScaleState {
    return { ...this.s };
  }

  /**
   * Records the outcome of one optimizer step: `finite` false means its gradients overflowed and it was skipped.
   * Throws once the scale has backed off below any useful value.
   */
  update(finite: boolean, step: number): void {
    if (finite) {
      if (++this.s.cleanSteps >= this.settings.growthInterval) {
        this.s.scale = Math.min(this.s.scale * this.settings.growthFactor, 2 ** 127);
        this.s.cleanSteps = 0;
      }
      return;
    }
    this.s.skippedSteps++;
    this.s.cleanSteps = 0;
    this.s.scale *= this.settings.backoffFactor;
    if (this.s.scale < MIN_SCALE) {
      throw new Error(`training diverged at step ${step}: gradients are non-finite even with the loss scale backed off to ${this.s.scale.toExponential(2)} (${this.s.skippedSteps} steps skipped)`);
    }
  }
}
