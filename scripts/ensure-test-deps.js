#!/usr/bin/env node
// `npm test` runs this first (pretest): it installs what the suite needs that npm cannot, so a fresh
// machine runs every test instead of skipping some. Today that is the pinned Temporal CLI, whose dev
// server the Temporal engine tests start (test/helpers/temporal-server.ts).
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');

function findTemporal() {
  const candidates = [];
  if (process.env.TEMPORAL_CLI) candidates.push(process.env.TEMPORAL_CLI);
  for (const dir of (process.env.PATH || '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, 'temporal'));
  let gopath = process.env.GOPATH || path.join(os.homedir(), 'go');
  try {
    gopath = execFileSync('go', ['env', 'GOPATH'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() || gopath;
  } catch {
    /* no Go: fall back to the default GOPATH */
  }
  candidates.push(path.join(gopath, 'bin', 'temporal'));
  return candidates.find((c) => {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return fs.statSync(c).isFile();
    } catch {
      return false;
    }
  });
}

if (process.env.PIPELINE_SKIP_TEST_DEPS === '1') {
  console.log('test deps: check skipped (PIPELINE_SKIP_TEST_DEPS=1)');
  process.exit(0);
}
const found = findTemporal();
if (found) {
  console.log(`test deps: temporal CLI ${found}`);
  process.exit(0);
}
console.log('test deps: the Temporal CLI is missing; installing the pinned version (scripts/install-temporal.sh)');
const r = spawnSync(path.join(ROOT, 'scripts', 'install-temporal.sh'), { stdio: 'inherit' });
if (r.status !== 0 || !findTemporal()) {
  console.error('test deps: could not install the Temporal CLI; the Temporal tests need it. Install Go and rerun, or set TEMPORAL_CLI.');
  process.exit(1);
}
console.log(`test deps: temporal CLI ${findTemporal()}`);
