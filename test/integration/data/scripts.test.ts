import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDatabase,
  dbUrl,
  dropDatabase,
  dropSchemasAndRole,
  uniqueSuffix,
  withAdmin,
} from './support.js';

const exec = promisify(execFile);
const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));
const run = uniqueSuffix();
// The shared database is a throwaway one too, so the default `atrium_shared` schema the
// scripts create cannot meet anyone else's.
const sharedDb = `atrium_test_${run}_shared`;
const tenantDb = `atrium_test_${run}_own`;
const invoicingDb = `atrium_test_${run}_invoicing`;
const rowRole = `atrium_tenant_${run}`;
let dir: string;
let configPath: string;
let invoicingConfigPath: string;

async function script(name: string, args: string[] = [], env: Record<string, string> = {}) {
  return exec(join('node_modules', '.bin', 'tsx'), [join('scripts', name), ...args], {
    cwd: process.cwd(),
    env: { PATH: process.env.PATH ?? '', ATRIUM_CONFIG: configPath, ...env },
    timeout: 30_000,
  });
}

beforeAll(async () => {
  await Promise.all([
    createDatabase(sharedDb),
    createDatabase(tenantDb),
    createDatabase(invoicingDb),
  ]);
  dir = await mkdtemp(join(tmpdir(), 'atrium-db-scripts-'));
  configPath = join(dir, 'atrium.json');
  const config = {
    auth: { issuer: 'https://issuer.test', audience: 'atrium-test', keys: [{ pem: 'unused' }] },
    // migrations: the default (the demo's); the seed must be named.
    data: { rowRole, seed: join(EXAMPLES, 'demo', 'seed.ts') },
    tenants: [
      { id: 'acme', displayName: 'Acme', data: { strategy: 'schema' } },
      { id: 'globex', displayName: 'Globex', data: { strategy: 'row' } },
      {
        id: 'initech',
        displayName: 'Initech',
        data: { strategy: 'database', url: dbUrl(tenantDb) },
      },
    ],
  };
  await writeFile(configPath, JSON.stringify(config));
  invoicingConfigPath = join(dir, 'invoicing.json');
  await writeFile(
    invoicingConfigPath,
    JSON.stringify({
      ...config,
      data: {
        rowRole,
        migrations: join(EXAMPLES, 'invoicing', 'migrations'),
        seed: join(EXAMPLES, 'invoicing', 'seed.ts'),
      },
      tenants: config.tenants.filter((t) => t.data.strategy !== 'database'),
    }),
  );
});

afterAll(async () => {
  await Promise.all([dropDatabase(sharedDb), dropDatabase(tenantDb), dropDatabase(invoicingDb)]);
  await dropSchemasAndRole([], rowRole);
  await rm(dir, { recursive: true, force: true });
});

describe('db:migrate and db:seed scripts', () => {
  it('migrate, then seed twice: every tenant gets its rows once and the output says so', async () => {
    const env = { DATABASE_URL: dbUrl(sharedDb) };
    const migrated = await script('db-migrate.ts', [], env);
    expect(migrated.stdout).toContain('3 of 3 tenants migrated');
    expect(migrated.stdout).toMatch(
      /acme @ .*: migrated \(schema\): tables in schema "tenant_acme"; applied 0001_init\.sql/,
    );
    expect(migrated.stdout).toMatch(
      /globex .*: migrated \(row\): shared tables in schema "atrium_shared", RLS as role "atrium_tenant_\w+" on customers, orders; applied 0001_init\.sql/,
    );
    expect(migrated.stdout).toMatch(
      /initech .*: migrated \(database\): tables in schema "public"; applied/,
    );
    expect(migrated.stdout).toMatch(/ok {3}control @ .*: schema "atrium_control"/);
    const remigrated = await script('db-migrate.ts', [], env);
    expect(remigrated.stdout.match(/nothing to apply \(up to date\)/g)).toHaveLength(3);

    const seeded = await script('db-seed.ts', ['--size', '20'], env);
    expect(seeded.stdout).toContain('3 of 3 tenants seeded');
    expect(seeded.stdout).toMatch(
      /initech .*: seeded \(database\): 20 customers \(20 new\), (\d+) orders \(\1 new\)$/m,
    );
    // --customers stays an alias of --size.
    const again = await script('db-seed.ts', ['--customers', '20'], env);
    expect(again.stdout).toMatch(
      /acme .*: seeded \(schema\): 20 customers \(0 new\), \d+ orders \(0 new\)$/m,
    );

    await withAdmin(dbUrl(sharedDb), async (c) => {
      const schema = await c.query('SELECT count(*)::int AS n FROM tenant_acme.customers');
      expect(schema.rows[0].n).toBe(20);
      const row = await c.query(
        'SELECT tenant_id, count(*)::int AS n FROM atrium_shared.customers GROUP BY tenant_id',
      );
      expect(row.rows).toEqual([{ tenant_id: 'globex', n: 20 }]);
      const versions = await c.query('SELECT name FROM tenant_acme.atrium_migrations');
      expect(versions.rows).toEqual([{ name: '0001_init.sql' }]);
    });
    await withAdmin(dbUrl(tenantDb), async (c) => {
      const own = await c.query('SELECT count(*)::int AS n FROM public.customers');
      expect(own.rows[0].n).toBe(20);
    });
  });

  it("the invoicing example's migrations and seed run through the same scripts", async () => {
    const env = { DATABASE_URL: dbUrl(invoicingDb), ATRIUM_CONFIG: invoicingConfigPath };
    const migrated = await script('db-migrate.ts', [], env);
    expect(migrated.stdout).toContain('2 of 2 tenants migrated');
    expect(migrated.stdout).toMatch(/acme .*applied 0001_init\.sql, 0002_account_region\.sql/);
    expect(migrated.stdout).toMatch(/globex .*on accounts, invoices; applied 0001_init\.sql/);
    const seeded = await script('db-seed.ts', ['--size', '7'], env);
    expect(seeded.stdout).toMatch(/globex .*: seeded \(row\): 7 accounts \(7 new\), \d+ invoices/);
    await withAdmin(dbUrl(invoicingDb), async (c) => {
      const rows = await c.query(
        'SELECT tenant_id, count(*)::int AS n FROM atrium_shared.accounts GROUP BY tenant_id',
      );
      expect(rows.rows).toEqual([{ tenant_id: 'globex', n: 7 }]);
    });
  });

  it('explains what is missing instead of failing obscurely', async () => {
    const noConfig = await script('db-migrate.ts', [], { ATRIUM_CONFIG: '' }).then(
      () => null,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(noConfig?.code).toBe(2);
    expect(noConfig?.stderr).toContain('ATRIUM_CONFIG');

    const noUrl = await script('db-migrate.ts').then(
      () => null,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(noUrl?.code).toBe(2);
    expect(noUrl?.stderr).toContain('DATABASE_URL');
  });
});
