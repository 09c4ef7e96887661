/**
 * Starts a worker thread from one of our modules. Built code (dist/*.js) runs directly; from the
 * TypeScript sources (tests, ts tooling) the worker first registers an @swc/core transpile hook so it
 * can `require` .ts files the same way the parent does.
 */
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';

export function spawnModuleWorker(modulePathWithoutExt: string, workerData: unknown): Worker {
  const js = `${modulePathWithoutExt}.js`;
  if (fs.existsSync(js)) return new Worker(js, { workerData });
  const ts = `${modulePathWithoutExt}.ts`;
  if (!fs.existsSync(ts)) throw new Error(`worker module ${modulePathWithoutExt}(.js|.ts) not found`);
  const bootstrap = `
    const swc = require('@swc/core');
    const fs = require('fs');
    require.extensions['.ts'] = function (module, filename) {
      const out = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
        filename, module: { type: 'commonjs' }, jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
      });
      module._compile(out.code, filename);
    };
    require(${JSON.stringify(ts)});
  `;
  return new Worker(bootstrap, { eval: true, workerData });
}
