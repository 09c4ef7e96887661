/**
 * `pipeline report [--store dir] [--open] [--json]`: prints the path of the newest committed report
 * (report.html; report.md beside it) and optionally opens it with the desktop's opener.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { parseArgs } from 'util';
import { COMPLETE_FILE, LINEAGE_FILE, type Lineage } from '../../pipelines/store';

export function findLatestReport(storeRoot: string): { dir: string; lineage: Lineage } | null {
  const artifacts = path.join(storeRoot, 'artifacts');
  if (!fs.existsSync(artifacts)) return null;
  let best: { dir: string; lineage: Lineage } | null = null;
  for (const key of fs.readdirSync(artifacts)) {
    const dir = path.join(artifacts, key);
    const lineageFile = path.join(dir, LINEAGE_FILE);
    if (!fs.existsSync(path.join(dir, COMPLETE_FILE)) || !fs.existsSync(lineageFile)) continue;
    const lineage = JSON.parse(fs.readFileSync(lineageFile, 'utf8')) as Lineage;
    if (lineage.uses !== 'report' || !fs.existsSync(path.join(dir, 'report.html'))) continue;
    if (!best || lineage.endedAt > best.lineage.endedAt) best = { dir, lineage };
  }
  return best;
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { store: { type: 'string' }, open: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`pipeline report: ${(err as Error).message}\nusage: pipeline report [--store dir] [--open] [--json]\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write('usage: pipeline report [--store dir] [--open] [--json]\n  prints the path of the newest report.html in the artifact store\n');
    return 0;
  }
  const root = path.resolve(values.store ?? process.env.PIPELINE_STORE ?? '.pipeline');
  const found = findLatestReport(root);
  if (!found) {
    process.stderr.write(`pipeline report: no report in ${root} yet; run \`pipeline run report\` (or \`pipeline run all\`) first\n`);
    return 1;
  }
  const html = path.join(found.dir, 'report.html');
  const md = path.join(found.dir, 'report.md');
  if (values.json) process.stdout.write(JSON.stringify({ html, markdown: md, key: found.lineage.key, run: found.lineage.runId, endedAt: found.lineage.endedAt }) + '\n');
  else process.stdout.write(`${html}\n`);
  if (values.open) {
    const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
    const child = spawn(opener, [html], { stdio: 'ignore', detached: true });
    child.on('error', () => process.stderr.write(`pipeline report: could not run ${opener}; open ${html} by hand\n`));
    child.unref();
  }
  return 0;
}
