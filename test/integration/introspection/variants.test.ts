import {
  buildClientSchema,
  getIntrospectionQuery,
  type GraphQLObjectType,
  type GraphQLSchema,
  type IntrospectionQuery,
  printSchema,
} from 'graphql';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createOipClient, type OipClient } from '../../../src/backends/inference/oip-client.js';
import { createPredictor, type InferEvent } from '../../../src/backends/inference/predictor.js';
import { tenantSchema } from '../../../src/config/schema.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner, type TestSigner } from '../../support/tokens.js';
import { createPostgresFixture, type PostgresFixture } from '../gateway/postgres-fixture.js';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';

const FRAUD = ['amount', 'itemCount', 'isInternational', 'paymentAttempts', 'hourOfDay'];
const CHURN = [
  'tenureMonths',
  'monthlySpend',
  'supportTickets',
  'daysSinceLastLogin',
  'lifetimeValue',
];
const ORDERS_WITH_RISK = `{ customers(first: 10) { edges { node { id orders(first: 2) { id amount fraudRisk { score label } } } } } }`;

let fixture: PostgresFixture;
let signer: TestSigner;
let modelServer: SpawnedModelServer;
let client: OipClient;
let gw: TestGateway;
const inferEvents: InferEvent[] = [];
/** `fraudy` has the fraud feature; `plain` has the very same fraud model but not the feature. */
const tokens = { fraudy: '', plain: '', closed: '' };

function tenantConfigs(f: PostgresFixture) {
  const thresholds = { low: 0, high: 0.5 };
  const models = {
    churn: { backend: 'ref', model: 'churn', version: '1', thresholds, features: CHURN },
    fraud: { backend: 'ref', model: 'fraud', version: '1', thresholds, features: FRAUD },
  };
  return [
    { ...f.tenants.schema, features: ['fraud'], models },
    { ...f.tenants.row, features: ['unrelated'], models },
    // A plan without introspection (nor the SDL download).
    { ...f.tenants.database, models, limits: { introspection: false } },
  ];
}

/** What a client tool does: the standard introspection query, then buildClientSchema. */
async function introspect(token: string): Promise<GraphQLSchema> {
  const answer = await gw.query(getIntrospectionQuery({ schemaDescription: true }), { token });
  expect(answer.status).toBe(200);
  expect(answer.body.errors).toBeUndefined();
  return buildClientSchema(answer.body.data as unknown as IntrospectionQuery);
}

function orderFields(schema: GraphQLSchema): string[] {
  return Object.keys((schema.getType('Order') as GraphQLObjectType).getFields());
}

async function sdl(token: string | undefined) {
  const response = await fetch(`${gw.url}/schema.graphql`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

beforeAll(async () => {
  [fixture, signer, modelServer] = await Promise.all([
    createPostgresFixture({ seed: { size: 10 } }),
    createTestSigner(),
    spawnModelServer({ port: 0 }),
  ]);
  client = createOipClient({ baseUrl: modelServer.url, timeoutMs: 5_000, connections: 4 });
  gw = await startTestGateway({
    signer,
    dataSource: fixture.dataSource,
    tenants: tenantConfigs(fixture),
    predictor: createPredictor({
      clients: (name) => (name === 'ref' ? client : undefined),
      microBatch: { enabled: false, windowMs: 0, maxBatchSize: 256 },
      onInfer: (event) => inferEvents.push(event),
    }),
  });
  tokens.fraudy = await signer.sign({ tenant: fixture.tenants.schema.id });
  tokens.plain = await signer.sign({ tenant: fixture.tenants.row.id });
  tokens.closed = await signer.sign({ tenant: fixture.tenants.database.id });
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await client?.close();
  await modelServer?.stop();
  await fixture?.cleanup();
});

beforeEach(() => {
  fixture.events.length = 0;
  inferEvents.length = 0;
});

describe('introspection shows each tenant its own schema variant', () => {
  it('gives two tenants with different features different client schemas', async () => {
    const fraudy = await introspect(tokens.fraudy);
    const plain = await introspect(tokens.plain);

    expect(orderFields(fraudy)).toContain('fraudRisk');
    expect(orderFields(plain)).not.toContain('fraudRisk');
    // Everything else is the same schema: the variants differ by the gated field alone.
    expect(orderFields(fraudy).filter((f) => f !== 'fraudRisk')).toEqual(orderFields(plain));
    // The gated field with its description (printSchema puts a blank line before a described
    // field that is not its type's first).
    const strip = (text: string) =>
      text.replace(/\n?\n *"""\n[^"]*fraud[^"]*"""\n *fraudRisk[^\n]*/, '');
    expect(strip(printSchema(fraudy))).toBe(printSchema(plain));
    for (const schema of [fraudy, plain]) {
      expect(schema.getDirectives().map((d) => d.name)).not.toContain('feature');
      expect(schema.getQueryType()?.getFields()['viewer']).toBeDefined();
    }
  });

  it('refuses the hidden field in execution for the tenant without the feature, before any resolver or backend call', async () => {
    const refused = await gw.query(ORDERS_WITH_RISK, { token: tokens.plain });
    expect(refused.status).toBe(400);
    expect(refused.body.data).toBeUndefined();
    expect(refused.body.errors).toHaveLength(1);
    expect(refused.body.errors?.[0]?.message).toBe(
      'Cannot query field "fraudRisk" on type "Order".',
    );
    expect(refused.body.errors?.[0]?.extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'GRAPHQL_VALIDATION_FAILED',
    });
    // Validation stopped it: no SQL statement ran and no model was called for this tenant,
    // although its configuration has the fraud model.
    expect(fixture.events).toEqual([]);
    expect(inferEvents).toEqual([]);
  });

  it('answers the same query for the tenant with the feature', async () => {
    const answer = await gw.query(ORDERS_WITH_RISK, { token: tokens.fraudy });
    expect(answer.status).toBe(200);
    expect(answer.body.errors).toBeUndefined();
    const data = answer.body.data as {
      customers: { edges: { node: { orders: { fraudRisk: { score: number } | null }[] } }[] };
    };
    const risks = data.customers.edges.flatMap((e) => e.node.orders.map((o) => o.fraudRisk));
    expect(risks.length).toBeGreaterThan(0);
    for (const risk of risks) {
      expect(risk?.score).toBeGreaterThanOrEqual(0);
      expect(risk?.score).toBeLessThanOrEqual(1);
    }
    expect(inferEvents.length).toBeGreaterThan(0);
    expect(new Set(inferEvents.map((e) => e.tenantId))).toEqual(
      new Set([fixture.tenants.schema.id]),
    );
  });

  it('serves the caller’s variant as SDL at GET /schema.graphql, behind the token', async () => {
    const fraudy = await sdl(tokens.fraudy);
    expect(fraudy.status).toBe(200);
    expect(fraudy.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(fraudy.text).toContain('fraudRisk: Prediction');
    expect(fraudy.text.trim()).toBe(printSchema(await introspect(tokens.fraudy)));

    const plain = await sdl(tokens.plain);
    expect(plain.status).toBe(200);
    expect(plain.text).not.toContain('fraudRisk');
    expect(plain.text.trim()).toBe(printSchema(await introspect(tokens.plain)));
    for (const text of [fraudy.text, plain.text])
      expect(text).not.toMatch(/@feature|directive @feature/);

    const anonymous = await sdl(undefined);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(anonymous.text).not.toContain('type Query');
    const closed = await sdl(tokens.closed);
    expect(closed.status).toBe(400);
    expect(JSON.parse(closed.text)).toMatchObject({
      errors: [{ extensions: { code: 'OPERATION_LIMIT', limit: 'introspection' } }],
    });
  });

  it('follows a live feature change: the tenant gets the new variant on its next request', async () => {
    const row = tenantConfigs(fixture)[1];
    const config = (features: string[]) =>
      tenantSchema.parse({ displayName: 'row', ...row, features });
    try {
      gw.registry.upsert(config(['unrelated', 'fraud']));
      expect(orderFields(await introspect(tokens.plain))).toContain('fraudRisk');
      const answer = await gw.query(ORDERS_WITH_RISK, { token: tokens.plain });
      expect(answer.status).toBe(200);
      expect(answer.body.errors).toBeUndefined();
    } finally {
      gw.registry.upsert(config(['unrelated']));
    }
    expect(orderFields(await introspect(tokens.plain))).not.toContain('fraudRisk');
  });
});
