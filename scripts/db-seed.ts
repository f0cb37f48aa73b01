/**
 * `npm run db:seed [-- --size N]` — migrates, then runs the seed module of `data.seed` for every
 * tenant in the config file named by ATRIUM_CONFIG (idempotent: rows already there are kept).
 * `--size` is the seed's top-level row count (demo: customers, default 200; `--customers` is
 * an alias). Targets as for db:migrate.
 */
import { parseArgs } from 'node:util';
import { forEachTenant } from '../src/backends/data/admin.js';
import { migrateTenant } from '../src/backends/data/migrations.js';
import { seedTenant, type SeedReport } from '../src/backends/data/seeding.js';
import { ConfigError, loadConfigFile, readEnv } from '../src/config/load.js';
import { reportOutcomes, runScript } from './tenant-task.js';

function sizeOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new ConfigError(
      `--${name} must be a non-negative integer; found ${JSON.stringify(value)}`,
    );
  }
  return n;
}

function describe(report: SeedReport): string {
  if (report.tables === undefined) return `${report.rows} rows (${report.inserted} new)`;
  return Object.entries(report.tables)
    .map(([table, t]) => `${t.rows} ${table} (${t.inserted} new)`)
    .join(', ');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { size: { type: 'string' }, customers: { type: 'string' } },
  });
  if (values.size !== undefined && values.customers !== undefined) {
    throw new ConfigError('--customers is an alias of --size: give one of them');
  }
  const size = sizeOption('size', values.size) ?? sizeOption('customers', values.customers);
  const env = readEnv();
  if (!env.ATRIUM_CONFIG) {
    console.error(
      'db:seed needs ATRIUM_CONFIG (the config file listing the tenants) and DATABASE_URL.\n' +
        'Without them Atrium runs on embedded PGlite, which is seeded at start.',
    );
    return 2;
  }
  const config = loadConfigFile(env);
  const module = config.data.seed;
  if (module === undefined) {
    throw new ConfigError('db:seed needs data.seed in the config (the path of a seed module)');
  }
  const names = { rowRole: config.data.rowRole };
  const outcomes = await forEachTenant({
    config,
    task: async (session, tenant) => {
      const migrated = await migrateTenant(session, tenant, {
        ...names,
        dir: config.data.migrations,
      });
      const report = await seedTenant(session, tenant, {
        ...names,
        module,
        ...(size === undefined ? {} : { size }),
      });
      const applied =
        migrated.applied.length === 0 ? '' : ` (after applying ${migrated.applied.join(', ')})`;
      return `seeded (${tenant.data.strategy}): ${describe(report)}${applied}`;
    },
  });
  return reportOutcomes(outcomes, 'seeded');
}

runScript(main);
