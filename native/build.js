#!/usr/bin/env node
// Builds the native engine (native/build/Release/backpack_native.node) with cmake-js at install time.
// Node-API build: headers come from node-api-headers and node-addon-api, so nothing is downloaded.
// Environment: BACKPACK_CUDA=1 builds the CUDA backend; BACKPACK_NO_BLAS=1 forces the built-in GEMM;
// BACKPACK_SKIP_NATIVE=1 skips the build (TypeScript-only work).
// The CUDA backend is built automatically when a toolkit is found (CUDA_HOME/bin/nvcc or nvcc on PATH); if that
// automatic build fails the CPU-only engine is built instead. BACKPACK_CUDA=0 never builds it, BACKPACK_CUDA=1
// requires it. BACKPACK_CUDA=emulator builds it for the CPU emulator instead (src/cuda/emulator/: `cuda:0` runs on the
// CPU; only the toolkit's headers are needed), for the Node-level CUDA tests on machines without a GPU.
// BACKPACK_BUILD_DIR builds elsewhere (incrementally), e.g. the CUDA compile check of the tests.
'use strict';
const path = require('node:path');
const fs = require('node:fs');

// nvcc of CUDA_HOME, else the first on PATH; null when there is none.
function findNvcc() {
  const home = process.env.CUDA_HOME || process.env.CUDA_PATH;
  if (home) {
    const p = path.join(home, 'bin', 'nvcc');
    if (fs.existsSync(p)) return p;
  }
  for (const d of (process.env.PATH || '').split(path.delimiter)) {
    const p = path.join(d, 'nvcc');
    if (d && fs.existsSync(p)) return p;
  }
  return null;
}

async function main() {
  if (process.env.BACKPACK_SKIP_NATIVE === '1') {
    console.log('native: skipped (BACKPACK_SKIP_NATIVE=1)');
    return;
  }
  let BuildSystem;
  try {
    ({ BuildSystem } = require('cmake-js'));
  } catch (e) {
    console.error('native: cmake-js is not installed; run npm ci first');
    process.exit(1);
  }
  const dir = __dirname;
  const out = process.env.BACKPACK_BUILD_DIR ? path.resolve(process.env.BACKPACK_BUILD_DIR) : path.join(dir, 'build');
  const nvcc = findNvcc();
  if (process.env.BACKPACK_CUDA === 'emulator') return buildEmulated(BuildSystem, dir, out);
  const cudaMode = process.env.BACKPACK_CUDA === '1' ? 'required' : process.env.BACKPACK_CUDA === '0' || !nvcc ? 'off' : 'auto';
  if (cudaMode === 'required' && !nvcc) throw new Error('BACKPACK_CUDA=1 but no CUDA toolkit found (set CUDA_HOME or put nvcc on PATH)');
  const configure = async (cuda) => {
    const cmakeOptions = {
      BACKPACK_CUDA: cuda ? 'ON' : 'OFF',
      BACKPACK_BLAS: process.env.BACKPACK_NO_BLAS === '1' ? 'OFF' : 'ON',
    };
    if (cuda) cmakeOptions.CMAKE_CUDA_COMPILER = nvcc;
    const build = new BuildSystem({
      directory: dir,
      out,
      config: 'Release',
      cMakeOptions: cmakeOptions,
      log: process.env.BACKPACK_BUILD_VERBOSE === '1',
    });
    if (process.env.BACKPACK_BUILD_DIR) await build.build();
    else await build.rebuild();
  };
  if (cudaMode === 'auto') {
    try {
      await configure(true);
      console.log(`native: CUDA backend built with ${nvcc}`);
    } catch (e) {
      console.warn(`native: CUDA build failed (${e && e.message ? e.message : e}); building the CPU-only engine`);
      await configure(false);
    }
  } else {
    await configure(cudaMode === 'required');
  }
  const artifact = path.join(out, 'Release', 'backpack_native.node');
  if (!fs.existsSync(artifact)) throw new Error(`native: build finished but ${artifact} is missing`);
  console.log(`native: built ${path.relative(process.cwd(), artifact)}`);
}

// The CUDA backend for the CPU emulator, headers from CUDA_HOME (default: the toolkit scripts/install-cuda-toolkit.sh
// puts in .tools/cuda/home).
async function buildEmulated(BuildSystem, dir, out) {
  const home = process.env.CUDA_HOME || path.join(dir, '..', '.tools', 'cuda', 'home');
  const include = path.join(home, 'include');
  if (!fs.existsSync(path.join(include, 'cuda_runtime.h'))) throw new Error(`BACKPACK_CUDA=emulator needs the CUDA headers: none in ${include}`);
  const build = new BuildSystem({
    directory: dir,
    out,
    config: 'Release',
    cMakeOptions: { BACKPACK_CUDA: 'OFF', BACKPACK_CUDA_EMULATOR: 'ON', BACKPACK_CUDA_INCLUDE: include, BACKPACK_BLAS: process.env.BACKPACK_NO_BLAS === '1' ? 'OFF' : 'ON' },
    log: process.env.BACKPACK_BUILD_VERBOSE === '1',
  });
  if (process.env.BACKPACK_BUILD_DIR) await build.build();
  else await build.rebuild();
  const artifact = path.join(out, 'Release', 'backpack_native.node');
  if (!fs.existsSync(artifact)) throw new Error(`native: build finished but ${artifact} is missing`);
  console.log(`native: built ${path.relative(process.cwd(), artifact)} (CUDA backend on the CPU emulator)`);
}

main().catch((err) => {
  console.error(`native: build failed: ${err && err.message ? err.message : err}`);
  process.exit(1);
});
