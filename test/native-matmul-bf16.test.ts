/**
 * The CPU engine's bf16 matmul path (AMX tiles, fp32 accumulation): it really runs (results differ from fp32 by
 * bf16 rounding, not more), it is deterministic, training with it follows the fp32 loss curve, and fp32 stays the
 * default. Skipped, with a message, on CPUs without AMX (the engine then keeps fp32 and says so).
 */
import { buildInfo, createModel, type ModelConfig, type NativeModel } from '../native';
import { streamKey, uniform01 } from '../native/rng';

const amx = buildInfo().amx;
const maybe = amx ? describe : describe.skip;
if (!amx) console.warn('native-matmul-bf16: this CPU has no AMX bf16 tiles; the bf16 tests are skipped');

const VOCAB = 256;
const BATCH = 4;
const SEQ = 64;

function config(arch: 'backpack' | 'gpt2', nEmbd = 64): ModelConfig {
  const c: ModelConfig = { arch, vocabSize: VOCAB, realVocabSize: VOCAB - 3, nPositions: SEQ, nEmbd, nLayer: 2, nHead: 4, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 };
  if (arch === 'backpack') Object.assign(c, { numSenses: 4, senseIntermediateScale: 4 });
  return c;
}

/** A learnable stream: next = (5 * prev + 3) mod 253 with probability 0.85, else a uniform token. */
function chain(n: number, seed: number): Int32Array {
  const key = streamKey(seed, 7);
  const out = new Int32Array(n);
  let t = 11;
  for (let i = 0; i < n; i++) {
    out[i] = t;
    t = uniform01(key, 2 * i) < 0.85 ? (5 * t + 3) % (VOCAB - 3) : Math.floor(uniform01(key, 2 * i + 1) * (VOCAB - 3));
  }
  return out;
}

async function trainLosses(arch: 'backpack' | 'gpt2', precision: 'fp32' | 'bf16', steps: number): Promise<{ losses: number[]; model: NativeModel }> {
  const model = createModel(config(arch), 5);
  expect(model.setMatmulPrecision(precision)).toBe(precision === 'bf16' ? 'bf16-amx' : 'fp32');
  const data = chain(BATCH * SEQ * steps + 1, 3);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const off = s * BATCH * SEQ;
    await model.zeroGrad();
    const r = await model.trainStep(data.subarray(off, off + BATCH * SEQ), data.subarray(off + 1, off + 1 + BATCH * SEQ), BATCH, SEQ, { dropout: 0, rngSeed: s, gradScale: 1 });
    await model.optimizerStep({ lr: 1.5e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, clip: 1 });
    losses.push(r.loss);
  }
  return { losses, model };
}

maybe('bf16 matmuls on AMX', () => {
  // Odd sizes on purpose (150 rows, width 48, head size 12): the tile kernels' row, column and K edges all occur.
  test.each(['backpack', 'gpt2'] as const)('%s: forward differs from fp32 by bf16 rounding only', async (arch) => {
    const model = createModel(config(arch, 48), 2);
    const [batch, seq] = [3, 50];
    const tokens = chain(batch * seq, 9);
    const run = async () => (await model.forward(tokens, { batch, seq, logits: true, targets: tokens })).logits!;
    const fp32 = await run();
    expect(model.setMatmulPrecision('bf16')).toBe('bf16-amx');
    const bf16 = await run();
    const again = await run();
    let maxDiff = 0, maxAbs = 0;
    for (let i = 0; i < fp32.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(fp32[i] - bf16[i]));
      maxAbs = Math.max(maxAbs, Math.abs(fp32[i]));
    }
    // bf16 keeps 8 significant bits (relative rounding 2^-9 per operand); through a few layers that stays ~1e-2.
    expect(maxDiff / maxAbs).toBeGreaterThan(1e-6); // the bf16 path ran
    expect(maxDiff / maxAbs).toBeLessThan(3e-2);
    expect(Buffer.from(again.buffer).equals(Buffer.from(bf16.buffer))).toBe(true); // deterministic
    expect(model.setMatmulPrecision('fp32')).toBe('fp32');
    const back = await run();
    expect(Buffer.from(back.buffer).equals(Buffer.from(fp32.buffer))).toBe(true); // fp32 is exact again
    model.dispose();
  });

  test.each(['backpack', 'gpt2'] as const)('%s: training in bf16 follows the fp32 loss curve', async (arch) => {
    const steps = 120;
    const a = await trainLosses(arch, 'fp32', steps);
    const b = await trainLosses(arch, 'bf16', steps);
    a.model.dispose();
    b.model.dispose();
    const mean = (l: number[], from: number) => l.slice(from, from + 10).reduce((x, y) => x + y, 0) / 10;
    // Both learn the chain (from ln 253 = 5.5 to well below) ...
    expect(mean(a.losses, steps - 10)).toBeLessThan(0.5 * a.losses[0]);
    expect(mean(b.losses, steps - 10)).toBeLessThan(0.5 * b.losses[0]);
    // ... and the curves agree: every 10-step window within 5% (single steps of the bumpy Backpack curve may
    // drift further for a moment), the last window within 2%.
    for (let s = 0; s < steps; s += 10) expect(Math.abs(mean(a.losses, s) - mean(b.losses, s)) / mean(a.losses, s)).toBeLessThan(0.05);
    expect(Math.abs(mean(a.losses, steps - 10) - mean(b.losses, steps - 10)) / mean(a.losses, steps - 10)).toBeLessThan(0.02);
  });
});

test('fp32 is the default and a bad precision is refused with its value', () => {
  const model = createModel(config('gpt2'), 1);
  expect(() => model.setMatmulPrecision('fp16' as never)).toThrow(/'fp32' or 'bf16', got 'fp16'/);
  expect(model.setMatmulPrecision('fp32')).toBe('fp32');
  model.dispose();
});
