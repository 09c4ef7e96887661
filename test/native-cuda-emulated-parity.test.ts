/**
 * The whole CUDA engine against the CPU backend, where no GPU exists: the GPU check harness is built for the CPU
 * emulator (bench/gpu/build-emulated-harness.sh: every .cu file through the host compiler, the emulator's CUDA
 * runtime and cuBLAS) and `harness parity` runs as on a lent GPU: logits, hidden states, loss, alpha, every
 * gradient with and without dropout, 10 AdamW steps, KV-cache generation with interventions, in fp32 and bf16;
 * the engine's knobs that select other kernels; the fp16 build with its loss scale and overflow skip; and
 * `harness dp`, data parallel over 2 and 3 emulated GPUs (the emulator's NCCL) against one, with gradient
 * accumulation reduced in the last backward pass, in every one, or at the optimizer step.
 * (No cuBLASLt or timing here: those need the GPU check.)
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const root = path.join(__dirname, '..');
const cudaHome = process.env.BACKPACK_TEST_CUDA_HOME ?? path.join(root, '.tools', 'cuda', 'home');
const haveHeaders = fs.existsSync(path.join(cudaHome, 'include', 'cuda_runtime.h'));
const buildDir = path.join(root, '.tools', 'emulated-harness');

interface ParityLine {
  check: string;
  arch?: string;
  precision?: string;
  what?: string;
  rel_err?: number;
  ok?: boolean;
  failures?: number;
}

function build(variant: string[]): void {
  const r = spawnSync('bash', [path.join(root, 'bench', 'gpu', 'build-emulated-harness.sh'), buildDir, ...variant], {
    env: { ...process.env, CUDA_HOME: cudaHome },
    encoding: 'utf8',
    timeout: 10 * 60 * 1000,
  });
  if (r.status !== 0) throw new Error(`emulated harness build failed (status ${r.status}):\n${(r.stderr ?? '').slice(-6000)}`);
}

function run(exe: string, command: string, env: Record<string, string>) {
  const r = spawnSync(exe, [command], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 10 * 60 * 1000 });
  const lines = (r.stdout ?? '')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ParityLine);
  return { r, lines };
}

function parity(exe: string, env: Record<string, string> = {}, command = 'parity'): ParityLine[] {
  const { r, lines: all } = run(path.join(buildDir, exe), command, env);
  const failed = all.filter((l) => l.check === 'parity' && !l.ok);
  if (r.status !== 0 || failed.length > 0)
    throw new Error(`harness ${command} (${exe}, ${JSON.stringify(env)}): status ${r.status}\n${failed.map((l) => JSON.stringify(l)).join('\n')}\n${(r.stderr ?? '').slice(-3000)}`);
  return all.filter((l) => l.check === 'parity');
}

if (!haveHeaders && !process.env.CI) {
  test.skip(`emulated CUDA engine parity skipped: no CUDA headers in ${cudaHome} (run scripts/install-cuda-toolkit.sh)`, () => undefined);
} else {
  describe('the CUDA engine on the CPU emulator matches the CPU backend', () => {
    beforeAll(() => {
      if (!haveHeaders) throw new Error(`no CUDA headers in ${cudaHome}: scripts/install-cuda-toolkit.sh should have installed them`);
      build([]);
      build(['--fp16']);
    }, 20 * 60 * 1000);

    test('fp32 and bf16, both architectures: every parity check of the GPU check', () => {
      const lines = parity('harness-emulated');
      // 2 architectures x 2 precisions x (logits, hidden, loss, 2 x grads, 4 x AdamW, generation) + alpha x 2
      expect(lines).toHaveLength(42);
      for (const arch of ['gpt2', 'backpack'])
        for (const precision of ['fp32', 'bf16']) expect(lines.filter((l) => l.arch === arch && l.precision === precision).length).toBeGreaterThanOrEqual(10);
      // the fp32 engine is exact to fp32 rounding, bf16 is not: the checks measure real arithmetic
      const fp32Logits = lines.find((l) => l.arch === 'gpt2' && l.precision === 'fp32' && l.what === 'logits');
      const bf16Logits = lines.find((l) => l.arch === 'gpt2' && l.precision === 'bf16' && l.what === 'logits');
      expect(fp32Logits!.rel_err!).toBeLessThan(1e-5);
      expect(bf16Logits!.rel_err!).toBeGreaterThan(1e-4);
    }, 10 * 60 * 1000);

    const knobs: Array<[string, Record<string, string>, string]> = [
      ['fp32 gradient operands and training logits (BACKPACK_CUDA_GRAD16=0 BACKPACK_CUDA_LOGITS16=0)', { BACKPACK_CUDA_GRAD16: '0', BACKPACK_CUDA_LOGITS16: '0' }, '[grad16=0] [logits16=0]'],
      ['the fused Backpack contextualization (BACKPACK_CUDA_FUSED_CONTEXT=1)', { BACKPACK_CUDA_FUSED_CONTEXT: '1' }, '[fused-context=1]'],
      ['the batched attention products, one sequence per chunk', { BACKPACK_CUDA_FLASH: '0', BACKPACK_CUDA_ATTN_SEQS: '1' }, '[flash=0] [attn-seqs=1]'],
    ];
    test.each(knobs)('with %s', (_name, env, tag) => {
      const lines = parity('harness-emulated', env);
      expect(lines).toHaveLength(42);
      for (const l of lines) expect(l.what).toContain(tag);
    }, 10 * 60 * 1000);

    test.each([2, 3])('data parallel over %i emulated GPUs matches one GPU', (gpus) => {
      const lines = parity('harness-emulated', { BACKPACK_EMULATED_GPUS: String(gpus) }, 'dp');
      // 2 architectures x (losses, gradients, parameters after 6 steps)
      expect(lines).toHaveLength(6);
      for (const l of lines) expect(l.what).toContain(`data parallel ${gpus} GPUs vs 1`);
    }, 10 * 60 * 1000);

    test('the data-parallel check fails when the replicas count reduced sums again (engine mutated)', () => {
      // the bug the engine once had: after a reduction, the other replicas must restart their sums at zero
      const engine = path.join(root, 'native', 'src', 'cuda', 'engine.cu');
      const text = fs.readFileSync(engine, 'utf8');
      const restart = 'for (size_t i = 1; i < replicas.size(); i++) replicas[i]->zeroGrad();';
      expect(text.split(restart)).toHaveLength(2);
      const mutant = path.join(buildDir, 'engine-mutant.cu');
      fs.writeFileSync(mutant, text.replace(restart, ';'));
      const objects = path.join(buildDir, 'obj-harness-emulated');
      const compile = spawnSync('g++', ['-O2', '-std=c++17', '-fopenmp', '-DBP_CUDA_EMULATOR=1', `-I${path.join(cudaHome, 'include')}`, `-I${path.dirname(engine)}`, '-x', 'c++', '-c', mutant, '-o', `${mutant}.o`], { encoding: 'utf8' });
      expect(compile.stderr).toBe('');
      const others = fs.readdirSync(objects).filter((f) => f.endsWith('.o') && f !== 'engine.cu.o').map((f) => path.join(objects, f));
      const exe = path.join(buildDir, 'harness-engine-mutant');
      const link = spawnSync('g++', ['-o', exe, ...others, `${mutant}.o`, '-fopenmp', '-lpthread'], { encoding: 'utf8' });
      expect(link.status).toBe(0);
      const { r, lines } = run(exe, 'dp', { BACKPACK_EMULATED_GPUS: '2' });
      expect(r.status).toBe(1);
      expect(lines.filter((l) => l.what?.includes('gradients') && !l.ok)).toHaveLength(2);
    }, 10 * 60 * 1000);

    test('the fp16 build: loss-scaled training, and an overflowing step skipped with the parameters untouched', () => {
      const lines = parity('harness-emulated-fp16');
      // 2 architectures x (logits, hidden, loss, 2 x grads, 4 x AdamW, generation, overflow) + alpha
      expect(lines).toHaveLength(23);
      expect(lines.every((l) => l.precision === 'fp16')).toBe(true);
      expect(lines.filter((l) => l.what?.startsWith('loss-scale overflow'))).toHaveLength(2);
    }, 10 * 60 * 1000);
  });
}
