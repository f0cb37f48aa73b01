/**
 * `atrium` — the gateway's command line. Each command runs the script that `npm run` runs
 * (`src/main.ts`, `scripts/check.ts`, …) with the remaining arguments as its own: the command
 * is parsed here, the script parses the rest, so `npm run check` and `atrium check` are one
 * program. Run through `bin/atrium.mjs` (the package's `bin`).
 */
import { parseArgs } from 'node:util';

interface Command {
  summary: string;
  usage: string;
  /** The module to run, relative to this file (its `.js` when compiled). */
  module: string;
  /** The script has no options of its own: `--help` is answered here. */
  ownHelp: boolean;
}

const EXT = import.meta.url.endsWith('.ts') ? 'ts' : 'js';

const COMMANDS: Record<string, Command> = {
  start: {
    summary: 'run the gateway (demo mode without ATRIUM_CONFIG)',
    usage: 'atrium start\n\nEnvironment: ATRIUM_CONFIG, PORT, HOST, DATABASE_URL, REDIS_URL, …',
    module: '../src/main',
    ownHelp: false,
  },
  check: {
    summary: "check the config, the source bindings and every tenant's tables, without starting",
    usage:
      'atrium check\n\nConfig from ATRIUM_CONFIG (default: the demo example). Exit 0 when everything\n' +
      'fits, 1 when a tenant does not, 2 when the config or the schema cannot be used.',
    module: './check',
    ownHelp: false,
  },
  token: {
    summary: 'mint a demo token signed with the dev key pair',
    usage: 'atrium token --tenant <id> [--sub <subject>] [--scope "read write"] [--ttl <seconds>]',
    module: './token',
    ownHelp: true,
  },
  tenants: {
    summary: 'list, get, put, suspend, resume, delete or reset tenants at run time',
    usage: 'atrium tenants list|get ID|put FILE|suspend ID|resume ID|delete ID|reset ID|…',
    module: './tenants',
    ownHelp: true,
  },
  'db migrate': {
    summary: 'apply the data.migrations files not yet applied, per tenant',
    usage:
      'atrium db migrate\n\nConfig from ATRIUM_CONFIG; DATABASE_URL for schema and row tenants.',
    module: './db-migrate',
    ownHelp: false,
  },
  'db seed': {
    summary: "insert the data.seed module's sample rows (idempotent)",
    usage: 'atrium db seed [--size <n>]\n\nConfig from ATRIUM_CONFIG, as db migrate.',
    module: './db-seed',
    ownHelp: false,
  },
};

function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`,
  );
  return `usage: atrium <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun \`atrium <command> --help\` for a command's options.\n`;
}

async function run(argv: readonly string[]): Promise<number> {
  const { positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: false,
  });
  const first = argv[0];
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    process.stdout.write(overview());
    return first === undefined ? 1 : 0;
  }
  const name = first === 'db' ? `db ${argv[1] ?? ''}` : first;
  const command = COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`atrium: unknown command "${positionals.join(' ')}"\n\n${overview()}`);
    return 1;
  }
  const rest = argv.slice(name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    if (!command.ownHelp) {
      process.stdout.write(`usage: ${command.usage}\n\n${command.summary}.\n`);
      return 0;
    }
  }
  const module = new URL(`${command.module}.${EXT}`, import.meta.url);
  // The scripts read their own arguments from process.argv, as under `npm run`.
  process.argv = [process.argv[0] ?? process.execPath, module.pathname, ...rest];
  await import(module.href);
  return 0;
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
