/**
 * CLI commands of checkpoint interop:
 *   pipeline model inspect <file|dir> [--json] [--all]
 *   pipeline model import <lightning|hf-backpack|hf-gpt2> <file|dir> <outDir> [--n-head N] [--json]
 *   pipeline model export <ourCheckpointDir> <outDir> [--allow-nonstandard] [--json]
 * Inspect reads only headers/pickles: nothing is loaded into the engine.
 */
import { parseArgs } from 'util';
import { inspectCheckpoint, importCheckpoint, exportHf, type ImportSourceKind, type InspectReport } from './index';

type Sub = 'inspect' | 'import' | 'export';

const USAGE: Record<Sub, string> = {
  inspect: 'usage: pipeline model inspect <file|dir> [--json] [--all]\n  format, keys, shapes, dtypes and parameter count of a checkpoint (safetensors, pytorch_model.bin, Lightning .ckpt)\n',
  import: 'usage: pipeline model import <lightning|hf-backpack|hf-gpt2> <file|dir> <outDir> [--n-head N] [--json]\n  converts a checkpoint to ours (config.json + model.safetensors)\n',
  export: 'usage: pipeline model export <checkpointDir> <outDir> [--allow-nonstandard] [--json]\n  writes our checkpoint as a Hugging Face model directory\n',
};

export function forCommand(sub: Sub): { run(argv: string[]): Promise<number> } {
  return { run: (argv) => runSub(sub, argv) };
}

async function runSub(sub: Sub, argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        json: { type: 'boolean', default: false },
        all: { type: 'boolean', default: false },
        'n-head': { type: 'string' },
        'allow-nonstandard': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    process.stderr.write(`pipeline model ${sub}: ${(err as Error).message}\n${USAGE[sub]}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE[sub]);
    return 0;
  }
  const wanted = { inspect: 1, import: 3, export: 2 }[sub];
  if (positionals.length !== wanted) {
    process.stderr.write(`pipeline model ${sub}: expected ${wanted} argument(s), got ${positionals.length}\n${USAGE[sub]}`);
    return 2;
  }
  try {
    if (sub === 'inspect') {
      const report = inspectCheckpoint(positionals[0]);
      process.stdout.write(values.json ? JSON.stringify(report) + '\n' : renderInspect(report, values.all));
      return 0;
    }
    if (sub === 'import') {
      const kind = positionals[0] as ImportSourceKind;
      if (!['lightning', 'hf-backpack', 'hf-gpt2'].includes(kind)) {
        process.stderr.write(`pipeline model import: unknown source "${kind}"\n${USAGE.import}`);
        return 2;
      }
      let nHead: number | undefined;
      if (values['n-head'] !== undefined) {
        nHead = Number(values['n-head']);
        if (!Number.isInteger(nHead) || nHead <= 0) {
          process.stderr.write(`pipeline model import: --n-head must be a positive integer\n`);
          return 2;
        }
      }
      const summary = importCheckpoint(kind, positionals[1], positionals[2], { nHead });
      process.stdout.write(values.json ? JSON.stringify(summary) + '\n' : `${positionals[2]}: ${summary.config.arch}, ${summary.parameters.toLocaleString('en-US')} parameters in ${summary.tensors} tensors\n`);
      return 0;
    }
    const result = exportHf(positionals[0], positionals[1], { allowNonStandardBackpack: values['allow-nonstandard'] });
    process.stdout.write(values.json ? JSON.stringify(result) + '\n' : `${positionals[1]}: ${result.config.arch}, ${result.tensors} tensors (Hugging Face layout)\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`pipeline model ${sub}: ${(err as Error).message}\n`);
    return 1;
  }
}

const MAX_ROWS = 40;

export function renderInspect(r: InspectReport, all = false): string {
  const lines: string[] = [];
  lines.push(`file        ${r.file}`);
  lines.push(`format      ${r.format}${r.kind === 'lightning' ? ' (Lightning checkpoint)' : ''}, ${r.bytes.toLocaleString('en-US')} bytes`);
  const aliases = r.tensors.filter((t) => t.aliasOf).length;
  lines.push(`tensors     ${r.tensors.length - aliases} unique${aliases ? ` + ${aliases} aliases (tied/shared)` : ''}`);
  lines.push(`parameters  ${r.parameters.toLocaleString('en-US')} (${(r.tensorBytes / 1e6).toFixed(1)} MB of tensor data)`);
  lines.push(`dtypes      ${Object.entries(r.dtypes).map(([d, n]) => `${d} × ${n}`).join(', ')}`);
  if (r.config) lines.push(`config      ${['n_embd', 'n_layer', 'n_head', 'vocab_size', 'num_senses'].filter((k) => r.config![k] !== undefined).map((k) => `${k}=${r.config![k]}`).join(' ')}`);
  if (r.topLevelKeys) lines.push(`top level   ${r.topLevelKeys.join(', ')}`);
  lines.push('');
  const width = Math.min(80, Math.max(...r.tensors.map((t) => t.name.length), 4));
  const rows = all ? r.tensors : r.tensors.slice(0, MAX_ROWS);
  for (const t of rows) {
    lines.push(`${t.name.padEnd(width)}  ${t.dtype.padEnd(5)} [${t.shape.join(', ')}]${t.aliasOf ? `  = ${t.aliasOf}` : ''}`);
  }
  if (rows.length < r.tensors.length) lines.push(`… ${r.tensors.length - rows.length} more (--all lists every tensor)`);
  return lines.join('\n') + '\n';
}
