/**
 * `npm run db:migrate` — applies the migration files of `data.migrations` not yet applied to
 * each tenant of the config file named by ATRIUM_CONFIG (versions recorded per schema in
 * `atrium_migrations`; row tenants share one schema, migrated once, with RLS forced by Atrium),
 * on DATABASE_URL (schema and row tenants) or each database tenant's own URL, and the control
 * schema holding the durable copy of operator decisions
 * (`liveConfig.controlSchema`) on DATABASE_URL. Demo mode (no ATRIUM_CONFIG) needs none of
 * this: PGlite is migrated at start.
 */
import { forEachTenant, redactUrl } from '../src/backends/data/admin.js';
import { migrateTenant } from '../src/backends/data/migrations.js';
import { loadConfigFile, readEnv } from '../src/config/load.js';
import { createControlPool, createPostgresControlStore } from '../src/store/control-store.js';
import { reportOutcomes, runScript } from './tenant-task.js';

/** The control schema (the gateways create it on first use too, given the privilege). */
async function migrateControl(url: string, schema: string): Promise<boolean> {
  const pool = createControlPool({ url, timeoutMs: 10_000 });
  try {
    await createPostgresControlStore({ pool, schema }).migrate();
    console.log(`ok   control @ ${redactUrl(url)}: schema "${schema}" (durable operator state)`);
    return true;
  } catch (error) {
    console.error(`FAIL control @ ${redactUrl(url)}: ${(error as Error).message}`);
    return false;
  } finally {
    await pool.end();
  }
}

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
  const control = config.data.url
    ? await migrateControl(config.data.url, config.liveConfig.controlSchema)
    : true;
  const outcomes = await forEachTenant({
    config,
    task: async (session, tenant) => {
      const result = await migrateTenant(session, tenant, {
        dir: config.data.migrations,
        rowRole: config.data.rowRole,
      });
      const where =
        result.strategy === 'row'
          ? `shared tables in schema "${result.schema}", RLS as role "${config.data.rowRole}"` +
            ` on ${result.rowSecurity?.tables.join(', ') || 'no tables'}`
          : `tables in schema "${result.schema}"`;
      const applied =
        result.applied.length === 0
          ? 'nothing to apply (up to date)'
          : `applied ${result.applied.join(', ')}`;
      return `migrated (${result.strategy}): ${where}; ${applied}`;
    },
  });
  const code = reportOutcomes(outcomes, 'migrated');
  return control ? code : 1;
}

runScript(main);
