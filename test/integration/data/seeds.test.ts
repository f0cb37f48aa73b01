import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateTenant } from '../../../src/backends/data/migrations.js';
import { seedTenant } from '../../../src/backends/data/seeding.js';
import {
  pgExecutor,
  pgliteExecutor,
  type SqlExecutor,
} from '../../../src/backends/data/sql-executor.js';
import type { TenantDataRef } from '../../../src/backends/data/types.js';
import { dropSchemasAndRole, TEST_DB_URL, uniqueSuffix } from './support.js';

type SchemaTenant = TenantDataRef & { data: { strategy: 'schema'; schema: string } };

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));
const EXAMPLE = {
  demo: { tables: ['customers', 'orders'], size: 25 },
  invoicing: { tables: ['accounts', 'invoices'], size: 30 },
} as const;
type Example = keyof typeof EXAMPLE;

const run = uniqueSuffix();
const rowRole = `atrium_tenant_${run}`;
const schemas: string[] = [];
let client: pg.Client;
let session: SqlExecutor;
let embedded: PGlite;

function schemaName(label: string): string {
  const name = `s_${label}_${run}`;
  schemas.push(name);
  return name;
}

/** Every row of `schema.table` as JSON text, in key order: comparable across engines. */
async function rowsOf(executor: SqlExecutor, schema: string, table: string): Promise<string[]> {
  const t = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`;
  const { rows } = await executor.query<{ row: string }>(
    `SELECT to_jsonb(t)::text AS row FROM ${t} AS t ORDER BY t.tenant_id, t.id`,
  );
  return rows.map((r) => r.row);
}

beforeAll(async () => {
  client = new pg.Client({ connectionString: TEST_DB_URL });
  await client.connect();
  session = pgExecutor(client);
  embedded = await PGlite.create();
  // Timestamps as JSON text depend on the session's time zone; make both engines agree.
  await session.exec("SET TimeZone = 'UTC'");
  await pgliteExecutor(embedded).exec("SET TimeZone = 'UTC'");
});

afterAll(async () => {
  await client.end();
  await embedded.close();
  await dropSchemasAndRole(schemas, rowRole);
});

describe.each(['demo', 'invoicing'] as const)('the %s seed', (example: Example) => {
  const { tables, size } = EXAMPLE[example];
  const dir = join(EXAMPLES, example, 'migrations');
  const module = join(EXAMPLES, example, 'seed.ts');

  it('is deterministic (same rows in two schemas and on PGlite) and idempotent', async () => {
    const first: SchemaTenant = {
      id: 'acme',
      data: { strategy: 'schema', schema: schemaName(`${example}_one`) },
    };
    const second: SchemaTenant = {
      id: 'acme',
      data: { strategy: 'schema', schema: schemaName(`${example}_two`) },
    };
    const schemaOf = (t: SchemaTenant) => t.data.schema;
    for (const tenant of [first, second]) {
      await migrateTenant(session, tenant, { dir, rowRole });
      const report = await seedTenant(session, tenant, { module, size });
      expect(report).toMatchObject({ tenantId: 'acme', strategy: 'schema' });
      expect(report.inserted).toBe(report.rows);
      expect(Object.keys(report.tables ?? {})).toEqual(tables);
    }
    const onPglite = pgliteExecutor(embedded);
    await migrateTenant(onPglite, first, { dir });
    await seedTenant(onPglite, first, { module, size });

    for (const table of tables) {
      const one = await rowsOf(session, schemaOf(first), table);
      expect(one.length).toBeGreaterThan(0);
      expect(await rowsOf(session, schemaOf(second), table)).toEqual(one);
      expect(await rowsOf(onPglite, schemaOf(first), table)).toEqual(one);
      for (const row of one) expect(JSON.parse(row)).toMatchObject({ tenant_id: 'acme' });
    }
    expect((await rowsOf(session, schemaOf(first), tables[0])).length).toBe(size);

    const before = await Promise.all(tables.map((t) => rowsOf(session, schemaOf(first), t)));
    const again = await seedTenant(session, first, { module, size });
    expect(again.inserted).toBe(0);
    expect(again.rows).toBeGreaterThan(0);
    expect(await Promise.all(tables.map((t) => rowsOf(session, schemaOf(first), t)))).toEqual(
      before,
    );
  });

  it("row tenants' rows carry their own tenant_id, inserted as the row role", async () => {
    const rowSchema = schemaName(`${example}_rows`);
    const tenants: TenantDataRef[] = [
      { id: 'globex', data: { strategy: 'row' } },
      { id: 'umbrella', data: { strategy: 'row' } },
    ];
    const counts: Record<string, Record<string, number>> = {};
    for (const tenant of tenants) {
      await migrateTenant(session, tenant, { dir, rowRole, rowSchema });
      const report = await seedTenant(session, tenant, { module, size, rowRole, rowSchema });
      expect(report).toMatchObject({ strategy: 'row', schema: rowSchema });
      expect(report.inserted).toBe(report.rows);
      counts[tenant.id] = Object.fromEntries(
        Object.entries(report.tables ?? {}).map(([t, c]) => [t, c.rows]),
      );
      // Idempotent under RLS too: the conflict check sees the tenant's own rows.
      expect(
        (await seedTenant(session, tenant, { module, size, rowRole, rowSchema })).inserted,
      ).toBe(0);
    }
    for (const table of tables) {
      const { rows } = await session.query<{ tenant_id: string; n: number }>(
        `SELECT tenant_id, count(*)::int AS n FROM ${pg.escapeIdentifier(rowSchema)}.${table}
          GROUP BY tenant_id ORDER BY tenant_id`,
      );
      expect(rows).toEqual(
        tenants.map((t) => ({ tenant_id: t.id, n: counts[t.id]?.[table] ?? -1 })),
      );
    }
  });
});

describe('the invoicing seed and identity columns', () => {
  it('moves the sequences past the explicit ids, so later inserts need no id', async () => {
    const tenant: SchemaTenant = {
      id: 'acme',
      data: { strategy: 'schema', schema: schemaName('identity') },
    };
    const dir = join(EXAMPLES, 'invoicing', 'migrations');
    await migrateTenant(session, tenant, { dir });
    const report = await seedTenant(session, tenant, {
      module: join(EXAMPLES, 'invoicing', 'seed.ts'),
      size: 12,
    });
    const s = pg.escapeIdentifier(tenant.data.schema);
    const account = await session.query<{ id: number }>(
      `INSERT INTO ${s}.accounts (tenant_id, name, country, credit_limit)
       VALUES ('acme', 'Later', 'NL', 1000) RETURNING id`,
    );
    expect(account.rows[0]?.id).toBe(13);
    const invoice = await session.query<{ id: string }>(
      `INSERT INTO ${s}.invoices (tenant_id, account_id, number, amount, currency, due_at)
       VALUES ('acme', 13, 'INV-LATER', 99.5, 'EUR', now()) RETURNING id`,
    );
    expect(Number(invoice.rows[0]?.id)).toBe((report.tables?.invoices?.rows ?? 0) + 1);
  });
});
