import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolationFor, DEFAULT_ISOLATION_OPTIONS } from '../../../src/backends/data/isolation.js';
import {
  migrateTenant,
  MigrationError,
  pendingMigrations,
  type MigrationOptions,
} from '../../../src/backends/data/migrations.js';
import { seedTenant } from '../../../src/backends/data/seeding.js';
import {
  pgExecutor,
  pgliteExecutor,
  type SqlExecutor,
} from '../../../src/backends/data/sql-executor.js';
import type { TenantDataRef } from '../../../src/backends/data/types.js';
import {
  createDatabase,
  dbUrl,
  dropDatabase,
  dropSchemasAndRole,
  TEST_DB_URL,
  uniqueSuffix,
} from './support.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));
const DIRS = {
  demo: join(EXAMPLES, 'demo', 'migrations'),
  invoicing: join(EXAMPLES, 'invoicing', 'migrations'),
} as const;
const FILES = {
  demo: ['0001_init.sql'],
  invoicing: ['0001_init.sql', '0002_account_region.sql'],
} as const;
const TABLES = { demo: ['customers', 'orders'], invoicing: ['accounts', 'invoices'] } as const;
type Example = keyof typeof DIRS;

const run = uniqueSuffix();
const rowRole = `atrium_tenant_${run}`;
const schemas: string[] = [];
const databases: string[] = [];
const tmpDirs: string[] = [];
const clients: pg.Client[] = [];

/** A schema name unique to this run, dropped afterwards. */
function schemaName(label: string): string {
  const name = `m_${label}_${run}`;
  schemas.push(name);
  return name;
}

async function connect(url = TEST_DB_URL): Promise<SqlExecutor & { client: pg.Client }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  clients.push(client);
  return Object.assign(pgExecutor(client), { client });
}

async function tmpDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'atrium-migrations-'));
  tmpDirs.push(dir);
  return dir;
}

type SchemaTenant = TenantDataRef & { data: { strategy: 'schema'; schema: string } };

function schemaTenant(id: string, schema: string): SchemaTenant {
  return { id, data: { strategy: 'schema', schema } };
}
function rowTenant(id: string): TenantDataRef {
  return { id, data: { strategy: 'row' } };
}

async function recorded(session: SqlExecutor, schema: string): Promise<string[]> {
  const { rows } = await session.query<{ name: string }>(
    `SELECT name FROM ${pg.escapeIdentifier(schema)}.atrium_migrations ORDER BY name`,
  );
  return rows.map((r) => r.name);
}

async function rowSecurity(session: SqlExecutor, schema: string) {
  const { rows } = await session.query<{ table: string; rls: boolean; forced: boolean }>(
    `SELECT c.relname AS table, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind = 'r'`,
    [schema],
  );
  return rows.sort((a, b) => (a.table < b.table ? -1 : 1));
}

function expectedRowSecurity(example: Example) {
  return [
    { table: 'atrium_migrations', rls: false, forced: false },
    ...TABLES[example].map((table) => ({ table, rls: true, forced: true })),
  ].sort((a, b) => (a.table < b.table ? -1 : 1));
}

/** Runs `work` as `tenant` would: BEGIN + the isolation prelude (row role, tenant setting). */
async function asTenant<T>(
  session: SqlExecutor,
  tenant: TenantDataRef,
  rowSchema: string,
  work: () => Promise<T>,
): Promise<T> {
  const { prelude } = isolationFor(
    tenant,
    { ...DEFAULT_ISOLATION_OPTIONS, rowRole, rowSchema },
    false,
  );
  await session.exec(`BEGIN; ${prelude}`);
  try {
    return await work();
  } finally {
    await session.exec('ROLLBACK');
  }
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (error: unknown) => error,
  );
}

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
  await Promise.all(databases.map((d) => dropDatabase(d)));
  await dropSchemasAndRole(schemas, rowRole);
  await Promise.all(tmpDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe.each(['demo', 'invoicing'] as const)('%s migrations on PostgreSQL', (example: Example) => {
  const dir = DIRS[example];
  const files = [...FILES[example]];
  let session: SqlExecutor;
  let rowSchema: string;
  let tenantSchemaName: string;
  let options: MigrationOptions;

  beforeAll(async () => {
    session = await connect();
    rowSchema = schemaName(`${example}_rows`);
    tenantSchemaName = schemaName(`${example}_acme`);
    options = { dir, rowRole, rowSchema };
  });

  it('a schema tenant gets every file once, recorded in atrium_migrations', async () => {
    const tenant = schemaTenant('acme', tenantSchemaName);
    expect(await pendingMigrations(session, tenant, options)).toEqual(files);
    const first = await migrateTenant(session, tenant, options);
    expect(first).toMatchObject({ tenantId: 'acme', strategy: 'schema', schema: tenantSchemaName });
    expect(first.applied).toEqual(files);
    expect(first.rowSecurity).toBeUndefined();
    expect(await recorded(session, tenantSchemaName)).toEqual(files);
    const { rows } = await session.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`,
      [tenantSchemaName],
    );
    expect(rows.map((r) => r.table_name).sort()).toEqual(
      ['atrium_migrations', ...TABLES[example]].sort(),
    );

    const again = await migrateTenant(session, tenant, options);
    expect(again.applied).toEqual([]);
    expect(await pendingMigrations(session, tenant, options)).toEqual([]);
  });

  it('a database tenant gets its tables in public of its own database', async () => {
    const database = `atrium_test_mig_${example}_${run}`;
    await createDatabase(database);
    databases.push(database);
    const own = await connect(dbUrl(database));
    const tenant: TenantDataRef = {
      id: 'initech',
      data: { strategy: 'database', url: dbUrl(database) },
    };
    const result = await migrateTenant(own, tenant, options);
    expect(result).toMatchObject({ strategy: 'database', schema: 'public', applied: files });
    expect(await recorded(own, 'public')).toEqual(files);
    expect((await migrateTenant(own, tenant, options)).applied).toEqual([]);
    await own.client.end();
  });

  it('row tenants share one schema: migrated once, every table under forced RLS', async () => {
    const globex = await migrateTenant(session, rowTenant('globex'), options);
    expect(globex).toMatchObject({ strategy: 'row', schema: rowSchema, applied: files });
    expect(globex.rowSecurity).toEqual({ role: rowRole, tables: [...TABLES[example]] });
    const umbrella = await migrateTenant(session, rowTenant('umbrella'), options);
    expect(umbrella.applied).toEqual([]);
    expect(await recorded(session, rowSchema)).toEqual(files);

    // The bookkeeping table is Atrium's, not a tenant's: no tenant_id, no policy, no grant.
    expect(await rowSecurity(session, rowSchema)).toEqual(expectedRowSecurity(example));
    const policies = await session.query<{ tablename: string; qual: string; with_check: string }>(
      `SELECT tablename, qual, with_check FROM pg_policies
        WHERE schemaname = $1 AND policyname = 'tenant_isolation' ORDER BY 1`,
      [rowSchema],
    );
    expect(policies.rows.map((p) => p.tablename)).toEqual([...TABLES[example]]);
    for (const p of policies.rows) {
      expect(p.qual).toContain("current_setting('atrium.tenant_id'::text, true)");
      expect(p.with_check).toBe(p.qual);
    }
    const role = await session.query<{ rolcanlogin: boolean; rolbypassrls: boolean }>(
      'SELECT rolcanlogin, rolbypassrls FROM pg_roles WHERE rolname = $1',
      [rowRole],
    );
    expect(role.rows).toEqual([{ rolcanlogin: false, rolbypassrls: false }]);
    const bookkeeping = await session.query<{ ok: boolean }>(
      `SELECT has_table_privilege($1, $2, 'SELECT') AS ok`,
      [rowRole, `${pg.escapeIdentifier(rowSchema)}.atrium_migrations`],
    );
    expect(bookkeeping.rows[0]?.ok).toBe(false);
  });
});

describe('evolving tenants that were migrated before', () => {
  it('a 0002 added after 0001 was applied applies only 0002, to schema and row tenants', async () => {
    const session = await connect();
    const staged = await tmpDir();
    await copyFile(join(DIRS.invoicing, '0001_init.sql'), join(staged, '0001_init.sql'));
    const rowSchema = schemaName('evolve_rows');
    const options = { dir: staged, rowRole, rowSchema };
    const acme = schemaTenant('acme', schemaName('evolve_acme'));
    expect((await migrateTenant(session, acme, options)).applied).toEqual(['0001_init.sql']);
    expect((await migrateTenant(session, rowTenant('globex'), options)).applied).toEqual([
      '0001_init.sql',
    ]);
    // Rows written before the change survive it.
    await session.query(
      `INSERT INTO ${pg.escapeIdentifier(acme.data.schema)}.accounts
         (tenant_id, name, country, credit_limit) VALUES ('acme', 'Before', 'DE', 5000)`,
    );

    await copyFile(
      join(DIRS.invoicing, '0002_account_region.sql'),
      join(staged, '0002_account_region.sql'),
    );
    expect(await pendingMigrations(session, acme, options)).toEqual(['0002_account_region.sql']);
    expect((await migrateTenant(session, acme, options)).applied).toEqual([
      '0002_account_region.sql',
    ]);
    expect((await migrateTenant(session, rowTenant('globex'), options)).applied).toEqual([
      '0002_account_region.sql',
    ]);
    for (const schema of [acme.data.schema, rowSchema]) {
      const region = await session.query<{ is_nullable: string }>(
        `SELECT is_nullable FROM information_schema.columns
          WHERE table_schema = $1 AND table_name = 'accounts' AND column_name = 'region'`,
        [schema],
      );
      expect(region.rows).toEqual([{ is_nullable: 'YES' }]);
      expect(await recorded(session, schema)).toEqual(['0001_init.sql', '0002_account_region.sql']);
    }
    const kept = await session.query(
      `SELECT name, region FROM ${pg.escapeIdentifier(acme.data.schema)}.accounts`,
    );
    expect(kept.rows).toEqual([{ name: 'Before', region: null }]);
  });

  it('a failing file is rolled back, not recorded, and named; the files before it stay', async () => {
    const session = await connect();
    const staged = await tmpDir();
    await copyFile(join(DIRS.demo, '0001_init.sql'), join(staged, '0001_init.sql'));
    await writeFile(join(staged, '0002_broken.sql'), 'CREATE TABLE half (x int);\nSELEC 1;\n');
    const tenant = schemaTenant('acme', schemaName('broken'));
    const error = await failure(migrateTenant(session, tenant, { dir: staged, rowRole }));
    expect(error).toBeInstanceOf(MigrationError);
    expect(error).toMatchObject({ code: 'MIGRATION_FAILED', migration: '0002_broken.sql' });
    expect((error as Error).message).toMatch(/0002_broken\.sql.*syntax error/);
    expect(await recorded(session, tenant.data.schema)).toEqual(['0001_init.sql']);
    const half = await session.query<{ present: boolean }>(
      'SELECT to_regclass($1) IS NOT NULL AS present',
      [`${tenant.data.schema}.half`],
    );
    expect(half.rows[0]?.present).toBe(false);
  });

  it('a missing directory is a coded error naming it', async () => {
    const session = await connect();
    const error = await failure(
      migrateTenant(session, schemaTenant('acme', schemaName('nodir')), {
        dir: join(tmpdir(), `atrium-no-such-dir-${run}`),
      }),
    );
    expect(error).toMatchObject({ code: 'MIGRATIONS_UNREADABLE' });
    expect((error as Error).message).toContain(`atrium-no-such-dir-${run}`);
  });
});

describe('the row strategy on PostgreSQL', () => {
  it('refuses a shared table without tenant_id, naming it, and records nothing', async () => {
    const session = await connect();
    const staged = await tmpDir();
    await writeFile(
      join(staged, '0001_widgets.sql'),
      'CREATE TABLE gadgets (tenant_id text NOT NULL, id int, PRIMARY KEY (tenant_id, id));\n' +
        'CREATE TABLE widgets (id int PRIMARY KEY, label text);\n',
    );
    const rowSchema = schemaName('no_tenant');
    const error = await failure(
      migrateTenant(session, rowTenant('globex'), { dir: staged, rowRole, rowSchema }),
    );
    expect(error).toBeInstanceOf(MigrationError);
    expect(error).toMatchObject({ code: 'ROW_TABLE_WITHOUT_TENANT_ID', table: 'widgets' });
    expect((error as Error).message).toContain(`"${rowSchema}"."widgets" has no tenant_id`);
    expect(await recorded(session, rowSchema)).toEqual([]);
    const tables = await session.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`,
      [rowSchema],
    );
    expect(tables.rows).toEqual([{ table_name: 'atrium_migrations' }]);
    // The same files for a schema tenant are fine: tenant_id is the row strategy's need.
    const acme = schemaTenant('acme', schemaName('widgets_ok'));
    expect((await migrateTenant(session, acme, { dir: staged, rowRole })).applied).toEqual([
      '0001_widgets.sql',
    ]);
  });

  it('two concurrent migrators of the row schema both succeed and apply each file once', async () => {
    const [a, b] = await Promise.all([connect(), connect()]);
    const rowSchema = schemaName('concurrent');
    const options = { dir: DIRS.invoicing, rowRole, rowSchema };
    const [ra, rb] = await Promise.all([
      migrateTenant(a, rowTenant('globex'), options),
      migrateTenant(b, rowTenant('umbrella'), options),
    ]);
    expect([...ra.applied, ...rb.applied]).toEqual([...FILES.invoicing]);
    expect([ra.applied.length, rb.applied.length].sort()).toEqual([0, 2]);
    expect(await recorded(a, rowSchema)).toEqual([...FILES.invoicing]);
    // The session-level lock was released: a third run goes straight through.
    expect((await migrateTenant(b, rowTenant('globex'), options)).applied).toEqual([]);
    const locks = await a.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid IN ($1, $2)`,
      [
        (await a.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid,
        (await b.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid,
      ],
    );
    expect(locks.rows[0]?.n).toBe(0);
  });

  it('the row role inserts into identity tables under RLS and sees only its own rows', async () => {
    const session = await connect();
    const rowSchema = schemaName('identity');
    const options = { dir: DIRS.invoicing, rowRole, rowSchema };
    const globex = rowTenant('globex');
    const umbrella = rowTenant('umbrella');
    await migrateTenant(session, globex, options);
    await migrateTenant(session, umbrella, options);
    const module = join(EXAMPLES, 'invoicing', 'seed.ts');
    await seedTenant(session, globex, { module, size: 5, rowRole, rowSchema });
    await seedTenant(session, umbrella, { module, size: 3, rowRole, rowSchema });

    const inserted = await asTenant(session, globex, rowSchema, async () => {
      const who = await session.query<{ user: string }>('SELECT current_user AS user');
      expect(who.rows[0]?.user).toBe(rowRole);
      const account = await session.query<{ id: number }>(
        `INSERT INTO accounts (tenant_id, name, country, credit_limit)
         VALUES ('globex', 'New', 'FR', 2500) RETURNING id`,
      );
      const id = account.rows[0]?.id ?? 0;
      const invoice = await session.query<{ id: string }>(
        `INSERT INTO invoices (tenant_id, account_id, number, amount, currency, due_at)
         VALUES ('globex', $1, 'INV-NEW', 10, 'EUR', now() + interval '30 days') RETURNING id`,
        [id],
      );
      const visible = await session.query<{ tenant_id: string; n: number }>(
        'SELECT tenant_id, count(*)::int AS n FROM accounts GROUP BY tenant_id',
      );
      return { id, invoice: invoice.rows[0]?.id, visible: visible.rows };
    });
    // Past every explicit seeded id of every tenant (the sequence is shared).
    expect(inserted.id).toBeGreaterThan(5);
    expect(inserted.invoice).toBeDefined();
    expect(inserted.visible).toEqual([{ tenant_id: 'globex', n: 6 }]);

    const forged = await asTenant(session, globex, rowSchema, () =>
      failure(
        session.query(
          `INSERT INTO accounts (tenant_id, name, country, credit_limit)
           VALUES ('umbrella', 'Forged', 'FR', 1) RETURNING id`,
        ),
      ),
    );
    expect(forged).toMatchObject({ code: '42501' });
    expect((forged as Error).message).toContain('row-level security');

    const theirs = await asTenant(session, umbrella, rowSchema, async () => {
      const { rows } = await session.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM accounts WHERE tenant_id = 'globex'`,
      );
      return rows[0]?.n;
    });
    expect(theirs).toBe(0);
  });

  it('refuses a row role that bypasses row-level security', async () => {
    const session = await connect();
    const unsafe = `atrium_unsafe_${run}`;
    await session.exec(`CREATE ROLE ${pg.escapeIdentifier(unsafe)} NOLOGIN BYPASSRLS`);
    try {
      const error = await failure(
        migrateTenant(session, rowTenant('globex'), {
          dir: DIRS.demo,
          rowRole: unsafe,
          rowSchema: schemaName('unsafe'),
        }),
      );
      expect(error).toMatchObject({ code: 'ROW_SECURITY_FAILED' });
      expect((error as Error).message).toContain('bypasses row-level security');
    } finally {
      await dropSchemasAndRole([], unsafe);
    }
  });
});

describe('migrations on PGlite', () => {
  let shared: PGlite;
  let own: PGlite;

  beforeAll(async () => {
    [shared, own] = await Promise.all([PGlite.create(), PGlite.create()]);
  });

  afterAll(async () => {
    await Promise.all([shared.close(), own.close()]);
  });

  it('migrates schema, row and database tenants of both examples, each file once', async () => {
    const session = pgliteExecutor(shared);
    for (const example of ['demo', 'invoicing'] as const) {
      const files = [...FILES[example]];
      const rowSchema = `rows_${example}`;
      const options = { dir: DIRS[example], rowRole: 'atrium_tenant', rowSchema };
      const acme = schemaTenant('acme', `acme_${example}`);
      expect((await migrateTenant(session, acme, options)).applied).toEqual(files);
      expect((await migrateTenant(session, acme, options)).applied).toEqual([]);
      expect((await migrateTenant(session, rowTenant('globex'), options)).applied).toEqual(files);
      expect((await migrateTenant(session, rowTenant('umbrella'), options)).applied).toEqual([]);
      expect(await recorded(session, rowSchema)).toEqual(files);
      expect(await rowSecurity(session, rowSchema)).toEqual(expectedRowSecurity(example));
    }
    // PGlite gives a database tenant an instance of its own; the URL is not used.
    const initech: TenantDataRef = {
      id: 'initech',
      data: { strategy: 'database', url: 'postgres://unused/initech' },
    };
    const ownSession = pgliteExecutor(own);
    const result = await migrateTenant(ownSession, initech, { dir: DIRS.invoicing });
    expect(result).toMatchObject({ schema: 'public', applied: [...FILES.invoicing] });
    expect(await recorded(ownSession, 'public')).toEqual([...FILES.invoicing]);
  });

  it('the row role inserts into identity tables and sees only its own rows', async () => {
    const session = pgliteExecutor(shared);
    const globex = rowTenant('globex');
    const rowSchemaName = 'rows_invoicing';
    const { prelude } = isolationFor(
      globex,
      { ...DEFAULT_ISOLATION_OPTIONS, rowRole: 'atrium_tenant', rowSchema: rowSchemaName },
      false,
    );
    await session.exec(
      `INSERT INTO ${rowSchemaName}.accounts (tenant_id, name, country, credit_limit)
       VALUES ('umbrella', 'Theirs', 'US', 100)`,
    );
    await session.exec(`BEGIN; ${prelude}`);
    try {
      const account = await session.query<{ id: number }>(
        `INSERT INTO accounts (tenant_id, name, country, credit_limit)
         VALUES ('globex', 'Mine', 'FR', 2500) RETURNING id`,
      );
      expect(account.rows[0]?.id).toBeGreaterThan(0);
      const visible = await session.query<{ name: string }>('SELECT name FROM accounts');
      expect(visible.rows).toEqual([{ name: 'Mine' }]);
      const forged = await failure(
        session.query(
          `INSERT INTO accounts (tenant_id, name, country, credit_limit)
           VALUES ('umbrella', 'Forged', 'FR', 1)`,
        ),
      );
      expect((forged as Error).message).toContain('row-level security');
    } finally {
      await session.exec('ROLLBACK');
    }
  });
});
