/**
 * `npm run db:migrate` — creates (idempotently) the tables of every tenant in the config file
 * named by ATRIUM_CONFIG, on DATABASE_URL (schema and row tenants) or each database tenant's
 * own URL. Demo mode (no ATRIUM_CONFIG) needs none of this: PGlite is migrated at start.
 */
import { forEachTenant } from '../src/backends/data/admin.js';
import { migrateTenant } from '../src/backends/data/migrations.js';
import { ConfigError, loadConfigFile, readEnv } from '../src/config/load.js';

async function main(): Promise<number> {
  const env = readEnv();
  if (!env.ATRIUM_CONFIG) {
    console.error(
      'db:migrate needs ATRIUM_CONFIG (the config file listing the tenants) and DATABASE_URL.\n' +
        'Without them Atrium runs on embedded PGlite, which is migrated and seeded at start.',
    );
    return 2;
  }
  const config = loadConfigFile(env);
  const outcomes = await forEachTenant({
    config,
    task: async (session, tenant) => {
      const result = await migrateTenant(session, tenant, { rowRole: config.data.rowRole });
      const where =
        result.strategy === 'row'
          ? `shared tables in schema "${result.schema}", RLS as role "${config.data.rowRole}"`
          : `tables in schema "${result.schema}"`;
      return `migrated (${result.strategy}): ${where}`;
    },
  });
  for (const o of outcomes) {
    const line = `${o.ok ? 'ok  ' : 'FAIL'} ${o.tenantId} @ ${o.target}: ${o.message}`;
    if (o.ok) console.log(line);
    else console.error(line);
  }
  const failed = outcomes.filter((o) => !o.ok).length;
  console.log(`${outcomes.length - failed} of ${outcomes.length} tenants migrated`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exitCode = 2;
  },
);
