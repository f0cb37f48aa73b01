import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOipClient, type OipClient } from '../../../src/backends/inference/oip-client.js';
import { createPredictor } from '../../../src/backends/inference/predictor.js';
import { migrateTenant } from '../../../src/backends/data/migrations.js';
import { seedTenant } from '../../../src/backends/data/seeding.js';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import type { Statement, TenantDataRef } from '../../../src/backends/data/types.js';
import { DEFAULT_MICRO_BATCH_MAX_SIZE } from '../../../src/config/schema.js';
import { buildGatewaySchema } from '../../../src/graphql/schema.js';
import { createLoaderRegistry } from '../../../src/loaders/registry.js';
import { fullProjection, projectionOf } from '../../../src/sources/sql/projection.js';
import { createTenantData } from '../../../src/sources/sql/tenant-data.js';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import { DEMO_MIGRATIONS, DEMO_SEED, demoSchema, demoTypeDefs } from '../../support/demo.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner } from '../../support/tokens.js';
import { DEMO_BINDINGS as B } from '../data/behaviour.js';
import { dropSchemasAndRole, TEST_DB_URL, testDataSource, uniqueSuffix } from '../data/support.js';

// Issue 13, "pg row parsing … only the columns selected": every read selects the columns its
// operation asks of the table (column fields, join columns of the relations asked, the features
// of the models asked as the tenant configures them, what an operator's resolver might read:
// everything), on real PostgreSQL through the real gateway over HTTP, under the schema and the
// row strategy, on graphql-js (an operation's first use) and graphql-jit (later uses) alike.
// Statements are observed as the data source runs them.

const suffix = uniqueSuffix();
const ROLE = `zz_proj_role_${suffix}`;
const ROW_SCHEMA = `zz_proj_rows_${suffix}`;
const SCHEMA_TENANT = `pacme-${suffix}`;
const ROW_TENANT = `pglobex-${suffix}`;
const SCHEMA_OF_TENANT = `zz_proj_${SCHEMA_TENANT.replace(/-/g, '_')}`;

const ALL_FEATURES = [
  'tenureMonths',
  'monthlySpend',
  'supportTickets',
  'daysSinceLastLogin',
  'lifetimeValue',
];
// Five features (the model's width) from three columns, two named by column.
const FEW_FEATURES = [
  'tenureMonths',
  'tenure_months',
  'supportTickets',
  'support_tickets',
  'monthlySpend',
];
const churn = (features: string[]) => ({
  churn: {
    backend: 'local',
    model: 'churn',
    version: '2',
    thresholds: { low: 0, high: 0.5 },
    features,
  },
});

interface Seen {
  tenant: string;
  operation: string;
  text: string;
}

/** The columns a statement reads of its table (its select list, or what it returns). */
function selected(text: string): string[] {
  const flat = text.replace(/\s+/g, ' ');
  const list =
    /RETURNING (.*)$/.exec(flat)?.[1] ??
    /SELECT (?!\* )(.*?)(?:, row_number\(\)| FROM )/.exec(flat)?.[1] ??
    '';
  return [...list.matchAll(/t\."([^"]+)"/g)].map((m) => m[1] as string).sort();
}

const CUSTOMER_COLUMNS = [
  'country',
  'created_at',
  'days_since_last_login',
  'email',
  'id',
  'lifetime_value',
  'monthly_spend',
  'name',
  'segment',
  'support_tickets',
  'tenure_months',
];

let source: SqlDataSource;
let server: SpawnedModelServer;
let client: OipClient;
let gateway: TestGateway;
let escapeHatch: TestGateway;
const tokens = new Map<string, string>();
const seen: Seen[] = [];
const schemas = [ROW_SCHEMA, SCHEMA_OF_TENANT];

/** The statements one request ran, with their select lists. */
async function statementsOf(
  tenant: string,
  query: string,
  options: { gateway?: TestGateway; variables?: Record<string, unknown> } = {},
) {
  seen.length = 0;
  const answer = await (options.gateway ?? gateway).query(query, {
    token: tokens.get(tenant),
    variables: options.variables,
  });
  expect(answer.body.errors, JSON.stringify(answer.body.errors)).toBeUndefined();
  const statements = seen
    .filter((s) => s.tenant === tenant)
    .map((s) => ({ operation: s.operation, columns: selected(s.text) }));
  return { data: answer.body.data as Record<string, unknown>, statements };
}

/** Runs `query` three times (graphql-js, then graphql-jit) and expects the same each time. */
async function sameEveryTime(
  tenant: string,
  query: string,
  options: { gateway?: TestGateway; variables?: Record<string, unknown> } = {},
) {
  // Reads in the same tick may run in either order.
  const sorted = (run: Awaited<ReturnType<typeof statementsOf>>) => ({
    ...run,
    statements: [...run.statements].sort((a, b) => a.operation.localeCompare(b.operation)),
  });
  const first = await statementsOf(tenant, query, options);
  for (let i = 0; i < 2; i++) {
    const again = await statementsOf(tenant, query, options);
    expect(sorted(again)).toEqual(sorted(first));
  }
  return first;
}

/** The data source, each statement it runs written down in `seen` as it is built. */
function observe(dataSource: SqlDataSource): SqlDataSource {
  return new Proxy(dataSource, {
    get(target, property) {
      if (property === 'query') {
        return (tenant: TenantDataRef, build: Parameters<SqlDataSource['query']>[1]) =>
          target.query(tenant, (at) => {
            const statement: Statement = build(at);
            seen.push({ tenant: tenant.id, operation: statement.operation, text: statement.text });
            return statement;
          });
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
}

beforeAll(async () => {
  const dataSource = testDataSource({ rowRole: ROLE, rowSchema: ROW_SCHEMA });
  source = dataSource;
  const observed = observe(dataSource);
  server = await spawnModelServer({ port: 0, workers: 1 });
  client = createOipClient({ baseUrl: server.url, timeoutMs: 10_000, connections: 2 });
  const tenants = [
    {
      id: SCHEMA_TENANT,
      plan: 'pro',
      data: { strategy: 'schema' as const, schema: SCHEMA_OF_TENANT },
      models: churn(ALL_FEATURES),
    },
    {
      id: ROW_TENANT,
      plan: 'pro',
      data: { strategy: 'row' as const },
      models: churn(FEW_FEATURES),
    },
  ];
  for (const tenant of tenants) {
    const names = { rowRole: ROLE, rowSchema: ROW_SCHEMA };
    await dataSource.withSession(tenant, async (session) => {
      await migrateTenant(session, tenant, { ...names, dir: DEMO_MIGRATIONS });
      await seedTenant(session, tenant, { ...names, module: DEMO_SEED, size: 12 });
    });
  }
  const signer = await createTestSigner();
  const predictor = createPredictor({
    clients: (name) => (name === 'local' ? client : undefined),
    microBatch: { enabled: true, windowMs: 2, maxBatchSize: DEFAULT_MICRO_BATCH_MAX_SIZE },
  });
  gateway = await startTestGateway({ signer, dataSource: observed, predictor, tenants });
  // An operator's resolver on a table type may read any column of the row.
  escapeHatch = await startTestGateway({
    signer,
    dataSource: observed,
    predictor,
    tenants,
    schema: buildGatewaySchema({
      typeDefs: [
        ...demoTypeDefs(),
        'extend type Customer { contact: String! }',
        // The customers table again, each of two fields named as the other's column: a row
        // cannot become its record in place, so records are copies.
        `type Swapped @table(name: "customers") {
           id: ID!
           name: String! @column(name: "email")
           email: String! @column(name: "name")
         }
         extend type Query { swapped(id: ID!): Swapped @lookup }`,
      ],
      resolvers: {
        Customer: {
          contact: (customer: { name: string; email: string }) =>
            `${customer.name} <${customer.email}>`,
        },
      },
    }),
  });
  for (const tenant of tenants) tokens.set(tenant.id, await signer.sign({ tenant: tenant.id }));
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([gateway?.stop(), escapeHatch?.stop()]);
  await source?.close();
  client?.close();
  await server?.stop();
  await dropSchemasAndRole(schemas, ROLE);
});

describe.each([
  [SCHEMA_TENANT, 'schema'],
  [ROW_TENANT, 'row'],
])('%s (%s): each read selects what the operation asks of its table', (tenant) => {
  it('a page selects its column fields and the key, whatever else the table has', async () => {
    const { data, statements } = await sameEveryTime(
      tenant,
      '{ customers(first: 3) { edges { cursor node { name } } pageInfo { endCursor } } }',
    );
    expect(statements).toEqual([{ operation: 'Query.customers', columns: ['id', 'name'] }]);
    const edges = (data.customers as { edges: { cursor: string; node: { name: string } }[] }).edges;
    expect(edges).toHaveLength(3);
    for (const edge of edges) expect(edge.node.name).toMatch(/\S/);
  });

  it('a relation adds its join columns; every read of a table selects the union, so rows one read primes answer the others', async () => {
    const { data, statements } = await sameEveryTime(
      tenant,
      '{ customers(first: 4) { edges { node { id orders(first: 2) { id amount customer { email } } } } } }',
    );
    // Order.customer asks email of customers: the page reads it, and no lookup statement runs.
    expect(statements).toEqual([
      { operation: 'Query.customers', columns: ['email', 'id'] },
      { operation: 'Customer.orders', columns: ['amount', 'customer_id', 'id'] },
    ]);
    const nodes = (
      data.customers as {
        edges: {
          node: { id: string; orders: { amount: number; customer: { email: string } }[] };
        }[];
      }
    ).edges.map((e) => e.node);
    expect(nodes.some((n) => n.orders.length > 0)).toBe(true);
    for (const node of nodes) {
      for (const order of node.orders) {
        expect(typeof order.amount).toBe('number');
        expect(order.customer.email).toMatch(/@/);
      }
    }
  });

  it('fields under named and inline fragments count', async () => {
    const first = await statementsOf(tenant, '{ customers(first: 1) { edges { node { id } } } }');
    const id = (first.data.customers as { edges: { node: { id: string } }[] }).edges[0]?.node.id;
    const { data, statements } = await sameEveryTime(
      tenant,
      `query ($id: ID!) { customer(id: $id) { ...Where ... on Customer { segment } __typename } }
       fragment Where on Customer { country }`,
      { variables: { id } },
    );
    expect(statements).toEqual([
      { operation: 'Customer.by(id)', columns: ['country', 'id', 'segment'] },
    ]);
    expect(data.customer).toMatchObject({ __typename: 'Customer' });
    expect(Object.keys(data.customer as object).sort()).toEqual([
      '__typename',
      'country',
      'segment',
    ]);
  });

  it("a model field selects the features of the tenant's own model config", async () => {
    const { data, statements } = await sameEveryTime(
      tenant,
      '{ customers(first: 3) { edges { node { churnRisk { score label } } } } }',
    );
    const features =
      tenant === SCHEMA_TENANT
        ? [
            'days_since_last_login',
            'id',
            'lifetime_value',
            'monthly_spend',
            'support_tickets',
            'tenure_months',
          ]
        : ['id', 'monthly_spend', 'support_tickets', 'tenure_months'];
    expect(statements).toEqual([{ operation: 'Query.customers', columns: features }]);
    for (const edge of (data.customers as { edges: { node: { churnRisk: { score: number } } }[] })
      .edges) {
      expect(edge.node.churnRisk.score).toBeGreaterThanOrEqual(0);
    }
  });

  it('an insert returns only what the mutation asks of the row', async () => {
    const first = await statementsOf(tenant, '{ customers(first: 1) { edges { node { id } } } }');
    const id = (first.data.customers as { edges: { node: { id: string } }[] }).edges[0]?.node.id;
    const { data, statements } = await statementsOf(
      tenant,
      `mutation ($c: ID!) { createOrder(input: { customerId: $c, amount: 12.5, currency: "EUR", channel: WEB }) { amount channel } }`,
      { variables: { c: id } },
    );
    expect(statements).toEqual([
      { operation: 'Mutation.createOrder', columns: ['amount', 'channel', 'id'] },
    ]);
    expect(data.createOrder).toEqual({ amount: 12.5, channel: 'WEB' });
  });

  it("an operator's resolver on the table type selects every column, and reads what it needs", async () => {
    const { data, statements } = await sameEveryTime(
      tenant,
      '{ customers(first: 2) { edges { node { contact } } } }',
      { gateway: escapeHatch },
    );
    expect(statements).toEqual([{ operation: 'Query.customers', columns: CUSTOMER_COLUMNS }]);
    for (const edge of (data.customers as { edges: { node: { contact: string } }[] }).edges) {
      expect(edge.node.contact).toMatch(/^\S.* <\S+@\S+>$/);
    }
  });
});

describe('answers equal the rows in PostgreSQL', () => {
  it('narrowed reads answer the same values a full SELECT reads', async () => {
    const { data } = await statementsOf(
      SCHEMA_TENANT,
      '{ customers(first: 5) { edges { node { id email tenureMonths lifetimeValue createdAt } } } }',
    );
    const db = new pg.Client({ connectionString: TEST_DB_URL });
    await db.connect();
    try {
      const { rows } = await db.query<Record<string, unknown>>(
        `SELECT * FROM ${pg.escapeIdentifier(SCHEMA_OF_TENANT)}.customers ORDER BY id LIMIT 5`,
      );
      const nodes = (data.customers as { edges: { node: Record<string, unknown> }[] }).edges.map(
        (e) => e.node,
      );
      expect(nodes).toEqual(
        rows.map((r) => ({
          id: r.id,
          email: r.email,
          tenureMonths: r.tenure_months,
          lifetimeValue: Number(r.lifetime_value),
          createdAt: (r.created_at as Date).toISOString(),
        })),
      );
    } finally {
      await db.end();
    }
  });
});

describe('fields named as other columns', () => {
  it('read each its own column', async () => {
    const { data: page } = await statementsOf(
      SCHEMA_TENANT,
      '{ customers(first: 1) { edges { node { id name email } } } }',
    );
    const customer = (page.customers as { edges: { node: Record<string, string> }[] }).edges[0]
      ?.node;
    expect(customer?.name).not.toBe(customer?.email);
    const { data, statements } = await sameEveryTime(
      SCHEMA_TENANT,
      'query ($id: ID!) { swapped(id: $id) { id name email } customer(id: $id) { name } }',
      { gateway: escapeHatch, variables: { id: customer?.id } },
    );
    expect(data).toEqual({
      swapped: { id: customer?.id, name: customer?.email, email: customer?.name },
      customer: { name: customer?.name },
    });
    expect(statements.sort((a, b) => a.operation.localeCompare(b.operation))).toEqual([
      { operation: 'Customer.by(id)', columns: ['id', 'name'] },
      { operation: 'Swapped.by(id)', columns: ['email', 'id', 'name'] },
    ]);
  });
});

describe('a row read with fewer columns never answers a read that wants more', () => {
  const tenant: TenantDataRef = {
    id: SCHEMA_TENANT,
    data: { strategy: 'schema', schema: SCHEMA_OF_TENANT },
  };

  function request() {
    return createTenantData({
      tenant,
      dataSource: observe(source),
      loaders: createLoaderRegistry(tenant.id),
      bindings: demoSchema().bindings,
      catalog: () => Promise.resolve(undefined),
      maxPageSize: 100,
    });
  }

  it('a narrow page, then a full lookup of one of its rows: a statement, and every field', async () => {
    seen.length = 0;
    const data = request();
    const narrow = projectionOf(B.customers.table, ['name']);
    const page = await data.page(B.customers, { first: 2 }, narrow);
    const row = page.rows[0];
    expect(Object.keys(row ?? {}).sort()).toEqual(['id', 'name']);
    const full = await data.lookup(B.customer, row?.['id']);
    expect(seen.map((s) => s.operation)).toEqual(['Query.customers', 'Customer.by(id)']);
    expect(full?.['email']).toMatch(/@/);
    expect(full?.['name']).toBe(row?.['name']);
  });

  it('a full page, then a narrow lookup of one of its rows: no statement', async () => {
    seen.length = 0;
    const data = request();
    const page = await data.page(B.customers, { first: 2 }, fullProjection(B.customers.table));
    const id = page.rows[1]?.['id'];
    const narrow = await data.lookup(B.customer, id, projectionOf(B.customers.table, ['email']));
    expect(seen.map((s) => s.operation)).toEqual(['Query.customers']);
    expect(narrow).toBe(page.rows[1]);
  });
});
