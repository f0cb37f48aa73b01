import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgliteInstancePurpose } from '../../../src/backends/data/pglite.js';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import type { QueryEvent, TenantDataRef } from '../../../src/backends/data/types.js';
import { createDemoData } from '../../support/demo.js';
import {
  BEHAVIOUR_SEED,
  DEMO_BINDINGS as B,
  describeDataSourceBehaviour,
  requestData,
} from './behaviour.js';

// One embedded database for schema and row tenants, one more for the database tenant. PGlite
// instances are slow to start, so the whole file shares them.
const schemaA: TenantDataRef = { id: 'acme', data: { strategy: 'schema' } };
const rowA: TenantDataRef = { id: 'globex', data: { strategy: 'row' } };
const rowB: TenantDataRef = { id: 'umbrella', data: { strategy: 'row' } };
const dbC: TenantDataRef = {
  id: 'initech',
  data: { strategy: 'database', url: 'postgres://unused.invalid/initech' },
};

const events: QueryEvent[] = [];
const instances: { purpose: PgliteInstancePurpose; db: PGlite }[] = [];
let source: SqlDataSource | undefined;

async function demo(): Promise<SqlDataSource> {
  source ??= await createDemoData({
    tenants: [schemaA, rowA, rowB, dbC],
    seed: BEHAVIOUR_SEED,
    onQuery: (e: QueryEvent) => events.push(e),
    createInstance: async (purpose: PgliteInstancePurpose) => {
      const db = await PGlite.create();
      instances.push({ purpose, db });
      return db;
    },
  });
  return source;
}

describeDataSourceBehaviour(
  'PGlite data source',
  async () => ({
    source: await demo(),
    events,
    tenants: [schemaA, rowA, rowB, dbC],
    sharedSessionTenants: [schemaA, rowA, rowB],
  }),
  // The source is closed by the suite below, which runs after this one.
  async () => {},
);

describe('PGlite data source: engine specifics', () => {
  beforeAll(async () => {
    await demo();
  });
  afterAll(async () => {
    await source?.close();
    expect(instances.every(({ db }) => db.closed)).toBe(true);
  });

  it('uses one shared instance for schema and row tenants and one per database tenant', () => {
    expect(instances.map((i) => i.purpose)).toEqual([
      { kind: 'shared' },
      { kind: 'tenant', tenantId: 'initech' },
    ]);
  });

  it('enforces row-level security in PGlite too, through a role that cannot bypass it', async () => {
    const s = await demo();
    const result = await s.withSession(rowA, async (session) => {
      const role = await session.query(
        `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'atrium_tenant'`,
      );
      await session.exec(
        `BEGIN; SET LOCAL ROLE atrium_tenant; SELECT set_config('atrium.tenant_id', 'umbrella', true)`,
      );
      const leaked = await session.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM atrium_shared.customers WHERE tenant_id = $1`,
        [rowA.id],
      );
      const visible = await session.query<{ tenant_id: string }>(
        'SELECT DISTINCT tenant_id FROM atrium_shared.customers',
      );
      await session.exec('ROLLBACK');
      const asSuperuser = await session.query<{ n: number }>(
        'SELECT count(DISTINCT tenant_id)::int AS n FROM atrium_shared.customers',
      );
      return { role: role.rows, leaked: leaked.rows[0]?.n, visible: visible.rows, asSuperuser };
    });
    expect(result.role).toEqual([{ rolsuper: false, rolbypassrls: false }]);
    expect(result.leaked).toBe(0);
    expect(result.visible).toEqual([{ tenant_id: 'umbrella' }]);
    // Without the role switch both row tenants are visible: the switch is what applies RLS.
    expect(result.asSuperuser.rows[0]?.n).toBe(2);
  });

  it('keeps the database tenant’s tables out of the shared instance', async () => {
    const s = await demo();
    const shared = await s.withSession(schemaA, (session) =>
      session.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name = 'customers'`,
      ),
    );
    expect(shared.rows[0]?.n).toBe(0);
    const own = await s.withSession(dbC, (session) =>
      session.query<{ n: number }>('SELECT count(*)::int AS n FROM public.customers'),
    );
    expect(own.rows[0]?.n).toBe(BEHAVIOUR_SEED.size);
  });

  it('serialises whole transactions on the single embedded session', async () => {
    const s = await demo();
    // withSession holding the session open must delay a batch until it is done.
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const held = s.withSession(schemaA, async (session) => {
      await session.exec('BEGIN; SET LOCAL search_path TO atrium_shared');
      order.push('held');
      await gate;
      await session.exec('ROLLBACK');
      order.push('released');
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const batch = requestData(s, schemaA)
      .page(B.customers, { first: 1 })
      .then((page) => {
        order.push('batch');
        return page;
      });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(order).toEqual(['held']);
    release();
    const page = await batch;
    await held;
    expect(order).toEqual(['held', 'released', 'batch']);
    expect(page.rows).toHaveLength(1);
  });
});
