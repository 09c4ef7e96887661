/**
 * `pipeline` entry point: finds the command (longest match of leading words in the command table)
 * and hands it the remaining arguments.
 */
import { COMMANDS } from './commands';
import { DagError } from './dag-loader';
import { UsageError } from './cli/common';

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(helpText());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version') {
    process.stdout.write(require('../package.json').version + '\n');
    return 0;
  }
  let best: (typeof COMMANDS)[number] | undefined;
  let bestWords = 0;
  for (const cmd of COMMANDS) {
    const words = cmd.path.split(' ');
    if (words.length > bestWords && words.every((w, i) => argv[i] === w)) {
      best = cmd;
      bestWords = words.length;
    }
  }
  if (!best) {
    process.stderr.write(`pipeline: unknown command "${argv[0]}"\n\n${helpText()}`);
    return 2;
  }
  try {
    const mod = await best.load();
    // `resume` shares the run module: tell it which verb it is.
    const rest = argv.slice(bestWords);
    return await mod.run(best.path === 'resume' ? ['--resume', ...rest] : rest);
  } catch (err) {
    if (err instanceof UsageError || err instanceof DagError) {
      process.stderr.write(`pipeline ${best.path}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.path.length));
  const lines = COMMANDS.map((c) => `  ${c.path.padEnd(width)}  ${c.summary}`);
  return `usage: pipeline <command> [options]   (pipeline <command> --help for its options)

commands:
${lines.join('\n')}

common options: --dag <file> (default ./dag.yaml)  --store <dir> (default ./.pipeline)  --json
`;
}
