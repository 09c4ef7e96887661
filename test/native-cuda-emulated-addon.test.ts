/**
 * The Node-level CUDA path where no GPU exists: the addon is built with its CUDA backend compiled for the CPU
 * emulator (BACKPACK_CUDA=emulator node native/build.js; `cuda:0` then runs the engine's kernels and GEMMs on the
 * CPU), and the CUDA parity suite (test/native-cuda-parity.test.ts, which skips without a GPU) runs against it
 * through BACKPACK_NATIVE_ADDON: CudaModel and CudaModelFp16 through the TypeScript facade, against the CPU backend,
 * with two emulated GPUs (BACKPACK_EMULATED_GPUS=2) so its data-parallel tests run too.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const root = path.join(__dirname, '..');
const cudaHome = process.env.BACKPACK_TEST_CUDA_HOME ?? path.join(root, '.tools', 'cuda', 'home');
const haveHeaders = fs.existsSync(path.join(cudaHome, 'include', 'cuda_runtime.h'));
const buildDir = path.join(root, '.tools', 'emulated-addon');
const addon = path.join(buildDir, 'Release', 'backpack_native.node');

if (!haveHeaders && !process.env.CI) {
  test.skip(`emulated CUDA addon skipped: no CUDA headers in ${cudaHome} (run scripts/install-cuda-toolkit.sh)`, () => undefined);
} else {
  describe('the addon with its CUDA backend on the CPU emulator', () => {
    beforeAll(() => {
      if (!haveHeaders) throw new Error(`no CUDA headers in ${cudaHome}: scripts/install-cuda-toolkit.sh should have installed them`);
      const r = spawnSync(process.execPath, [path.join(root, 'native', 'build.js')], {
        cwd: root,
        env: { ...process.env, CUDA_HOME: cudaHome, BACKPACK_CUDA: 'emulator', BACKPACK_BUILD_DIR: buildDir },
        encoding: 'utf8',
        timeout: 15 * 60 * 1000,
        maxBuffer: 64 * 1024 * 1024,
      });
      if (r.status !== 0) throw new Error(`emulated addon build failed (status ${r.status}):\n${`${r.stdout}${r.stderr}`.slice(-6000)}`);
    }, 16 * 60 * 1000);

    test.each([
      [undefined, 1],
      ['3', 3],
    ])('BACKPACK_EMULATED_GPUS=%s: reports %i emulated CUDA devices', (setting, count) => {
      const env = { ...process.env };
      if (setting) env.BACKPACK_EMULATED_GPUS = setting;
      else delete env.BACKPACK_EMULATED_GPUS;
      const r = spawnSync(process.execPath, ['-e', `const a = require(${JSON.stringify(addon)}); console.log(JSON.stringify(a.cudaDevices()))`], { encoding: 'utf8', env });
      expect(r.status).toBe(0);
      const devices = JSON.parse(r.stdout) as Array<{ index: number; name: string }>;
      expect(devices).toHaveLength(count);
      for (const d of devices) expect(d.name).toContain('CUDA emulator');
    });

    test('the CUDA parity suite passes on cuda:0 and cuda:0,1: fp32 and fp16 builds, data parallel, both architectures', () => {
      const jest = path.join(root, 'node_modules', 'jest', 'bin', 'jest.js');
      const r = spawnSync(process.execPath, [jest, '--ci', '--watchman=false', '--colors=false', 'test/native-cuda-parity.test.ts'], {
        cwd: root,
        env: { ...process.env, BACKPACK_NATIVE_ADDON: addon, BACKPACK_EMULATED_GPUS: '2' },
        encoding: 'utf8',
        timeout: 10 * 60 * 1000,
      });
      const out = `${r.stdout}${r.stderr}`;
      if (r.status !== 0) throw new Error(`parity suite failed on the emulated addon:\n${out.slice(-6000)}`);
      expect(out).not.toMatch(/skipped/);
      expect(out).toMatch(/Tests:\s+10 passed, 10 total/);
    }, 11 * 60 * 1000);
  });
}
