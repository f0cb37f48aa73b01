import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPostgresDataSource,
  type PoolPurpose,
  type PostgresDataSourceOptions,
} from '../../../src/backends/data/postgres.js';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import type { QueryEvent, TenantDataRef } from '../../../src/backends/data/types.js';
import { readCatalog } from '../../../src/sources/sql/catalog.js';
import { migrateDemoTenant, seedDemoTenant } from '../../support/demo.js';
import {
  BEHAVIOUR_SEED,
  DEMO_BINDINGS as B,
  describeDataSourceBehaviour,
  orderInput,
  requestData,
} from './behaviour.js';
import {
  closedPort,
  createDatabase,
  dbUrl,
  dropDatabase,
  dropSchemasAndRole,
  eventually,
  expectCode,
  silentServer,
  TEST_DB_URL,
  uniqueSuffix,
  withAdmin,
} from './support.js';

const run = uniqueSuffix();
const rowSchema = `atrium_shared_${run}`;
const rowRole = `atrium_tenant_${run}`;
const databases = [`atrium_test_${run}_c`, `atrium_test_${run}_d`];

const schemaA: TenantDataRef = { id: `sa-${run}`, data: { strategy: 'schema' } };
const schemaB: TenantDataRef = {
  id: `sb-${run}`,
  data: { strategy: 'schema', schema: `custom_${run}` },
};
const rowA: TenantDataRef = { id: `ra-${run}`, data: { strategy: 'row' } };
const rowB: TenantDataRef = { id: `rb-${run}`, data: { strategy: 'row' } };
const dbC: TenantDataRef = {
  id: `dc-${run}`,
  data: { strategy: 'database', url: dbUrl(databases[0]!) },
};
const dbD: TenantDataRef = {
  id: `dd-${run}`,
  data: { strategy: 'database', url: dbUrl(databases[1]!), poolMax: 1 },
};
const schemas = [`tenant_sa_${run}`, `custom_${run}`, rowSchema];
const allTenants = [schemaA, schemaB, rowA, rowB, dbC, dbD];

function options(overrides: Partial<PostgresDataSourceOptions> = {}): PostgresDataSourceOptions {
  return {
    url: TEST_DB_URL,
    poolMax: 4,
    tenantPoolMax: 2,
    maxTenantPools: 10,
    tenantPoolIdleMs: 60_000,
    statementTimeoutMs: 5_000,
    rowRole,
    rowSchema,
    ...overrides,
  };
}

/** Tracks every pool a source creates, so tests can see evictions and reach connections. */
function poolRecorder() {
  const pools: { purpose: PoolPurpose; pool: pg.Pool }[] = [];
  return {
    pools,
    createPool(config: pg.PoolConfig, purpose: PoolPurpose) {
      const pool = new pg.Pool(config);
      pools.push({ purpose, pool });
      return pool;
    },
    tenantPools(tenantId: string) {
      return pools.filter((p) => p.purpose.kind === 'tenant' && p.purpose.tenantId === tenantId);
    },
  };
}

beforeAll(async () => {
  await Promise.all(databases.map(createDatabase));
  // Migrate and seed through the source's own sessions, as the scripts do: the demo
  // example's migrations and seed.
  const admin = createPostgresDataSource(options());
  try {
    for (const tenant of allTenants) {
      await admin.withSession(tenant, async (session) => {
        await migrateDemoTenant(session, tenant, { rowRole, rowSchema });
        await seedDemoTenant(session, tenant, { ...BEHAVIOUR_SEED, rowRole, rowSchema });
      });
    }
  } finally {
    await admin.close();
  }
});

afterAll(async () => {
  await Promise.all(databases.map(dropDatabase));
  await dropSchemasAndRole(schemas, rowRole);
});

describeDataSourceBehaviour(
  'PostgreSQL data source (shared pool of one connection)',
  async () => {
    const events: QueryEvent[] = [];
    // poolMax 1: every schema/row batch and every withSession use the same connection.
    const source = createPostgresDataSource(
      options({ poolMax: 1, onQuery: (e) => events.push(e) }),
    );
    return {
      source,
      events,
      tenants: [schemaA, schemaB, rowA, rowB, dbC],
      sharedSessionTenants: [schemaA, rowA, schemaB, rowB],
    };
  },
  async (fx) => {
    await fx?.source.close();
  },
);

describe('PostgreSQL data source: engine specifics', () => {
  let source: SqlDataSource;
  beforeAll(() => {
    source = createPostgresDataSource(options());
  });
  afterAll(async () => {
    await source.close();
  });

  it('enforces row-level security through a role that cannot bypass it', async () => {
    await withAdmin(TEST_DB_URL, async (admin) => {
      const role = await admin.query(
        'SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1',
        [rowRole],
      );
      expect(role.rows).toEqual([{ rolsuper: false, rolbypassrls: false, rolcanlogin: false }]);
      const tables = await admin.query(
        `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> 'atrium_migrations'
         ORDER BY c.relname`,
        [rowSchema],
      );
      expect(tables.rows).toEqual([
        { relname: 'customers', relrowsecurity: true, relforcerowsecurity: true },
        { relname: 'orders', relrowsecurity: true, relforcerowsecurity: true },
      ]);

      const s = pg.escapeIdentifier(rowSchema);
      const r = pg.escapeIdentifier(rowRole);
      // The superuser sees both row tenants: this is why the role switch matters.
      const all = await admin.query(
        `SELECT count(*)::int AS n FROM ${s}.customers WHERE tenant_id IN ($1, $2)`,
        [rowA.id, rowB.id],
      );
      expect(all.rows[0].n).toBe(2 * BEHAVIOUR_SEED.size);

      // As the row role with tenant B's setting, not even an explicit predicate reaches A.
      await admin.query(`BEGIN; SET LOCAL ROLE ${r}`);
      try {
        await admin.query(`SELECT set_config('atrium.tenant_id', $1, true)`, [rowB.id]);
        const leaked = await admin.query(
          `SELECT count(*)::int AS n FROM ${s}.customers WHERE tenant_id = $1`,
          [rowA.id],
        );
        expect(leaked.rows[0].n).toBe(0);
        const leakedOrders = await admin.query(
          `SELECT count(*)::int AS n FROM ${s}.orders WHERE tenant_id = $1`,
          [rowA.id],
        );
        expect(leakedOrders.rows[0].n).toBe(0);
        const own = await admin.query(`SELECT DISTINCT tenant_id FROM ${s}.customers`);
        expect(own.rows).toEqual([{ tenant_id: rowB.id }]);
        // Nor can it write rows for A.
        const write = await admin
          .query(
            `INSERT INTO ${s}.customers (tenant_id, id, name, email, segment, country)
             VALUES ($1, 'cus_forged', 'x', 'x@x', 'SMB', 'US')`,
            [rowA.id],
          )
          .then(
            () => null,
            (e: { code?: string }) => e.code,
          );
        expect(write).toBe('42501');
      } finally {
        await admin.query('ROLLBACK');
      }

      // With no tenant setting at all, the role sees nothing (fail closed).
      await admin.query(`BEGIN; SET LOCAL ROLE ${r}`);
      try {
        const none = await admin.query(`SELECT count(*)::int AS n FROM ${s}.customers`);
        expect(none.rows[0].n).toBe(0);
      } finally {
        await admin.query('ROLLBACK');
      }
    });
  });

  it('keeps a database tenant’s rows in its own database', async () => {
    const ids = (await requestData(source, dbC).page(B.customers, { first: 5 })).rows.map(
      (c) => c['id'],
    );
    expect(ids).toHaveLength(5);
    await withAdmin(TEST_DB_URL, async (admin) => {
      const found = await admin.query(
        `SELECT count(*)::int AS n FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name IN ('customers', 'orders')`,
      );
      expect(found.rows[0].n).toBe(0);
    });
    await withAdmin(dbUrl(databases[0]!), async (admin) => {
      const found = await admin.query(
        'SELECT count(*)::int AS n FROM customers WHERE id = ANY($1)',
        [ids],
      );
      expect(found.rows[0].n).toBe(5);
    });
  });

  it('caps tenant pools: with maxTenantPools=1 two database tenants alternate, each evicting the other', async () => {
    const recorder = poolRecorder();
    const capped = createPostgresDataSource(
      options({ maxTenantPools: 1, createPool: recorder.createPool }),
    );
    // Other sources in this file may hold connections to C's database; count only ours.
    const connectionsToC = () =>
      withAdmin(TEST_DB_URL, async (admin) => {
        const res = await admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = $1 AND application_name = 'atrium'`,
          [databases[0]],
        );
        return res.rows[0].n as number;
      });
    const before = await connectionsToC();
    try {
      for (let i = 0; i < 3; i += 1) {
        for (const tenant of [dbC, dbD]) {
          const page = await requestData(capped, tenant).page(B.customers, { first: 2 });
          expect(page.rows).toHaveLength(2);
        }
      }
      const c = recorder.tenantPools(dbC.id);
      const d = recorder.tenantPools(dbD.id);
      expect(c).toHaveLength(3);
      expect(d).toHaveLength(3);
      // Every pool but D's last was closed when the next tenant needed room.
      await eventually(() => [...c, ...d.slice(0, -1)].every(({ pool }) => pool.ended));
      expect(d[d.length - 1]!.pool.ended).toBe(false);
      // Their connections are really gone from the server.
      await eventually(async () => (await connectionsToC()) === before);
    } finally {
      await capped.close();
    }
    expect(recorder.pools.every(({ pool }) => pool.ended)).toBe(true);
  });

  it('closes a tenant pool that stays idle for tenantPoolIdleMs', async () => {
    const recorder = poolRecorder();
    const idle = createPostgresDataSource(
      options({ tenantPoolIdleMs: 100, createPool: recorder.createPool }),
    );
    try {
      expect(await requestData(idle, dbC).lookup(B.customer, 'cus_x')).toBeNull();
      const [entry] = recorder.tenantPools(dbC.id);
      expect(entry?.pool.ended).toBe(false);
      await eventually(() => entry!.pool.ended);
      // The next batch simply opens a new pool.
      const page = await requestData(idle, dbC).page(B.customers, { first: 1 });
      expect(page.rows).toHaveLength(1);
      expect(recorder.tenantPools(dbC.id)).toHaveLength(2);
    } finally {
      await idle.close();
    }
  });

  it('maps a statement_timeout to BACKEND_TIMEOUT and leaves the connection clean', async () => {
    const recorder = poolRecorder();
    const slow = createPostgresDataSource(
      options({ poolMax: 1, statementTimeoutMs: 300, createPool: recorder.createPool }),
    );
    const customer = (await requestData(source, schemaA).page(B.customers, { first: 1 })).rows[0]!;
    const customerId = customer['id'] as string;
    try {
      // Inserts need the catalog (it says which tables carry tenant_id).
      const catalog = await readCatalog(slow, schemaA);
      await withAdmin(TEST_DB_URL, async (locker) => {
        // The order's foreign-key check needs a KEY SHARE lock that FOR UPDATE blocks.
        await locker.query('BEGIN');
        await locker.query(
          `SELECT 1 FROM ${pg.escapeIdentifier(schemas[0]!)}.customers WHERE id = $1 FOR UPDATE`,
          [customerId],
        );
        try {
          await expectCode(
            requestData(slow, schemaA, catalog).insert(
              B.createOrder,
              orderInput(customerId, { amount: 5, itemCount: 1, hourOfDay: 1 }),
            ),
            'BACKEND_TIMEOUT',
          );
        } finally {
          await locker.query('ROLLBACK');
        }
      });
      // The session is as the pool started it: its own statement_timeout, the default path.
      const state = await slow.withSession(schemaA, (s) =>
        s.query<{ st: string; reset: string; sp: string }>(
          `SELECT current_setting('statement_timeout') AS st,
                  (SELECT reset_val FROM pg_settings WHERE name = 'statement_timeout') AS reset,
                  current_setting('search_path') AS sp`,
        ),
      );
      expect(state.rows[0]).toEqual({ st: '300ms', reset: '300', sp: '"$user", public' });
      expect(recorder.pools).toHaveLength(1);
      const again = await requestData(slow, schemaA).lookup(B.customer, customerId);
      expect(again?.['id']).toBe(customerId);
    } finally {
      await slow.close();
    }
  });

  it('fails fast with BACKEND_UNAVAILABLE when PostgreSQL is not there', async () => {
    const port = await closedPort();
    const down = createPostgresDataSource(
      options({ url: `postgres://postgres@127.0.0.1:${port}/test`, connectTimeoutMs: 2_000 }),
    );
    const downTenant: TenantDataRef = {
      id: `dx-${run}`,
      data: { strategy: 'database', url: `postgres://postgres@127.0.0.1:${port}/x` },
    };
    try {
      await expectCode(down.ping(), 'BACKEND_UNAVAILABLE');
      await expectCode(
        requestData(down, schemaA).lookup(B.customer, 'cus_a'),
        'BACKEND_UNAVAILABLE',
      );
      await expectCode(
        requestData(down, rowA).page(B.customers, { first: 1 }),
        'BACKEND_UNAVAILABLE',
      );
      await expectCode(
        requestData(down, downTenant).lookup(B.order, 'ord_a'),
        'BACKEND_UNAVAILABLE',
      );
    } finally {
      await down.close();
    }
  });

  it('gives up on a server that accepts but never answers, with BACKEND_TIMEOUT', async () => {
    const silent = await silentServer();
    const hung = createPostgresDataSource(
      options({ url: `postgres://postgres@127.0.0.1:${silent.port}/test`, connectTimeoutMs: 500 }),
    );
    try {
      await expectCode(requestData(hung, schemaA).lookup(B.customer, 'cus_a'), 'BACKEND_TIMEOUT');
    } finally {
      await hung.close();
      await silent.close();
    }
  });

  it('reports an unknown database as BACKEND_UNAVAILABLE', async () => {
    const missing: TenantDataRef = {
      id: `dm-${run}`,
      data: { strategy: 'database', url: dbUrl(`atrium_missing_${run}`) },
    };
    await expectCode(
      requestData(source, missing).lookup(B.customer, 'cus_a'),
      'BACKEND_UNAVAILABLE',
    );
  });

  it('refuses a schema tenant pointed at the shared row schema or a system schema', async () => {
    for (const schema of [rowSchema, 'public', 'pg_catalog', 'information_schema']) {
      const evil: TenantDataRef = { id: `ev-${run}`, data: { strategy: 'schema', schema } };
      await expectCode(
        requestData(source, evil).lookup(B.customer, 'cus_a'),
        'INTERNAL_SERVER_ERROR',
      );
    }
  });

  it('migrates and seeds idempotently', async () => {
    for (const tenant of [schemaA, rowA, dbC]) {
      const again = await source.withSession(tenant, async (session) => ({
        migration: await migrateDemoTenant(session, tenant, { rowRole, rowSchema }),
        seed: await seedDemoTenant(session, tenant, { ...BEHAVIOUR_SEED, rowRole, rowSchema }),
      }));
      expect(again.migration.applied).toEqual([]);
      expect(again.seed).toMatchObject({
        inserted: 0,
        tables: {
          customers: { rows: BEHAVIOUR_SEED.size, inserted: 0 },
          orders: { inserted: 0 },
        },
      });
    }
  });
});
