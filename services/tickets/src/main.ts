/**
 * Reference tenant service for Atrium: support tickets per tenant, behind the gateway's signed
 * identity.
 *
 *   node --import tsx services/tickets/src/main.ts --jwks <url> --audience tickets
 *        [--port 8002] [--host 127.0.0.1] [--issuer <iss>] [--keys acme=KEY1,globex=KEY2]
 *
 * Prints `tickets listening on http://HOST:PORT` once it serves; drains on SIGTERM/SIGINT.
 */
import { parseArgs } from 'node:util';
import { startTicketsServer } from './tickets-server.js';
import { announceAndDrain } from '../../lifecycle.js';

const DEFAULT_PORT = 8002;
const DEFAULT_HOST = '127.0.0.1';

const usage =
  'usage: tickets --jwks <url> --audience <aud> [--port <0-65535>] [--host <addr>] ' +
  '[--issuer <iss>] [--keys <tenant>=<key>[,<tenant>=<key>...]]';

function fail(message: string): never {
  console.error(`tickets: ${message}\n${usage}`);
  process.exit(2);
}

/** `acme=KEY1,globex=KEY2` → Map; never echoes a key in its messages. */
function parseKeys(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const pair of text.split(',')) {
    const at = pair.indexOf('=');
    const tenant = at < 0 ? pair : pair.slice(0, at);
    if (at <= 0 || at === pair.length - 1) {
      fail(`--keys entries must be <tenant>=<key>; the entry for "${tenant}" is not`);
    }
    if (keys.has(tenant)) fail(`--keys names tenant "${tenant}" twice`);
    keys.set(tenant, pair.slice(at + 1));
  }
  return keys;
}

let args;
try {
  args = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: DEFAULT_HOST },
      jwks: { type: 'string' },
      audience: { type: 'string' },
      issuer: { type: 'string' },
      keys: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }).values;
} catch (err) {
  fail((err as Error).message);
}
if (args.help === true) {
  console.log(usage);
  process.exit(0);
}

if (args.jwks === undefined) fail("--jwks is required (the gateway's JWKS URL)");
let jwks: URL;
try {
  jwks = new URL(args.jwks);
} catch {
  fail(`--jwks must be a URL, got "${args.jwks}"`);
}
if (jwks.protocol !== 'http:' && jwks.protocol !== 'https:') {
  fail(`--jwks must be an http(s) URL, got "${args.jwks}"`);
}
if (args.audience === undefined || args.audience === '') fail('--audience is required');
const port = args.port === undefined ? DEFAULT_PORT : Number(args.port);
if (
  args.port !== undefined &&
  (args.port.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65_535)
) {
  fail(`--port must be an integer in 0..65535, got "${args.port}"`);
}

const keys = args.keys === undefined ? undefined : parseKeys(args.keys);
const log = (message: string): void => console.error(`tickets: ${message}`);

let server;
try {
  server = await startTicketsServer({
    host: args.host,
    port,
    jwks,
    audience: args.audience,
    issuer: args.issuer,
    keys,
    log,
  });
} catch (err) {
  log(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

log(
  `audience "${args.audience}", keys from ${jwks.href}` +
    (keys === undefined ? '' : `, API keys for ${[...keys.keys()].join(', ')}`),
);
// The one stdout line a parent process waits for (see spawn.ts), then a drain on signals.
announceAndDrain('tickets', server, log);
