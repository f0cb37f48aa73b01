/**
 * Reference Open Inference Protocol v2 server for Atrium.
 *
 *   node --import tsx services/model-server/src/main.ts [--port 8001] [--host 127.0.0.1]
 *        [--repo services/model-server/models] [--recipes <module>] [--workers 2] [--queue 256]
 *        [--max-body-bytes 8388608] [--call-cost-ms <model>=<ms>]… [--instances <model>=<n>]…
 *
 * Prints `model-server listening on http://HOST:PORT` once it serves; drains on SIGTERM/SIGINT.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { DeviceSettings } from './device.js';
import { MAX_CALL_COST_MS, MAX_INSTANCES } from './model-config.js';
import { startModelServer } from './model-server.js';
import { announceAndDrain } from '../../lifecycle.js';

const DEFAULT_PORT = 8001;
const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_REPO = fileURLToPath(new URL('../models', import.meta.url));

const usage =
  'usage: model-server [--port <0-65535>] [--host <addr>] [--repo <dir>] [--recipes <module>] ' +
  '[--workers <1-64>] [--queue <n>] [--max-body-bytes <n>] ' +
  '[--call-cost-ms <model>=<ms>]... [--instances <model>=<n>]...';

function fail(message: string): never {
  console.error(`model-server: ${message}\n${usage}`);
  process.exit(2);
}

function integer(
  name: string,
  value: string | undefined,
  fallback: number | undefined,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    fail(`--${name} must be an integer in ${min}..${max}, got "${value}"`);
  }
  return n;
}

/**
 * `--call-cost-ms churn=8 --instances churn=1`: per model, the settings of its device (given
 * once per model and flag).
 */
function deviceFlags(
  callCosts: readonly string[],
  instances: readonly string[],
): Record<string, Partial<DeviceSettings>> {
  const devices: Record<string, Partial<DeviceSettings>> = {};
  const read = (
    flag: string,
    values: readonly string[],
    field: keyof DeviceSettings,
    valid: (n: number) => boolean,
    range: string,
  ): void => {
    for (const value of values) {
      const at = value.lastIndexOf('=');
      const model = value.slice(0, at);
      const n = Number(value.slice(at + 1));
      if (at < 1 || value.slice(at + 1).trim() === '' || !valid(n)) {
        fail(`--${flag} must be <model>=<${range}>, got "${value}"`);
      }
      const device = (devices[model] ??= {});
      if (device[field] !== undefined) fail(`--${flag} is given twice for model "${model}"`);
      device[field] = n;
    }
  };
  read(
    'call-cost-ms',
    callCosts,
    'callCostMs',
    (n) => Number.isFinite(n) && n >= 0 && n <= MAX_CALL_COST_MS,
    `0-${MAX_CALL_COST_MS}`,
  );
  read(
    'instances',
    instances,
    'instances',
    (n) => Number.isInteger(n) && n >= 1 && n <= MAX_INSTANCES,
    `1-${MAX_INSTANCES}`,
  );
  return devices;
}

let args;
try {
  args = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: DEFAULT_HOST },
      repo: { type: 'string', default: DEFAULT_REPO },
      recipes: { type: 'string' },
      workers: { type: 'string' },
      queue: { type: 'string' },
      'max-body-bytes': { type: 'string' },
      'call-cost-ms': { type: 'string', multiple: true, default: [] },
      instances: { type: 'string', multiple: true, default: [] },
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

const log = (message: string): void => console.error(`model-server: ${message}`);

let server;
try {
  server = await startModelServer({
    repo: args.repo,
    recipes: args.recipes,
    host: args.host,
    port: integer('port', args.port, DEFAULT_PORT, 0, 65_535)!,
    workers: integer('workers', args.workers, undefined, 1, 64),
    maxQueue: integer('queue', args.queue, undefined, 0, 1_000_000),
    maxBodyBytes: integer('max-body-bytes', args['max-body-bytes'], undefined, 1, 1024 ** 3),
    devices: deviceFlags(args['call-cost-ms'], args.instances),
    log,
  });
} catch (err) {
  log(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

if (server.builtModels) log(`built the models of ${args.recipes} into ${server.repository.root}`);
const models = [...server.repository.models.values()].map(
  (m) => `${m.name}[${m.versions.join(',')}]`,
);
log(`serving ${models.join(' ')} from ${server.repository.root}`);
for (const model of server.repository.models.values()) {
  if (model.device === undefined) continue;
  log(
    `${model.name}: ${model.device.instances} instance(s) per version, ` +
      `${model.device.callCostMs} ms fixed cost per infer call`,
  );
}
// The one stdout line a parent process waits for (see spawn.ts), then a drain on signals.
announceAndDrain('model-server', server, log);
