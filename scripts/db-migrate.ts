/**
 * `npm run db:migrate` — creates (idempotently) the tables of every tenant in the config file
 * named by ATRIUM_CONFIG, on DATABASE_URL (schema and row tenants) or each database tenant's
 * own URL. Demo mode (no ATRIUM_CONFIG) needs none of this: PGlite is migrated at start.
 */
import { forEachTenant } from '../src/backends/data/admin.js';
import { migrateTenant } from '../src/backends/data/migrations.js';
import { loadConfigFile, readEnv } from '../src/config/load.js';
import { reportOutcomes, runScript } from './tenant-task.js';

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
  return reportOutcomes(outcomes, 'migrated');
}

runScript(main);
