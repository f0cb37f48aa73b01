import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
const run = uniqueSuffix();
// The shared database is a throwaway one too, so the default `atrium_shared` schema the
// scripts create cannot meet anyone else's.
const sharedDb = `atrium_test_${run}_shared`;
const tenantDb = `atrium_test_${run}_own`;
const rowRole = `atrium_tenant_${run}`;
let dir: string;
let configPath: string;

async function script(name: string, args: string[] = [], env: Record<string, string> = {}) {
  return exec(join('node_modules', '.bin', 'tsx'), [join('scripts', name), ...args], {
    cwd: process.cwd(),
    env: { PATH: process.env.PATH ?? '', ATRIUM_CONFIG: configPath, ...env },
    timeout: 30_000,
  });
}

beforeAll(async () => {
  await Promise.all([createDatabase(sharedDb), createDatabase(tenantDb)]);
  dir = await mkdtemp(join(tmpdir(), 'atrium-db-scripts-'));
  configPath = join(dir, 'atrium.json');
  const config = {
    auth: { issuer: 'https://issuer.test', audience: 'atrium-test', keys: [{ pem: 'unused' }] },
    data: { rowRole },
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
});

afterAll(async () => {
  await Promise.all([dropDatabase(sharedDb), dropDatabase(tenantDb)]);
  await dropSchemasAndRole([], rowRole);
  await rm(dir, { recursive: true, force: true });
});

describe('db:migrate and db:seed scripts', () => {
  it('migrate, then seed twice: every tenant gets its rows once and the output says so', async () => {
    const env = { DATABASE_URL: dbUrl(sharedDb) };
    const migrated = await script('db-migrate.ts', [], env);
    expect(migrated.stdout).toContain('3 of 3 tenants migrated');
    expect(migrated.stdout).toMatch(
      /acme @ .*: migrated \(schema\): tables in schema "tenant_acme"/,
    );
    expect(migrated.stdout).toMatch(/globex .*RLS as role/);
    expect(migrated.stdout).toMatch(/ok {3}control @ .*: schema "atrium_control"/);

    const seeded = await script('db-seed.ts', ['--customers', '20', '--max-orders', '3'], env);
    expect(seeded.stdout).toContain('3 of 3 tenants seeded');
    expect(seeded.stdout).toMatch(/initech .*: seeded \(database\): 20 customers \(20 new\)/);
    const again = await script('db-seed.ts', ['--customers', '20', '--max-orders', '3'], env);
    expect(again.stdout).toMatch(/acme .*20 customers \(0 new\), \d+ orders \(0 new\)/);

    await withAdmin(dbUrl(sharedDb), async (c) => {
      const schema = await c.query('SELECT count(*)::int AS n FROM tenant_acme.customers');
      expect(schema.rows[0].n).toBe(20);
      const row = await c.query(
        'SELECT tenant_id, count(*)::int AS n FROM atrium_shared.customers GROUP BY tenant_id',
      );
      expect(row.rows).toEqual([{ tenant_id: 'globex', n: 20 }]);
    });
    await withAdmin(dbUrl(tenantDb), async (c) => {
      const own = await c.query('SELECT count(*)::int AS n FROM public.customers');
      expect(own.rows[0].n).toBe(20);
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
