/**
 * Reference tenant GraphQL service ("realm") for Atrium: extends one tenant's `Customer` with a
 * loyalty account, behind the gateway's signed identity.
 *
 *   node --import tsx services/realm/src/main.ts --jwks <url> [--audience realm]
 *        [--port 8003] [--host 127.0.0.1] [--issuer <iss>]
 *
 * Prints `realm listening on http://HOST:PORT` once it serves; drains on SIGTERM/SIGINT.
 */
import { parseArgs } from 'node:util';
import { startRealmServer } from './realm-server.js';
import { announceAndDrain } from '../../lifecycle.js';

const DEFAULT_PORT = 8003;
const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_AUDIENCE = 'realm';

const usage =
  'usage: realm --jwks <url> [--audience <aud>] [--port <0-65535>] [--host <addr>] [--issuer <iss>]';

function fail(message: string): never {
  console.error(`realm: ${message}\n${usage}`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: DEFAULT_HOST },
      jwks: { type: 'string' },
      audience: { type: 'string', default: DEFAULT_AUDIENCE },
      issuer: { type: 'string' },
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
if (args.audience === '') fail('--audience must not be empty');
const port = args.port === undefined ? DEFAULT_PORT : Number(args.port);
if (
  args.port !== undefined &&
  (args.port.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65_535)
) {
  fail(`--port must be an integer in 0..65535, got "${args.port}"`);
}

const log = (message: string): void => console.error(`realm: ${message}`);
let server;
try {
  server = await startRealmServer({
    host: args.host,
    port,
    jwks,
    audience: args.audience,
    issuer: args.issuer,
    log,
  });
} catch (err) {
  log(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
log(`audience "${args.audience}", keys from ${jwks.href}`);
// The one stdout line a parent process waits for (see spawn.ts), then a drain on signals.
announceAndDrain('realm', server, log);
