import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOipClient, type OipClient } from '../../../src/backends/inference/oip-client.js';
import { createPredictor } from '../../../src/backends/inference/predictor.js';
import { migrateTenant } from '../../../src/backends/data/migrations.js';
import { seedTenant } from '../../../src/backends/data/seeding.js';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import type { QueryEvent } from '../../../src/backends/data/types.js';
import { DEFAULT_MICRO_BATCH_MAX_SIZE, DEFAULT_PLANS } from '../../../src/config/schema.js';
import { buildGatewaySchema } from '../../../src/graphql/schema.js';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import { EXAMPLES_DIR, exampleTypeDefs } from '../../support/demo.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner } from '../../support/tokens.js';
import { dropSchemasAndRole, testDataSource, uniqueSuffix } from '../data/support.js';

// Issue 10: a three-level query (list → relation → relation, with model fields) costs one data
// statement per level and one infer call per (model, version), whatever the page size, for
// both examples, under the schema and the row strategy. Real PostgreSQL, real model servers
// (each example's own models), the real gateway over HTTP. Statements are counted by the data
// source's own events, infer calls by the model server's /stats.

const SIZES = [10, 50, 200] as const;
const suffix = uniqueSuffix();
const ROLE = `zz_batch_role_${suffix}`;

interface Example {
  name: 'demo' | 'invoicing';
  seedSize: number;
  tenants: {
    id: string;
    strategy: 'schema' | 'row';
    models: Record<string, ReturnType<typeof model>>;
    features?: string[];
  }[];
  query: (n: number, tenant: string) => string;
  /** What each level's statement is called, in order. */
  statements: (tenant: string) => string[];
  /** model/version → expected infer calls, per tenant. */
  infers: (tenant: string) => Record<string, number>;
  recipes?: string;
}

const CHURN = [
  'tenureMonths',
  'monthlySpend',
  'supportTickets',
  'daysSinceLastLogin',
  'lifetimeValue',
];
const FRAUD = ['amount', 'itemCount', 'isInternational', 'paymentAttempts', 'hourOfDay'];
const model = (name: string, version: string, features: string[]) => ({
  backend: 'local',
  model: name,
  version,
  thresholds: { low: 0, high: 0.5 },
  features,
});

const EXAMPLES: Example[] = [
  {
    name: 'demo',
    seedSize: 220,
    tenants: [
      {
        id: `bacme-${suffix}`,
        strategy: 'schema',
        features: ['fraud'],
        models: { churn: model('churn', '2', CHURN), fraud: model('fraud', '2', FRAUD) },
      },
      { id: `bglobex-${suffix}`, strategy: 'row', models: { churn: model('churn', '1', CHURN) } },
    ],
    query: (n, tenant) =>
      `{ customers(first: ${n}) { edges { node { id churnRisk { score }
          orders(first: 5) { id ${tenant.startsWith('bacme') ? 'fraudRisk { score }' : ''}
            customer { id name churnRisk { score } } } } } } }`,
    // Level 3 (Order.customer) is answered from the rows level 1 primed: no statement at all.
    statements: () => ['Query.customers', 'Customer.orders'],
    infers: (tenant): Record<string, number> =>
      tenant.startsWith('bacme') ? { 'churn/2': 1, 'fraud/2': 1 } : { 'churn/1': 1 },
  },
  {
    name: 'invoicing',
    seedSize: 120,
    tenants: [
      {
        id: `bnorth-${suffix}`,
        strategy: 'schema',
        models: {
          credit: model('credit', '2', ['creditLimit', 'overdueInvoices', 'averageDaysLate']),
        },
      },
      {
        id: `binit-${suffix}`,
        strategy: 'row',
        models: {
          credit: model('credit', '1', ['credit_limit', 'overdue_invoices', 'average_days_late']),
        },
      },
    ],
    query: (n) =>
      `{ invoices(first: ${n}) { edges { node { id number
          account { id creditRisk { score } invoices(first: 3) { id amount } } } } } }`,
    statements: () => ['Query.invoices', 'Account.by(id)', 'Account.invoices'],
    infers: (tenant): Record<string, number> =>
      tenant.startsWith('bnorth') ? { 'credit/2': 1 } : { 'credit/1': 1 },
    recipes: path.join(EXAMPLES_DIR, 'invoicing/models/recipes.ts'),
  },
];

const servers: SpawnedModelServer[] = [];
const clients: OipClient[] = [];
const sources: SqlDataSource[] = [];
const gateways: TestGateway[] = [];
let scratch: string;
const schemas: string[] = [];

async function inferCounts(server: SpawnedModelServer): Promise<Record<string, number>> {
  const stats = (await (await fetch(`${server.url}/stats`)).json()) as {
    inferRequests: Record<string, number>;
  };
  return stats.inferRequests;
}

afterAll(async () => {
  await Promise.allSettled(gateways.map((g) => g.stop()));
  await Promise.allSettled(sources.map((s) => s.close()));
  for (const client of clients) client.close();
  await Promise.allSettled(servers.map((s) => s.stop()));
  await dropSchemasAndRole(schemas, ROLE);
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'atrium-batching-'));
}, 30_000);

describe.each(EXAMPLES)('$name: statements and infer calls per level', (example) => {
  let gateway: TestGateway;
  let server: SpawnedModelServer;
  let events: QueryEvent[];
  const tokens = new Map<string, string>();

  // One row schema per example: their migrations would otherwise share one history.
  const ROW_SCHEMA = `zz_batch_rows_${example.name}_${suffix}`;
  schemas.push(ROW_SCHEMA);

  beforeAll(async () => {
    events = [];
    server = await spawnModelServer({
      port: 0,
      workers: 1,
      ...(example.recipes
        ? { recipes: example.recipes, repo: path.join(scratch, example.name) }
        : {}),
    });
    servers.push(server);
    const client = createOipClient({ baseUrl: server.url, timeoutMs: 10_000, connections: 4 });
    clients.push(client);
    const dataSource = testDataSource({
      rowRole: ROLE,
      rowSchema: ROW_SCHEMA,
      onQuery: (event) => events.push(event),
    });
    sources.push(dataSource);
    const tenants = example.tenants.map((t) => ({
      id: t.id,
      plan: 'pro',
      data:
        t.strategy === 'schema'
          ? { strategy: 'schema' as const, schema: `zz_batch_${t.id.replace(/-/g, '_')}` }
          : { strategy: 'row' as const },
      features: t.features ?? [],
      models: t.models,
      // The cost estimate of N = 200 × 5 children is above pro's 5,000; batching is measured here.
      limits: { operation: { ...DEFAULT_PLANS.pro!.operation, cost: 50_000 } },
    }));
    for (const tenant of tenants) {
      if (tenant.data.strategy === 'schema' && tenant.data.schema) schemas.push(tenant.data.schema);
      const names = { rowRole: ROLE, rowSchema: ROW_SCHEMA };
      await dataSource.withSession(tenant, async (session) => {
        await migrateTenant(session, tenant, {
          ...names,
          dir: path.join(EXAMPLES_DIR, example.name, 'migrations'),
        });
        await seedTenant(session, tenant, {
          ...names,
          module: path.join(EXAMPLES_DIR, example.name, 'seed.ts'),
          size: example.seedSize,
        });
      });
    }
    const resolvers =
      example.name === 'invoicing'
        ? ((await import('../../../examples/invoicing/resolvers.js')) as { resolvers: never })
            .resolvers
        : undefined;
    const signer = await createTestSigner();
    gateway = await startTestGateway({
      signer,
      dataSource,
      schema: buildGatewaySchema({ typeDefs: exampleTypeDefs(example.name), resolvers }),
      predictor: createPredictor({
        clients: (name) => (name === 'local' ? client : undefined),
        microBatch: { enabled: true, windowMs: 2, maxBatchSize: DEFAULT_MICRO_BATCH_MAX_SIZE },
      }),
      tenants,
    });
    gateways.push(gateway);
    for (const tenant of tenants) tokens.set(tenant.id, await signer.sign({ tenant: tenant.id }));
  }, 180_000);

  const cases = example.tenants.flatMap((t) => SIZES.map((n) => [t.id, t.strategy, n] as const));
  it.each(cases)(
    '%s (%s), N = %i: one statement per level, one infer call per (model, version)',
    async (tenant, strategy, n) => {
      // Warm: the tenant's catalog is read once (at start) and is not part of the count.
      events.length = 0;
      const before = await inferCounts(server);
      const answer = await gateway.query(example.query(n, tenant), { token: tokens.get(tenant) });
      const after = await inferCounts(server);
      expect(answer.body.errors, JSON.stringify(answer.body.errors)).toBeUndefined();
      expect(answer.status).toBe(200);
      const root = Object.values(answer.body.data ?? {})[0] as { edges: unknown[] };
      expect(root.edges).toHaveLength(n);

      const statements = events.map((e) => e.operation);
      expect(statements).toEqual(example.statements(tenant));
      const trips = events.map((e) => e.roundTrips);
      // Schema-qualified statements alone for the schema strategy; RLS transactions for row.
      expect(new Set(trips)).toEqual(new Set([strategy === 'schema' ? 1 : 3]));
      const infers = Object.fromEntries(
        Object.entries(after)
          .map(([key, count]) => [key, count - (before[key] ?? 0)] as const)
          .filter(([, delta]) => delta > 0),
      );
      expect(infers).toEqual(example.infers(tenant));
      console.log(
        `${example.name} ${tenant} (${strategy}) N=${n}: statements ${JSON.stringify(statements)} rows ${JSON.stringify(events.map((e) => e.rowCount))} round trips ${JSON.stringify(trips)}, infer ${JSON.stringify(infers)}`,
      );
    },
    60_000,
  );
});
