/** The code version recorded in lineage: package version + git commit when available. */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

let cached: string | undefined;

export function codeVersion(): string {
  if (cached !== undefined) return cached;
  const root = path.resolve(__dirname, '..', __dirname.includes(`${path.sep}dist${path.sep}`) ? '..' : '.');
  let version = '0.0.0';
  try {
    version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
  } catch {
    /* not in a checkout */
  }
  let commit = '';
  try {
    commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    /* no git */
  }
  cached = commit ? `${version}+${commit}` : version;
  return cached;
}
