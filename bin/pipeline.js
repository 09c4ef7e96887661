#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/ (built by `npm ci` / `npm run build`).
const path = require('path');
const fs = require('fs');
const entry = path.join(__dirname, '..', 'dist', 'pipelines', 'cli.js');
if (!fs.existsSync(entry)) {
  process.stderr.write(`pipeline: ${entry} is missing; run \`npm run build\` first\n`);
  process.exit(2);
}
require(entry).main(process.argv.slice(2)).then(
  (code) => process.exit(code ?? 0),
  (err) => { process.stderr.write(`pipeline: ${err && err.stack ? err.stack : err}\n`); process.exit(1); },
);
