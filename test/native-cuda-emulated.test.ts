/**
 * The hand-written CUDA kernels' arithmetic, checked where no GPU exists: the fused kernels compile with the host
 * compiler against the CPU emulator (native/src/cuda/emulator/, BP_CUDA_EMULATOR=1) and run through their own
 * launch code against double-precision references (test/emulated/*_check.cpp):
 *  - the fused attention (flash_attention.cu): ragged blocks, every instantiated head size, dropout; each
 *    forward-kernel variant the engine can select;
 *  - the fused Backpack contextualization (backpack_flash.cu): every padded head width, the alpha edit.
 * The emulator itself must catch a kernel's missing cp.async wait and missing __syncthreads (mutation tests).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const root = path.join(__dirname, '..');
const cudaHome = process.env.BACKPACK_TEST_CUDA_HOME ?? path.join(root, '.tools', 'cuda', 'home');
const include = path.join(cudaHome, 'include');
const haveHeaders = fs.existsSync(path.join(include, 'cuda_runtime.h'));
const buildDir = path.join(root, '.tools', 'emulated-build');
const cudaSources = path.join(root, 'native', 'src', 'cuda');
// the scheduler and the runtime calls the kernels' launch code makes (no cuBLAS needed here)
const emulator = ['emulator.cpp', 'runtime.cpp'].map((f) => path.join(root, 'native', 'src', 'cuda', 'emulator', f));
const checkSource = (name: string) => path.join(root, 'test', 'emulated', `${name}_check.cpp`);

interface CheckLine {
  check: string;
  what?: string;
  rel_err?: number;
  tol?: number;
  ok: boolean;
  error?: string;
}

/** Compiles a check against a (possibly mutated) copy of its kernel source; returns the executable. */
function build(name: string, kernelSource: string, check: string): string {
  fs.mkdirSync(buildDir, { recursive: true });
  const exe = path.join(buildDir, name);
  // -I the kernels' directory: a mutant copy built from elsewhere still finds the headers it includes
  const args = ['-std=c++17', '-O2', '-DBP_CUDA_EMULATOR=1', `-I${include}`, `-I${cudaSources}`, '-x', 'c++', kernelSource, '-x', 'none', ...emulator, check, '-o', exe];
  const r = spawnSync('g++', args, { encoding: 'utf8', timeout: 5 * 60 * 1000 });
  if (r.status !== 0) throw new Error(`emulated check build failed (status ${r.status}):\n${(r.stderr ?? '').slice(-6000)}`);
  return exe;
}

function runCheck(exe: string, env: Record<string, string> = {}, args: string[] = []): { status: number | null; lines: CheckLine[] } {
  const r = spawnSync(exe, args, { encoding: 'utf8', timeout: 5 * 60 * 1000, env: { ...process.env, ...env } });
  const lines = (r.stdout ?? '')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as CheckLine);
  return { status: r.status, lines };
}

/** A copy of a kernel source (`kernel`.cu) with `from` replaced by `to` (which must occur exactly once). */
function mutant(kernel: string, name: string, from: RegExp, to: string): string {
  const source = path.join(cudaSources, `${kernel}.cu`);
  const text = fs.readFileSync(source, 'utf8');
  const hits = text.match(new RegExp(from.source, 'g')) ?? [];
  if (hits.length !== 1) throw new Error(`mutation ${name}: pattern ${from} found ${hits.length} times`);
  // in the build directory, never among the sources (the CUDA build compiles every .cu there)
  fs.mkdirSync(buildDir, { recursive: true });
  const file = path.join(buildDir, `mutant-${name}.cu`);
  fs.writeFileSync(file, text.replace(from, to));
  return file;
}

if (!haveHeaders && !process.env.CI) {
  test.skip(`emulated CUDA kernel checks skipped: no CUDA headers at ${include} (run scripts/install-cuda-toolkit.sh)`, () => undefined);
} else {
  describe('CUDA kernels on the CPU emulator', () => {
    let attention = '';
    let backpack = '';
    beforeAll(() => {
      if (!haveHeaders) throw new Error(`no CUDA headers at ${include}: scripts/install-cuda-toolkit.sh should have installed them`);
      attention = build('flash_attention_check', path.join(cudaSources, 'flash_attention.cu'), checkSource('flash_attention'));
      backpack = build('backpack_flash_check', path.join(cudaSources, 'backpack_flash.cu'), checkSource('backpack_flash'));
    }, 6 * 60 * 1000);

    function expectAllPass(status: number | null, lines: CheckLine[], count: number): void {
      const failed = lines.filter((l) => !l.ok);
      if (failed.length > 0 || status !== 0) throw new Error(`status ${status}; failed checks:\n${failed.map((l) => JSON.stringify(l)).join('\n')}`);
      expect(lines).toHaveLength(count);
    }

    const variants: Array<[string, Record<string, string>]> = [
      ['default forward kernel', {}],
      ['BACKPACK_CUDA_FLASH_FWD_ROWS=128 (two query groups per warp)', { BACKPACK_CUDA_FLASH_FWD_ROWS: '128' }],
      ['BACKPACK_CUDA_FLASH_FWD_BLOCKS=4 (built for 4 CTAs per SM)', { BACKPACK_CUDA_FLASH_FWD_BLOCKS: '4' }],
    ];
    test.each(variants)('fused attention matches the double-precision reference: %s', (_name, env) => {
      const { status, lines } = runCheck(attention, env);
      // 6 shapes x (out, lse, dq, dk, dv, two schedule skews, recomputed mask, bf16 gradient)
      expectAllPass(status, lines, 54);
      const out = lines.find((l) => l.what?.startsWith('out (B=2 T=200'));
      expect(out?.rel_err).toBeGreaterThan(0); // bf16 probabilities: not bit-equal to the reference
      expect(out?.rel_err).toBeLessThan(2e-2);
    }, 6 * 60 * 1000);

    test('fused Backpack contextualization matches the double-precision reference', () => {
      const { status, lines } = runCheck(backpack);
      // 6 shapes (d/k = 48, 40, 24, 16, 64, 80; two with the alpha edit) x (out, lse, two schedule skews)
      expectAllPass(status, lines, 24);
      for (const width of [48, 40, 24, 16, 64, 80]) expect(lines.some((l) => l.what?.startsWith('out') && l.what.includes(`d/k=${width}`))).toBe(true);
      expect(lines.filter((l) => l.what?.startsWith('out') && l.what.includes('alpha edit'))).toHaveLength(2);
    }, 6 * 60 * 1000);

    // The emulator's skews must expose the two races a tiled kernel can have; the references, a wrong result.
    const mutations: Array<[string, string, RegExp, string, RegExp, number]> = [
      ['no-wait', 'flash_attention', /copyAsyncWait<1>\(\);/, 'copyAsyncWait<2>();', /cp\.async landing at the wait/, 1],
      ['no-release-barrier', 'flash_attention', /void release\(\) \{ __syncthreads\(\); \}/, 'void release() {}', /warps first/, 1],
      ['no-alpha-edit', 'backpack_flash', /edited && j < T && mask\[j\] \? editFactor : 1\.0f/, '1.0f', /^out .*alpha edit/, 3],
    ];
    test.each(mutations)('a kernel mutated with %s fails the check', (name, kernel, from, to, expected, cases) => {
      const file = mutant(kernel, name, from, to);
      try {
        const { status, lines } = runCheck(build(`mutant-${name}`, file, checkSource(kernel)), {}, ['--cases', String(cases)]);
        expect(status).toBe(1);
        const failed = lines.filter((l) => !l.ok);
        expect(failed.length).toBeGreaterThan(0);
        expect(failed.some((l) => expected.test(l.what ?? ''))).toBe(true);
      } finally {
        fs.rmSync(file, { force: true });
      }
    }, 6 * 60 * 1000);
  });
}
