#!/usr/bin/env node
// Builds the native engine (native/build/Release/backpack_native.node) with cmake-js at install time.
// Node-API build: headers come from node-api-headers and node-addon-api, so nothing is downloaded.
// Environment: BACKPACK_CUDA=1 builds the CUDA backend; BACKPACK_NO_BLAS=1 forces the built-in GEMM;
// BACKPACK_SKIP_NATIVE=1 skips the build (TypeScript-only work).
'use strict';
const path = require('node:path');
const fs = require('node:fs');

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
  const cmakeOptions = {
    BACKPACK_CUDA: process.env.BACKPACK_CUDA === '1' ? 'ON' : 'OFF',
    BACKPACK_BLAS: process.env.BACKPACK_NO_BLAS === '1' ? 'OFF' : 'ON',
  };
  const build = new BuildSystem({
    directory: dir,
    out: path.join(dir, 'build'),
    config: 'Release',
    cMakeOptions: cmakeOptions,
    log: process.env.BACKPACK_BUILD_VERBOSE === '1',
  });
  await build.rebuild();
  const artifact = path.join(dir, 'build', 'Release', 'backpack_native.node');
  if (!fs.existsSync(artifact)) throw new Error(`native: build finished but ${artifact} is missing`);
  console.log(`native: built ${path.relative(process.cwd(), artifact)}`);
}

main().catch((err) => {
  console.error(`native: build failed: ${err && err.message ? err.message : err}`);
  process.exit(1);
});
