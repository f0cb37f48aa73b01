/**
 * Mints a demo-mode token signed with the dev key the gateway uses (the same ATRIUM_HOME).
 *
 *   npm run token -- --tenant acme [--sub alice] [--scope "read predict"] [--ttl 1h]
 *
 * Prints only the token on stdout, so `TOKEN=$(npm run -s token -- --tenant acme)` works.
 */
import { parseArgs } from 'node:util';
import { loadOrCreateDevKeys, mintDevToken } from '../src/auth/dev-keys.js';
import { readEnv, resolveHome } from '../src/config/load.js';
import { TENANT_ID_PATTERN } from '../src/config/schema.js';

const USAGE = `Usage: npm run token -- --tenant <id> [--sub <subject>] [--scope "<scopes>"] [--ttl <duration>]

  --tenant  tenant id, a lowercase DNS label (e.g. acme)       required
  --sub     subject                                             default demo-user
  --scope   space-separated scopes                              default "read predict"
  --ttl     lifetime: seconds or 30s, 15m, 1h, 7d               default 1h
`;
const TTL_PATTERN = /^([1-9][0-9]*)(s|m|h|d)?$/;

function usageError(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values: { tenant?: string; sub?: string; scope?: string; ttl?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        tenant: { type: 'string' },
        sub: { type: 'string', default: 'demo-user' },
        scope: { type: 'string', default: 'read predict' },
        ttl: { type: 'string', default: '1h' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    usageError((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const { tenant, sub, scope, ttl = '1h' } = values;
  if (tenant === undefined) usageError('--tenant is required');
  if (!TENANT_ID_PATTERN.test(tenant)) {
    usageError(
      `--tenant must be a lowercase DNS label such as "acme"; got ${JSON.stringify(tenant)}`,
    );
  }
  if (sub === '') usageError('--sub must not be empty');
  const ttlMatch = TTL_PATTERN.exec(ttl);
  if (!ttlMatch)
    usageError(`--ttl must look like 3600, 30s, 15m, 1h or 7d; got ${JSON.stringify(ttl)}`);
  const expiresIn = ttlMatch[2] === undefined ? Number(ttlMatch[1]) : ttl;

  const home = resolveHome(readEnv());
  const keys = await loadOrCreateDevKeys(home);
  const token = await mintDevToken(keys, { tenant, sub, scope, expiresIn });
  process.stdout.write(`${token}\n`);
}

main().catch((error: unknown) => {
  console.error(`token: ${(error as Error)?.message ?? String(error)}`);
  process.exit(1);
});
