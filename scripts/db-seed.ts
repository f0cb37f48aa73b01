/**
 * `npm run db:seed [-- --customers 200 --min-orders 0 --max-orders 12]` — migrates, then
 * inserts the deterministic demo rows of every tenant in the config file named by
 * ATRIUM_CONFIG (idempotent: rows already there are kept). Targets as for db:migrate.
 */
import { parseArgs } from 'node:util';
import { forEachTenant } from '../src/backends/data/admin.js';
import { migrateTenant } from '../src/backends/data/migrations.js';
import {
  DEFAULT_ORDERS_PER_CUSTOMER,
  DEFAULT_SEED_CUSTOMERS,
  seedTenant,
} from '../src/backends/data/seed.js';
import { ConfigError, loadConfigFile, readEnv } from '../src/config/load.js';
import { reportOutcomes, runScript } from './tenant-task.js';

function intOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new ConfigError(
      `--${name} must be a non-negative integer; found ${JSON.stringify(value)}`,
    );
  }
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      customers: { type: 'string' },
      'min-orders': { type: 'string' },
      'max-orders': { type: 'string' },
    },
  });
  const customers = intOption('customers', values.customers, DEFAULT_SEED_CUSTOMERS);
  const ordersPerCustomer = {
    min: intOption('min-orders', values['min-orders'], DEFAULT_ORDERS_PER_CUSTOMER.min),
    max: intOption('max-orders', values['max-orders'], DEFAULT_ORDERS_PER_CUSTOMER.max),
  };
  if (ordersPerCustomer.min > ordersPerCustomer.max) {
    throw new ConfigError('--min-orders must not exceed --max-orders');
  }
  const env = readEnv();
  if (!env.ATRIUM_CONFIG) {
    console.error(
      'db:seed needs ATRIUM_CONFIG (the config file listing the tenants) and DATABASE_URL.\n' +
        'Without them Atrium runs on embedded PGlite, which is seeded at start.',
    );
    return 2;
  }
  const config = loadConfigFile(env);
  const names = { rowRole: config.data.rowRole };
  const outcomes = await forEachTenant({
    config,
    task: async (session, tenant) => {
      await migrateTenant(session, tenant, names);
      const r = await seedTenant(session, tenant, { ...names, customers, ordersPerCustomer });
      return (
        `seeded (${tenant.data.strategy}): ${r.customers} customers (${r.customersInserted} new), ` +
        `${r.orders} orders (${r.ordersInserted} new)`
      );
    },
  });
  return reportOutcomes(outcomes, 'seeded');
}

runScript(main);
