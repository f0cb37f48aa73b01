import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresDataSource } from '../../../src/backends/data/postgres.js';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import { tenantSchema } from '../../../src/config/schema.js';
import { describeMismatch } from '../../../src/sources/sql/check.js';
import { createTenantChecks } from '../../../src/sources/sql/tenant-checks.js';
import {
  DEMO_MIGRATIONS,
  demoSchema,
  migrateDemoTenant,
  seedDemoTenant,
} from '../../support/demo.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner, type TestSigner } from '../../support/tokens.js';
import { dropSchemasAndRole, TEST_DB_URL, uniqueSuffix } from '../data/support.js';

// Issue 10 item 3: every binding checked against each tenant's real catalog. One tenant per
// kind of mismatch, each made from a correctly migrated demo tenant by one ALTER; the check
// names tenant, type, field, table and column; a bad tenant is refused with 403
// TENANT_MISCONFIGURED while the others are served; `npm run check` prints the same report
// without starting and exits 1. Real PostgreSQL throughout.

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../../..');
const suffix = uniqueSuffix();
const ROLE = `zz_check_role_${suffix}`;
const ROW_SCHEMA = `zz_check_rows_${suffix}`;
const schemaOf = (name: string) => `zz_check_${name}_${suffix}`;
const CHURN = [
  'tenureMonths',
  'monthlySpend',
  'supportTickets',
  'daysSinceLastLogin',
  'lifetimeValue',
];
const churn = (features = CHURN) => ({
  backend: 'local',
  model: 'churn',
  version: '1',
  thresholds: { low: 0 },
  features,
});

interface Kind {
  name: string;
  /** SQL that breaks the migrated tenant (`$s` = its schema). */
  breakSql: string;
  expected: RegExp;
  features?: string[];
}

const KINDS: Kind[] = [
  {
    name: 'missingtable',
    breakSql: 'DROP TABLE $s.orders',
    expected: /^tenant (\S+): Order → orders: table missing in schema zz_check_missingtable_/,
  },
  {
    name: 'missingcolumn',
    breakSql: 'ALTER TABLE $s.customers DROP COLUMN email',
    expected: /^tenant (\S+): Customer\.email → customers\.email: column missing$/,
  },
  {
    name: 'wrongtype',
    breakSql:
      'ALTER TABLE $s.customers DROP CONSTRAINT customers_tenure_months_check, ALTER COLUMN tenure_months TYPE text',
    expected:
      /^tenant (\S+): Customer\.tenureMonths → customers\.tenure_months: column type text does not fit Int/,
  },
  {
    name: 'nullable',
    breakSql: 'ALTER TABLE $s.customers ALTER COLUMN name DROP NOT NULL',
    expected:
      /^tenant (\S+): Customer\.name → customers\.name: column is nullable but String! is not$/,
  },
  {
    name: 'feature',
    breakSql: 'SELECT 1',
    features: ['tenureMonths', 'email'],
    expected:
      /^tenant (\S+): Customer\.churnRisk → customers\.email: model churn's feature email is text, not a number or boolean$/,
  },
];

let admin: pg.Client;
let dataSource: SqlDataSource;
let signer: TestSigner;
let gateway: TestGateway | undefined;
let scratch: string;
const schemas: string[] = [ROW_SCHEMA];

const good = {
  id: `good-${suffix}`,
  data: { strategy: 'schema' as const, schema: schemaOf('good') },
  models: { churn: churn() },
};
const rowTenant = {
  id: `rows-${suffix}`,
  data: { strategy: 'row' as const },
  models: { churn: churn() },
};
const broken = KINDS.map((kind) => ({
  id: `${kind.name}-${suffix}`,
  data: { strategy: 'schema' as const, schema: schemaOf(kind.name) },
  models: { churn: churn(kind.features) },
  kind,
}));

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'atrium-check-'));
  admin = new pg.Client({ connectionString: TEST_DB_URL });
  await admin.connect();
  dataSource = createPostgresDataSource({
    url: TEST_DB_URL,
    poolMax: 4,
    tenantPoolMax: 1,
    maxTenantPools: 1,
    tenantPoolIdleMs: 5_000,
    statementTimeoutMs: 5_000,
    rowRole: ROLE,
    rowSchema: ROW_SCHEMA,
  });
  const names = { rowRole: ROLE, rowSchema: ROW_SCHEMA };
  for (const tenant of [good, rowTenant, ...broken]) {
    if (tenant.data.strategy === 'schema') schemas.push(tenant.data.schema);
    await dataSource.withSession(tenant, async (session) => {
      await migrateDemoTenant(session, tenant, names);
      await seedDemoTenant(session, tenant, { ...names, size: 3 });
    });
  }
  for (const tenant of broken) {
    await admin.query(
      tenant.kind.breakSql.replaceAll('$s', pg.escapeIdentifier(tenant.data.schema)),
    );
  }
  signer = await createTestSigner();
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  await dataSource.close();
  await admin.end();
  await dropSchemasAndRole(schemas, ROLE);
  await rm(scratch, { recursive: true, force: true });
});

describe('bindings checked against each tenant’s catalog', () => {
  it('passes correctly migrated schema and row tenants', async () => {
    const checks = createTenantChecks({ dataSource, bindings: demoSchema().bindings });
    expect(await checks.check(good)).toMatchObject({ ok: true });
    expect(await checks.check(rowTenant)).toMatchObject({ ok: true });
  });

  it.each(broken.map((t) => [t.kind.name, t] as const))(
    'names a %s mismatch',
    async (_name, tenant) => {
      const checks = createTenantChecks({ dataSource, bindings: demoSchema().bindings });
      const outcome = await checks.check(tenant);
      expect(outcome.ok).toBe(false);
      const lines = outcome.ok ? [] : outcome.mismatches.map(describeMismatch);
      const line = lines.find((l) => tenant.kind.expected.test(l));
      expect(line, lines.join('\n')).toBeDefined();
      expect(tenant.kind.expected.exec(line ?? '')?.[1]).toBe(tenant.id);
    },
  );

  it('refuses a row table whose row-level security is not forced', async () => {
    const rows = `zz_check_rows2_${suffix}`;
    schemas.push(rows);
    const source = createPostgresDataSource({
      url: TEST_DB_URL,
      poolMax: 2,
      tenantPoolMax: 1,
      maxTenantPools: 1,
      tenantPoolIdleMs: 5_000,
      statementTimeoutMs: 5_000,
      rowRole: ROLE,
      rowSchema: rows,
    });
    try {
      const tenant = { id: `norls-${suffix}`, data: { strategy: 'row' as const }, models: {} };
      await source.withSession(tenant, (s) =>
        migrateDemoTenant(s, tenant, { rowRole: ROLE, rowSchema: rows }),
      );
      await admin.query(
        `ALTER TABLE ${pg.escapeIdentifier(rows)}.orders NO FORCE ROW LEVEL SECURITY`,
      );
      const outcome = await createTenantChecks({
        dataSource: source,
        bindings: demoSchema().bindings,
      }).check(tenant);
      const lines = outcome.ok ? [] : outcome.mismatches.map(describeMismatch);
      expect(lines).toEqual([
        `tenant ${tenant.id}: Order → orders: the row strategy needs row-level security enabled and forced (npm run db:migrate adds it)`,
      ]);
    } finally {
      await source.close();
    }
  });

  it('refuses a misfit tenant with 403 TENANT_MISCONFIGURED and serves the others, also for a tenant changed at run time', async () => {
    gateway = await startTestGateway({
      signer,
      dataSource,
      tenants: [good, ...broken].map(({ id, data, models }) => ({ id, data, models })),
    });
    const query = '{ viewer { tenant { id } } customers(first: 2) { edges { node { id name } } } }';
    const ok = await gateway.query(query, { token: await signer.sign({ tenant: good.id }) });
    expect(ok.status).toBe(200);
    expect(ok.body.errors).toBeUndefined();
    for (const tenant of broken) {
      const refused = await gateway.query(query, {
        token: await signer.sign({ tenant: tenant.id }),
      });
      expect(refused.status).toBe(403);
      expect(refused.body.errors?.[0]?.extensions?.code).toBe('TENANT_MISCONFIGURED');
      expect(JSON.stringify(refused.body)).not.toMatch(
        /zz_check_|customers\.|column missing|does not fit/,
      );
    }
    // The good tenant's data moves, at run time, to a schema that lacks a column: refused too.
    const moved = schemaOf('moved');
    schemas.push(moved);
    await admin.query(`CREATE SCHEMA ${pg.escapeIdentifier(moved)}`);
    await dataSource.withSession(
      { id: good.id, data: { strategy: 'schema', schema: moved } },
      (s) => migrateDemoTenant(s, { id: good.id, data: { strategy: 'schema', schema: moved } }),
    );
    await admin.query(`ALTER TABLE ${pg.escapeIdentifier(moved)}.orders DROP COLUMN amount`);
    gateway.registry.upsert(
      tenantSchema.parse({
        ...good,
        displayName: good.id,
        data: { strategy: 'schema', schema: moved },
      }),
    );
    const after = await gateway.query(query, { token: await signer.sign({ tenant: good.id }) });
    expect(after.status).toBe(403);
    expect(after.body.errors?.[0]?.extensions?.code).toBe('TENANT_MISCONFIGURED');
  });

  it('npm run check prints the same report without starting, and exits 1', async () => {
    const config = path.join(scratch, 'atrium.yaml');
    await writeFile(
      config,
      stringify({
        schema: { files: [path.join(ROOT, 'examples/demo/schema/*.graphql')] },
        auth: { issuer: 'https://issuer.test', audience: 'atrium', hs256Secret: 'x'.repeat(32) },
        data: { url: TEST_DB_URL, rowRole: ROLE, migrations: DEMO_MIGRATIONS },
        tenants: [good, broken[1]!].map(({ id, data, models }) => ({
          id,
          displayName: id,
          data,
          models,
        })),
      }),
    );
    // `atrium check` from its source (`npm run check` runs the same).
    const result = await run(process.execPath, ['--import', 'tsx', 'scripts/atrium.ts', 'check'], {
      cwd: ROOT,
      env: { ...process.env, ATRIUM_CONFIG: config, DATABASE_URL: TEST_DB_URL },
    }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`ok   ${good.id} (schema): 2 tables fit`);
    expect(result.stderr).toContain(`FAIL ${broken[1]!.id} (schema): 1 mismatch(es)`);
    expect(result.stderr).toContain(
      `tenant ${broken[1]!.id}: Customer.email → customers.email: column missing`,
    );
    expect(result.stdout).toContain('1 of 2 tenants match the schema');
    expect(result.stdout).toContain('batching: every bound field resolves batched');
  }, 60_000);
});
