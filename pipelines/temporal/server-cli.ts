/** `pipeline server`: a local Temporal dev server for the pipeline (SQLite file, search attributes, Web UI). */
import * as path from 'path';
import { parseArgs } from 'util';
import { DevServer, findTemporalCli, installInstructions } from './dev-server';
import { SEARCH_ATTRIBUTE_TYPES } from './naming';

const HELP = `usage: pipeline server [--port 7233] [--ui-port 8233] [--db-filename .pipeline/temporal.sqlite]
                       [--ip 127.0.0.1] [--namespace ns] [--headless]

Starts \`temporal server start-dev\` with the project's search attributes registered
(${Object.keys(SEARCH_ATTRIBUTE_TYPES).join(', ')}) and runs until Ctrl-C.
Workflows persist in the SQLite file, so a restarted server continues the runs it had.
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string', default: '7233' },
        'ui-port': { type: 'string' },
        'db-filename': { type: 'string' },
        ip: { type: 'string', default: '127.0.0.1' },
        namespace: { type: 'string', multiple: true },
        headless: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`pipeline server: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const cli = findTemporalCli();
  if (!cli) {
    process.stderr.write(`pipeline server: ${installInstructions()}\n`);
    return 1;
  }
  const port = Number(values.port);
  const uiPort = values['ui-port'] ? Number(values['ui-port']) : port + 1000;
  if (![port, uiPort].every((p) => Number.isInteger(p) && p > 0 && p < 65536)) {
    process.stderr.write('pipeline server: --port and --ui-port must be TCP ports\n');
    return 2;
  }
  const dbFile = path.resolve(values['db-filename'] ?? path.join(process.env.PIPELINE_STORE ?? '.pipeline', 'temporal.sqlite'));
  const server = await DevServer.start({ cli, ip: values.ip, port, uiPort, headless: values.headless, dbFile, namespaces: values.namespace, inheritOutput: true });
  process.stdout.write(
    `Temporal dev server (${cli}) ready\n  address  ${server.address}   (export TEMPORAL_ADDRESS=${server.address})\n` +
      `${server.uiUrl ? `  Web UI   ${server.uiUrl}\n` : ''}  database ${dbFile}\nCtrl-C to stop.\n`,
  );
  const stop = () => void server.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const code = await server.wait();
  return code === 0 || code === null ? 0 : 1;
}
