import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner, type TestSigner } from '../../support/tokens.js';
import { createPostgresFixture, type PostgresFixture } from './postgres-fixture.js';

const ACCEPTANCE_QUERY = `{ viewer { tenant { id } } customers(first: 5) { edges { node { id name orders(first: 3) { id amount } } } } }`;

interface CustomersAnswer {
  viewer: { tenant: { id: string } };
  customers: {
    edges: { node: { id: string; name: string; orders: { id: string; amount: number }[] } }[];
  };
}

/** Every string value that looks like one of our ids, anywhere in an answer. */
function idsIn(value: unknown): Set<string> {
  const ids = new Set<string>();
  JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'string' && /^(cus|ord)_/.test(v)) ids.add(v);
    return v;
  });
  return ids;
}

function postWithHost(host: string, token: string): Promise<{ status: number; body: string }> {
  const { port } = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/graphql',
        method: 'POST',
        headers: { host, authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ query: '{ viewer { tenant { id } } }' }));
  });
}

let fixture: PostgresFixture;
let signer: TestSigner;
let gw: TestGateway;
const tokens: Record<'schema' | 'row' | 'database', string> = { schema: '', row: '', database: '' };

beforeAll(async () => {
  fixture = await createPostgresFixture();
  signer = await createTestSigner();
  gw = await startTestGateway({
    signer,
    dataSource: fixture.dataSource,
    baseDomain: 'api.atrium.test',
    tenants: [
      { ...fixture.tenants.schema, plan: 'pro' },
      fixture.tenants.row,
      fixture.tenants.database,
      { id: `off-${fixture.run}`, data: { strategy: 'row' }, status: 'suspended' },
    ],
  });
  for (const key of ['schema', 'row', 'database'] as const) {
    tokens[key] = await signer.sign({ tenant: fixture.tenants[key].id });
  }
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.cleanup();
});

describe('tenant data through the gateway', () => {
  it('answers each tenant with its own data and never another tenant’s ids', async () => {
    const seen: Record<string, Set<string>> = {};
    for (const key of ['schema', 'row', 'database'] as const) {
      const { status, body } = await gw.query(ACCEPTANCE_QUERY, { token: tokens[key] });
      expect(status).toBe(200);
      expect(body.errors).toBeUndefined();
      const data = body.data as unknown as CustomersAnswer;
      expect(data.viewer.tenant.id).toBe(fixture.tenants[key].id);
      expect(data.customers.edges).toHaveLength(5);
      expect(data.customers.edges.some((e) => e.node.orders.length > 0)).toBe(true);
      seen[key] = idsIn(data);
    }
    const [a, b, c] = [seen.schema!, seen.row!, seen.database!];
    for (const [x, y] of [
      [a, b],
      [a, c],
      [b, c],
    ] as const) {
      expect([...x].filter((id) => y.has(id))).toEqual([]);
    }
  });

  it('cannot read another tenant’s rows by id, nor write to another tenant’s customer', async () => {
    const other = await gw.query(
      '{ customers(first: 1) { edges { node { id orders(first: 1) { id } } } } }',
      {
        token: tokens.row,
      },
    );
    const otherCustomer = (other.body.data as unknown as CustomersAnswer).customers.edges[0]!.node;
    const probe = await gw.query(
      'query ($c: ID!, $o: ID!) { customer(id: $c) { id } order(id: $o) { id } }',
      {
        token: tokens.schema,
        variables: { c: otherCustomer.id, o: otherCustomer.orders[0]!.id },
      },
    );
    expect(probe.status).toBe(200);
    expect(probe.body.data).toEqual({ customer: null, order: null });

    const write = await gw.query(
      'mutation ($c: ID!) { createOrder(input: { customerId: $c, amount: 10, currency: "EUR", channel: WEB }) { id } }',
      { token: tokens.schema, variables: { c: otherCustomer.id } },
    );
    expect(write.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('creates an order for the tenant, visible to it alone; invalid input is BAD_USER_INPUT', async () => {
    const list = await gw.query('{ customers(first: 1) { edges { node { id } } } }', {
      token: tokens.database,
    });
    const customerId = (list.body.data as unknown as CustomersAnswer).customers.edges[0]!.node.id;
    const created = await gw.query(
      `mutation ($c: ID!) { createOrder(input: { customerId: $c, amount: 123.45, currency: "USD", channel: MOBILE, itemCount: 2 }) { id amount currency customer { id } } }`,
      { token: tokens.database, variables: { c: customerId } },
    );
    expect(created.body.errors).toBeUndefined();
    const order = (
      created.body.data as { createOrder: { id: string; amount: number; customer: { id: string } } }
    ).createOrder;
    expect(order).toMatchObject({ amount: 123.45, currency: 'USD', customer: { id: customerId } });

    const mine = await gw.query('query ($o: ID!) { order(id: $o) { id } }', {
      token: tokens.database,
      variables: { o: order.id },
    });
    expect(mine.body.data).toEqual({ order: { id: order.id } });
    const theirs = await gw.query('query ($o: ID!) { order(id: $o) { id } }', {
      token: tokens.row,
      variables: { o: order.id },
    });
    expect(theirs.body.data).toEqual({ order: null });

    for (const input of [
      '{ customerId: $c, amount: -5, currency: "USD", channel: WEB }',
      '{ customerId: $c, amount: 5, currency: "usd!", channel: WEB }',
      '{ customerId: $c, amount: 5, currency: "USD", channel: WEB, hourOfDay: 25 }',
    ]) {
      const bad = await gw.query(`mutation ($c: ID!) { createOrder(input: ${input}) { id } }`, {
        token: tokens.database,
        variables: { c: customerId },
      });
      expect(bad.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(bad.body.data).toBeNull();
    }
    const readOnly = await signer.sign({ tenant: fixture.tenants.database.id, scope: 'read' });
    const refused = await gw.query(
      'mutation ($c: ID!) { createOrder(input: { customerId: $c, amount: 5, currency: "USD", channel: WEB }) { id } }',
      { token: readOnly, variables: { c: customerId } },
    );
    expect(refused.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('batches: 50 customers with their orders take 2 data statements, not 51, in every strategy', async () => {
    for (const key of ['schema', 'row', 'database'] as const) {
      const tenant = fixture.tenants[key];
      fixture.events.length = 0;
      const { body } = await gw.query(
        '{ customers(first: 50) { edges { node { orders(first: 5) { id } } } } }',
        { token: tokens[key] },
      );
      expect(body.errors).toBeUndefined();
      const edges = (body.data as unknown as CustomersAnswer).customers.edges;
      expect(edges).toHaveLength(50);
      expect(edges.every((e) => e.node.orders.length <= 5)).toBe(true);
      expect(edges.some((e) => e.node.orders.length === 5)).toBe(true);
      expect(fixture.events.map((e) => [e.tenantId, e.operation])).toEqual([
        [tenant.id, 'Query.customers'],
        [tenant.id, 'Customer.orders'],
      ]);
      // Schema and database tenants: the schema-qualified statement alone. Row tenants: one
      // transaction each (BEGIN + isolation, the statement, COMMIT).
      const trips = key === 'row' ? 3 : 1;
      expect(fixture.events.map((e) => e.roundTrips)).toEqual([trips, trips]);
    }
  });

  it('pages with opaque cursors and filters by segment', async () => {
    const first = await gw.query(
      '{ customers(first: 2) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }',
      {
        token: tokens.schema,
      },
    );
    const page = (
      first.body.data as {
        customers: {
          edges: { node: { id: string } }[];
          pageInfo: { endCursor: string; hasNextPage: boolean };
        };
      }
    ).customers;
    expect(page.pageInfo.hasNextPage).toBe(true);
    const next = await gw.query(
      'query ($a: String) { customers(first: 2, after: $a) { edges { node { id } } } }',
      {
        token: tokens.schema,
        variables: { a: page.pageInfo.endCursor },
      },
    );
    const nextIds = (next.body.data as unknown as CustomersAnswer).customers.edges.map(
      (e) => e.node.id,
    );
    expect(nextIds).toHaveLength(2);
    expect(nextIds.every((id) => id > page.edges[1]!.node.id)).toBe(true);

    const bad = await gw.query(
      '{ customers(first: 2, after: "forged") { edges { node { id } } } }',
      { token: tokens.schema },
    );
    expect(bad.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const huge = await gw.query('{ customers(first: 100000) { edges { node { id } } } }', {
      token: tokens.schema,
    });
    // Refused before execution by the plan's cost limit (400), which sees first: 100000 first.
    expect(huge.status).toBe(400);
    expect(huge.body.errors?.[0]?.extensions?.code).toBe('OPERATION_LIMIT');

    const smb = await gw.query(
      '{ customers(first: 20, segment: SMB) { edges { node { segment } } } }',
      { token: tokens.schema },
    );
    const segments = (
      smb.body.data as { customers: { edges: { node: { segment: string } }[] } }
    ).customers.edges.map((e) => e.node.segment);
    expect(segments.length).toBeGreaterThan(0);
    expect(new Set(segments)).toEqual(new Set(['SMB']));
  });
});

describe('who may ask', () => {
  it('refuses missing and invalid tokens with 401 and a Bearer challenge', async () => {
    const missing = await gw.query('{ viewer { subject } }', { token: null });
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer realm="atrium"/);
    expect(missing.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');

    const foreign = await (
      await createTestSigner('test-key-1')
    ).sign({ tenant: fixture.tenants.schema.id });
    const expired = await signer.sign(
      { tenant: fixture.tenants.schema.id },
      { expiresIn: Math.floor(Date.now() / 1000) - 60 },
    );
    const noTenant = await signer.sign({});
    for (const token of ['garbage', 'a.b.c', foreign, expired, noTenant]) {
      const answer = await gw.query('{ viewer { subject } }', { token });
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(answer.body).toEqual({
        errors: [expect.objectContaining({ extensions: { code: 'UNAUTHENTICATED' } })],
      });
    }
  });

  it('checks path and subdomain hints against the claim', async () => {
    const own = await gw.query('{ viewer { tenant { id } } }', {
      token: tokens.schema,
      path: `/t/${fixture.tenants.schema.id}/graphql`,
    });
    expect(own.status).toBe(200);
    expect(own.body.data).toEqual({ viewer: { tenant: { id: fixture.tenants.schema.id } } });

    const byPath = await gw.query('{ viewer { tenant { id } } }', {
      token: tokens.schema,
      path: `/t/${fixture.tenants.row.id}/graphql`,
    });
    expect(byPath.status).toBe(403);
    expect(byPath.body.errors?.[0]?.extensions?.code).toBe('TENANT_MISMATCH');

    // fetch may not set Host (a forbidden header), so this one goes through node:http.
    const byHost = await postWithHost(`${fixture.tenants.row.id}.api.atrium.test`, tokens.schema);
    expect(byHost.status).toBe(403);
    expect(byHost.body).toContain('TENANT_MISMATCH');
    const ownHost = await postWithHost(
      `${fixture.tenants.schema.id}.api.atrium.test`,
      tokens.schema,
    );
    expect(ownHost.status).toBe(200);
  });

  it('refuses unknown and suspended tenants with 403', async () => {
    const unknown = await gw.query('{ viewer { subject } }', {
      token: await signer.sign({ tenant: 'nobody-here' }),
    });
    expect(unknown.status).toBe(403);
    expect(unknown.body.errors?.[0]?.extensions?.code).toBe('TENANT_NOT_FOUND');
    const suspended = await gw.query('{ viewer { subject } }', {
      token: await signer.sign({ tenant: `off-${fixture.run}` }),
    });
    expect(suspended.status).toBe(403);
    expect(suspended.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

describe('HTTP surface', () => {
  it('answers malformed requests with coded 4xx, never 5xx', async () => {
    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${gw.url}/graphql`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${tokens.schema}`,
          'content-type': 'application/json',
          ...headers,
        },
        body,
      });
    const cases: [string, Record<string, string>][] = [
      ['{"query": ', {}],
      ['[{"query":"{ viewer { subject } }"}]', {}],
      ['{"query": 42}', {}],
      ['{"query":"{ viewer { nope } }"}', {}],
      ['{"query":"{ viewer { subject } }","variables":"x"}', {}],
      ['query=x', { 'content-type': 'text/plain' }],
      ['x'.repeat(2 * 1024 * 1024), {}],
    ];
    for (const [body, headers] of cases) {
      const response = await post(body, headers);
      expect(response.status, body.slice(0, 40)).toBeGreaterThanOrEqual(400);
      expect(response.status, body.slice(0, 40)).toBeLessThan(500);
      const json = (await response.json()) as { errors: { extensions: { code: string } }[] };
      expect(json.errors[0]?.extensions.code, body.slice(0, 40)).toBe('BAD_USER_INPUT');
    }
    const getMutation = await fetch(
      `${gw.url}/graphql?query=${encodeURIComponent('mutation { createOrder(input: {customerId: "x", amount: 1, currency: "USD", channel: WEB}) { id } }')}`,
      { headers: { authorization: `Bearer ${tokens.schema}`, 'apollo-require-preflight': 'true' } },
    );
    expect(getMutation.status).toBe(405);
  });

  it('serves health and readiness', async () => {
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).toBe(200);
  });
});
