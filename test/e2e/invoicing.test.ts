import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, dbUrl, dropDatabase, uniqueSuffix } from '../integration/data/support.js';
import { spawnGateway, type SpawnedGateway } from '../support/spawn-gateway.js';

// Issue 10 item 4: the second example — another domain (accounts, invoices, a three-feature
// credit model), integer keys, both relation kinds, its own resolver module — runs through the
// same engine with `ATRIUM_CONFIG=examples/invoicing/atrium.yaml npm start`. Real processes: the
// gateway and its model server (trained from the example's own recipes), a real PostgreSQL
// database migrated and seeded by `npm run db:migrate` / `db:seed` as an operator would, tokens
// from `npm run token`.

const run = promisify(execFile);
const CONFIG = 'examples/invoicing/atrium.yaml';
const database = `zz_invoicing_${uniqueSuffix()}`;
let home: string;
let gateway: SpawnedGateway;
let env: Record<string, string>;

async function token(tenant: string, scope = 'read write predict'): Promise<string> {
  const { stdout } = await run(
    'npm',
    ['run', '-s', 'token', '--', '--tenant', tenant, '--scope', scope],
    {
      env: { ...process.env, ATRIUM_HOME: home },
    },
  );
  return stdout.trim();
}

async function ask(tokenValue: string, query: string, variables?: Record<string, unknown>) {
  const res = await fetch(`${gateway.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenValue}` },
    body: JSON.stringify({ query, variables }),
  });
  return {
    status: res.status,
    body: (await res.json()) as {
      data?: Record<string, unknown> | null;
      errors?: { message: string; extensions?: Record<string, unknown> }[];
    },
  };
}

const ACCOUNTS = `{ viewer { tenant { id } }
  accounts(first: 5) { edges { cursor node { id name label region creditRisk { version label score }
    invoices(first: 3) { id number status account { id } } } } pageInfo { hasNextPage endCursor } } }`;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'atrium-invoicing-'));
  await createDatabase(database);
  env = { ATRIUM_CONFIG: CONFIG, DATABASE_URL: dbUrl(database), ATRIUM_HOME: home };
  const migrate = await run('npm', ['run', '-s', 'db:migrate'], {
    env: { ...process.env, ...env },
  });
  expect(migrate.stdout).toContain('applied 0001_init.sql, 0002_account_region.sql');
  const seed = await run('npm', ['run', '-s', 'db:seed', '--', '--size', '40'], {
    env: { ...process.env, ...env },
  });
  expect(seed.stdout).toContain('2 of 2 tenants seeded');
  gateway = await spawnGateway({ env, timeoutMs: 120_000 });
}, 240_000);

afterAll(async () => {
  await gateway?.stop();
  await dropDatabase(database);
  rmSync(home, { recursive: true, force: true });
});

describe('ATRIUM_CONFIG=examples/invoicing/atrium.yaml npm start', () => {
  it('serves each tenant its own accounts with invoices, credit scores from its own model version, and labels from the resolver module', async () => {
    const [north, init] = await Promise.all([
      ask(await token('northwind'), ACCOUNTS),
      ask(await token('initech'), ACCOUNTS),
    ]);
    for (const answer of [north, init]) {
      expect(answer.status).toBe(200);
      expect(answer.body.errors).toBeUndefined();
    }
    type Node = {
      id: string;
      name: string;
      label: string;
      creditRisk: { version: string };
      invoices: { account: { id: string } }[];
    };
    const nodes = (a: typeof north) =>
      ((a.body.data?.accounts as { edges: { node: Node }[] }).edges ?? []).map((e) => e.node);
    const [n, i] = [nodes(north), nodes(init)];
    expect(n.map((a) => a.id)).toEqual(['1', '2', '3', '4', '5']);
    // Integer keys overlap between tenants; the rows do not.
    expect(i.map((a) => a.id)).toEqual(['1', '2', '3', '4', '5']);
    expect(n.map((a) => a.name)).not.toEqual(i.map((a) => a.name));
    expect(new Set(n.map((a) => a.creditRisk.version))).toEqual(new Set(['2']));
    expect(new Set(i.map((a) => a.creditRisk.version))).toEqual(new Set(['1']));
    for (const account of [...n, ...i]) {
      expect(account.label).toMatch(/ \([A-Z]{2}\)$/);
      for (const invoice of account.invoices) expect(invoice.account.id).toBe(account.id);
    }
  });

  it('writes with the write scope only, names the field a constraint refuses, and keeps each tenant’s writes its own', async () => {
    const north = await token('northwind');
    const create = `mutation($i: CreateInvoiceInput!) { createInvoice(input: $i) { id number status account { id } } }`;
    const input = {
      accountId: '2',
      number: 'E2E-1',
      amount: 120,
      currency: 'EUR',
      dueAt: '2027-03-01T00:00:00Z',
    };
    const created = await ask(north, create, { i: input });
    expect(created.body.errors).toBeUndefined();
    expect(created.body.data?.createInvoice).toMatchObject({
      number: 'E2E-1',
      status: 'OPEN',
      account: { id: '2' },
    });

    const refusals = await Promise.all([
      ask(north, create, { i: input }),
      ask(north, create, { i: { ...input, number: 'E2E-2', accountId: '999999' } }),
      ask(north, create, { i: { ...input, number: 'E2E-3', amount: -1 } }),
      ask(north, create, { i: { ...input, number: 'E2E-4', currency: 'EURO' } }),
      ask(await token('northwind', 'read'), create, { i: { ...input, number: 'E2E-5' } }),
    ]);
    expect(
      refusals.map((r) => [
        r.body.errors?.[0]?.extensions?.code,
        r.body.errors?.[0]?.extensions?.field,
      ]),
    ).toEqual([
      ['BAD_USER_INPUT', 'number'],
      ['BAD_USER_INPUT', 'accountId'],
      ['BAD_USER_INPUT', 'amount'],
      ['BAD_USER_INPUT', 'currency'],
      ['FORBIDDEN', undefined],
    ]);
    expect(refusals[1]?.body.errors?.[0]?.message).toBe(
      'accountId does not name an existing Account',
    );

    const lookup = '{ invoiceByNumber(number: "E2E-1") { number account { id } } }';
    expect((await ask(north, lookup)).body.data).toEqual({
      invoiceByNumber: { number: 'E2E-1', account: { id: '2' } },
    });
    expect((await ask(await token('initech'), lookup)).body.data).toEqual({
      invoiceByNumber: null,
    });
  });

  it('filters by a list argument, pages by cursor, and refuses keys that cannot be integers', async () => {
    const north = await token('northwind');
    const page = `query($after: String) { invoices(first: 7, after: $after, status: [PAID, OVERDUE]) {
      edges { cursor node { id status } } pageInfo { hasNextPage endCursor } } }`;
    type Page = {
      invoices: {
        edges: { node: { id: string; status: string } }[];
        pageInfo: { hasNextPage: boolean; endCursor: string };
      };
    };
    const first = (await ask(north, page)).body.data as Page;
    const second = (await ask(north, page, { after: first.invoices.pageInfo.endCursor })).body
      .data as Page;
    const all = [...first.invoices.edges, ...second.invoices.edges].map((e) => e.node);
    expect(all).toHaveLength(14);
    expect(new Set(all.map((x) => x.status)).has('OPEN')).toBe(false);
    const ids = all.map((x) => Number(x.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(14);

    const bad = await ask(north, '{ account(id: "1 OR 1=1") { id } ok: account(id: "3") { id } }');
    expect(bad.body.data).toEqual({ account: null, ok: { id: '3' } });
    expect(bad.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const noRead = await ask(
      await token('northwind', 'predict'),
      '{ viewer { tenant { id } } accounts(first: 1) { edges { cursor } } }',
    );
    expect(noRead.body.errors?.[0]?.extensions).toMatchObject({
      code: 'FORBIDDEN',
      missingScopes: ['read'],
    });
    expect(noRead.body.data).toBeNull();
  });
});
