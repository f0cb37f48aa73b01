import { fileURLToPath } from 'node:url';
import { seed as demoSeed } from '../../../examples/demo/seed.js';
import {
  createPostgresDataSource,
  type PostgresDataSourceOptions,
} from '../../../src/backends/data/postgres.js';
import { type SeedFunction, seedTenant } from '../../../src/backends/data/seeding.js';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import type { QueryEvent, TenantDataRef } from '../../../src/backends/data/types.js';
import { migrateDemoTenant } from '../../support/demo.js';
import {
  createDatabase,
  dbUrl,
  dropDatabase,
  dropSchemasAndRole,
  TEST_DB_URL,
  uniqueSuffix,
} from '../data/support.js';

/** Customers per tenant unless `seed.size` says otherwise. */
export const DEFAULT_FIXTURE_CUSTOMERS = 60;
/** Orders per customer: at least one, so every customer's relation has rows to read. */
export const FIXTURE_ORDERS_PER_CUSTOMER = { min: 1, max: 8 } as const;

/**
 * The fixture's seed module, under the `data.seed` contract (seedTenant runs it in one
 * transaction of each tenant's isolation): the demo example's seed, with every customer given
 * 1..8 orders. seedTenant hands a seed only `size`, so the demo seed's own `ordersPerCustomer`
 * (default 0..12) is set here.
 */
export const seed: SeedFunction = (session, target, options) =>
  demoSeed(session, target, {
    size: options?.size,
    ordersPerCustomer: FIXTURE_ORDERS_PER_CUSTOMER,
  });

const FIXTURE_SEED = fileURLToPath(import.meta.url);

export interface PostgresFixture {
  run: string;
  dataSource: SqlDataSource;
  tenants: { schema: TenantDataRef; row: TenantDataRef; database: TenantDataRef };
  /** Every data statement, in order. */
  events: QueryEvent[];
  cleanup(): Promise<void>;
}

/**
 * Three tenants on this machine's PostgreSQL, one per isolation strategy, migrated with the demo
 * example's migrations and seeded by {@link seed} through seedTenant, behind a real PostgreSQL
 * DataSource. Names carry a per-run suffix; cleanup drops everything.
 */
export async function createPostgresFixture(
  options: {
    poolMax?: number;
    /** `size` customers per tenant (default 60), each with 1..8 orders. */
    seed?: { size?: number };
    /** Also told every data statement (e.g. the gateway's metrics and spans). */
    onQuery?: (event: QueryEvent) => void;
    /** `data.tenantShareMax`: a tenant's share of the shared pool (default half of it). */
    tenantShareMax?: number;
    /** Told how tenants queue for and get shared-pool connections. */
    onSharedPoolEvent?: PostgresDataSourceOptions['onSharedPoolEvent'];
    /** Default 5 s. */
    statementTimeoutMs?: number;
  } = {},
): Promise<PostgresFixture> {
  const run = uniqueSuffix();
  const rowSchema = `atrium_shared_${run}`;
  const rowRole = `atrium_tenant_${run}`;
  const database = `atrium_gw_${run}`;
  const tenants = {
    schema: { id: `sch-${run}`, data: { strategy: 'schema' as const } },
    row: { id: `row-${run}`, data: { strategy: 'row' as const } },
    database: { id: `dbt-${run}`, data: { strategy: 'database' as const, url: dbUrl(database) } },
  };
  await createDatabase(database);
  const events: QueryEvent[] = [];
  const dataSource = createPostgresDataSource({
    url: TEST_DB_URL,
    poolMax: options.poolMax ?? 4,
    tenantShareMax: options.tenantShareMax,
    onSharedPoolEvent: options.onSharedPoolEvent,
    tenantPoolMax: 2,
    maxTenantPools: 4,
    tenantPoolIdleMs: 30_000,
    statementTimeoutMs: options.statementTimeoutMs ?? 5_000,
    rowRole,
    rowSchema,
    onQuery: (event) => {
      events.push(event);
      options.onQuery?.(event);
    },
  });
  for (const tenant of Object.values(tenants)) {
    await dataSource.withSession(tenant, async (session) => {
      await migrateDemoTenant(session, tenant, { rowRole, rowSchema });
      await seedTenant(session, tenant, {
        module: FIXTURE_SEED,
        size: options.seed?.size ?? DEFAULT_FIXTURE_CUSTOMERS,
        rowRole,
        rowSchema,
      });
    });
  }
  return {
    run,
    dataSource,
    tenants,
    events,
    async cleanup() {
      await dataSource.close();
      await dropDatabase(database);
      await dropSchemasAndRole([`tenant_sch_${run}`, rowSchema], rowRole);
    },
  };
}
