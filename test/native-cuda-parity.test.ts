/**
 * CUDA backend vs CPU backend through the TypeScript facade, on a machine with a GPU and a CUDA build of the
 * addon: same parameters -> same logits, loss, alpha and gradients (fp32), same parameters after AdamW steps,
 * and the same seeded generation; fp16 (loss-scaled) within 16-bit tolerances, skipping a step that overflows;
 * with 2 GPUs, data parallel on cuda:0,1 with gradient accumulation. Without a GPU the suite is skipped with a
 * message (bench/gpu-check.sh runs the same checks on a lent GPU without Node; test/native-cuda-emulated-addon
 * runs this file on the CPU emulator).
 */
import { createModel, cudaDevices, type NativeModel } from '../native';
import type { ModelConfig } from '../native/types';

const base = { vocabSize: 48, realVocabSize: 45, nPositions: 24, nEmbd: 32, nLayer: 2, nHead: 4, scaleAttnByInverseLayerIdx: true, layerNormEpsilon: 1e-5 };
const configs: [string, ModelConfig][] = [
  ['gpt2', { arch: 'gpt2', ...base }],
  ['backpack', { arch: 'backpack', ...base, numSenses: 4, senseIntermediateScale: 2 }],
];

function gpus(): number {
  try {
    return cudaDevices().length;
  } catch {
    return 0;
  }
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den > 0 ? num / den : num;
}

function pair(config: ModelConfig): [NativeModel, NativeModel] {
  const cpu = createModel(config, 3);
  const gpu = createModel(config, 99, { device: 'cuda:0' });
  gpu.setParams(cpu.getParams());
  return [cpu, gpu];
}

const ids = (n: number, seed: number, mod: number) => Int32Array.from({ length: n }, (_, i) => (i * 7 + seed * 13) % mod);

if (gpus() === 0) {
  test.skip('CUDA parity skipped: no GPU visible (or this addon was built without the CUDA backend)', () => undefined);
} else {
  describe.each(configs)('%s on cuda:0 matches the CPU backend', (_name, config) => {
    const B = 2, T = 12;
    const tokens = ids(B * T, 1, 45), targets = ids(B * T, 2, 45);

    test('logits, loss, alpha', async () => {
      const [cpu, gpu] = pair(config);
      expect(gpu.device).toBe('cuda:0');
      const opts = { batch: B, seq: T, logits: true, targets, alpha: config.arch === 'backpack' };
      const a = await cpu.forward(tokens, opts), b = await gpu.forward(tokens, opts);
      expect(relErr(b.logits!, a.logits!)).toBeLessThan(1e-5);
      expect(Math.abs(b.loss! - a.loss!) / a.loss!).toBeLessThan(1e-5);
      if (config.arch === 'backpack') expect(relErr(b.alpha!, a.alpha!)).toBeLessThan(1e-5);
    });

    test('every gradient (dropout masks shared) and 5 AdamW steps', async () => {
      const [cpu, gpu] = pair(config);
      for (const m of [cpu, gpu]) {
        await m.zeroGrad();
        await m.trainStep(tokens, targets, B, T, { dropout: 0.1, rngSeed: 5, gradScale: 1 });
      }
      const gc = cpu.getGrads(), gg = gpu.getGrads();
      for (const t of cpu.tensors) expect([t.key, relErr(gg.subarray(t.offset, t.offset + t.size), gc.subarray(t.offset, t.offset + t.size)) < 1e-4]).toEqual([t.key, true]);
      const p0 = cpu.getParams();
      for (let s = 0; s < 5; s++)
        for (const m of [cpu, gpu]) {
          await m.zeroGrad();
          await m.trainStep(ids(B * T, 10 + s, 45), ids(B * T, 20 + s, 45), B, T, { dropout: 0, rngSeed: s, gradScale: 1 });
          await m.optimizerStep({ lr: 1e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, clip: 1 });
        }
      const pc = cpu.getParams(), pg = gpu.getParams();
      const dc = pc.map((v, i) => v - p0[i]), dg = pg.map((v, i) => v - p0[i]);
      expect(relErr(dg, dc)).toBeLessThan(1e-3);
    });

    test('fp16 (its own build of the engine) with a loss scale: 16-bit tolerances; an overflowing scale skips the step', async () => {
      const cpu = createModel(config, 3);
      const gpu = createModel(config, 99, { device: 'cuda:0', precision: 'fp16' });
      gpu.setParams(cpu.getParams());
      const opts = { batch: B, seq: T, logits: true, targets };
      const a = await cpu.forward(tokens, opts), b = await gpu.forward(tokens, opts);
      expect(relErr(b.logits!, a.logits!)).toBeLessThan(3e-2);
      await cpu.zeroGrad();
      await gpu.zeroGrad();
      await cpu.trainStep(tokens, targets, B, T, { dropout: 0, rngSeed: 5, gradScale: 1 });
      await gpu.trainStep(tokens, targets, B, T, { dropout: 0, rngSeed: 5, gradScale: 1024 });
      const gc = cpu.getGrads(), gg = gpu.getGrads().map((g) => g / 1024);
      for (const t of cpu.tensors) expect([t.key, relErr(gg.subarray(t.offset, t.offset + t.size), gc.subarray(t.offset, t.offset + t.size)) < 1e-1]).toEqual([t.key, true]);
      // 2^30 / (B*T) on the target's dlogit is far beyond fp16's 65504
      await gpu.zeroGrad();
      await gpu.trainStep(tokens, targets, B, T, { dropout: 0, rngSeed: 5, gradScale: 2 ** 30 });
      const before = gpu.getParams();
      expect(Number.isFinite(await gpu.optimizerStep({ lr: 1e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, clip: 1, unscale: 2 ** -30 }))).toBe(false);
      expect(Buffer.from(gpu.getParams().buffer).equals(Buffer.from(before.buffer))).toBe(true);
      expect(gpu.getOptimizerState().step).toBe(0);
    });

    test('seeded generation gives the same tokens', async () => {
      const [cpu, gpu] = pair(config);
      const opts = { prompt: [Int32Array.from([44, 3, 9]), Int32Array.from([44])], maxNewTokens: 10, seed: 7, temperature: 1, topK: 5 };
      expect(await gpu.generate(opts)).toEqual(await cpu.generate(opts));
    });
  });

  if (gpus() < 2) {
    test.skip('data-parallel parity skipped: needs 2 GPUs', () => undefined);
  } else {
    describe.each(configs)('%s data parallel on cuda:0,1 matches the CPU backend', (_name, config) => {
      test('3 optimizer steps of 3 accumulated micro-batches, reduced during the last backward pass', async () => {
        const cpu = createModel(config, 3);
        const gpu = createModel(config, 99, { device: 'cuda:0,1' });
        gpu.setParams(cpu.getParams());
        const p0 = cpu.getParams();
        const B = 3, T = 12; // rows split unevenly over the two GPUs
        for (let s = 0; s < 3; s++) {
          for (const m of [cpu, gpu]) {
            await m.zeroGrad();
            for (let a = 0; a < 3; a++) {
              const micro = 3 * s + a;
              await m.trainStep(ids(B * T, 30 + micro, 45), ids(B * T, 60 + micro, 45), B, T, { dropout: 0.1, rngSeed: micro, gradScale: 1 / 3, lastMicroBatch: a === 2 });
            }
          }
          if (s === 0) {
            const gc = cpu.getGrads(), gg = gpu.getGrads();
            for (const t of cpu.tensors) expect([t.key, relErr(gg.subarray(t.offset, t.offset + t.size), gc.subarray(t.offset, t.offset + t.size)) < 1e-4]).toEqual([t.key, true]);
          }
          for (const m of [cpu, gpu]) await m.optimizerStep({ lr: 1e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, clip: 1 });
        }
        const pc = cpu.getParams(), pg = gpu.getParams();
        expect(relErr(pg.map((v, i) => v - p0[i]), pc.map((v, i) => v - p0[i]))).toBeLessThan(1e-3);
      });
    });
  }
}
