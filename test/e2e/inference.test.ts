import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { z } from 'zod';
import type { tenantSchema } from '../../src/config/schema.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createOipClient, type OipClient } from '../../src/backends/inference/oip-client.js';
import { createPredictor, type InferEvent } from '../../src/backends/inference/predictor.js';
import {
  DEFAULT_MODEL_REPOSITORY,
  spawnModelServer,
  type SpawnedModelServer,
} from '../../services/model-server/spawn.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { createTestSigner, type TestSigner } from '../support/tokens.js';
import {
  createPostgresFixture,
  type PostgresFixture,
} from '../integration/gateway/postgres-fixture.js';

const CHURN = [
  'tenureMonths',
  'monthlySpend',
  'supportTickets',
  'daysSinceLastLogin',
  'lifetimeValue',
];
const FRAUD = ['amount', 'itemCount', 'isInternational', 'paymentAttempts', 'hourOfDay'];
const TIMEOUT_MS = 1_500;

interface Stats {
  inferRequests: Record<string, number>;
  inferredRows: Record<string, number>;
  /** The model server's last infer calls, with the request headers they carried. */
  recentCalls: { model: string; rows: number; requestId?: string; traceparent?: string }[];
}
interface Prediction {
  score: number;
  label: string;
  version: string;
  cached: boolean;
}
interface CustomerNode {
  id: string;
  tenureMonths: number;
  monthlySpend: number;
  supportTickets: number;
  daysSinceLastLogin: number;
  lifetimeValue: number;
  churnRisk: Prediction | null;
  orders: { fraudRisk: { score: number } | null }[];
}

let modelServer: SpawnedModelServer;
let fixture: PostgresFixture;
let signer: TestSigner;
let client: OipClient;
const inferEvents: InferEvent[] = [];
let batched: TestGateway;
let unbatched: TestGateway;
const tokens = { schema: '', row: '', database: '' };

async function stats(): Promise<Stats> {
  return (await (await fetch(`${modelServer.url}/stats`)).json()) as Stats;
}
async function resetStats(): Promise<void> {
  await fetch(`${modelServer.url}/stats/reset`, { method: 'POST' });
}
const sum = (record: Record<string, number>) => Object.values(record).reduce((a, b) => a + b, 0);

function tenantsFor(f: PostgresFixture): z.input<typeof tenantSchema>[] {
  return [
    {
      ...f.tenants.schema,
      displayName: 'Schema tenant',
      plan: 'pro',
      features: ['fraud'],
      models: {
        churn: {
          backend: 'ref',
          model: 'churn',
          version: '2',
          thresholds: { low: 0, medium: 0.35, high: 0.7 },
          features: CHURN,
        },
        fraud: {
          backend: 'ref',
          model: 'fraud',
          version: '2',
          thresholds: { legit: 0, review: 0.5, block: 0.85 },
          features: FRAUD,
        },
      },
    },
    {
      ...f.tenants.row,
      displayName: 'Row tenant',
      features: ['fraud'],
      // Same logical model, another version and other thresholds; no fraud model at all.
      models: {
        churn: {
          backend: 'ref',
          model: 'churn',
          version: '1',
          thresholds: { stay: 0, leave: 0.5 },
          features: CHURN,
        },
      },
    },
    {
      ...f.tenants.database,
      displayName: 'Database tenant',
      models: {
        churn: {
          backend: 'ref',
          model: 'churn',
          version: '2',
          thresholds: { low: 0, high: 0.5 },
          features: CHURN,
        },
      },
    },
  ];
}

beforeAll(async () => {
  [modelServer, fixture, signer] = await Promise.all([
    spawnModelServer({ port: 0 }),
    createPostgresFixture({ seed: { size: 100 } }),
    createTestSigner(),
  ]);
  client = createOipClient({
    baseUrl: modelServer.url,
    timeoutMs: TIMEOUT_MS,
    connections: 8,
    breaker: { failureThreshold: 3, openMs: 500 },
  });
  const clients = (name: string) => (name === 'ref' ? client : undefined);
  const common = {
    signer,
    dataSource: fixture.dataSource,
    tenants: tenantsFor(fixture),
    modelReady: (_backend: string, model: string, version?: string) =>
      client.modelReady(model, version),
  };
  // A wide window makes the count depend on the mechanism, not on this machine's load: the
  // default window (2 ms) is measured by `npm run bench`, not asserted here.
  batched = await startTestGateway({
    ...common,
    predictor: createPredictor({
      clients,
      microBatch: { enabled: true, windowMs: 25, maxBatchSize: 256, maxInFlight: 2 },
      onInfer: (e) => inferEvents.push(e),
    }),
  });
  unbatched = await startTestGateway({
    ...common,
    predictor: createPredictor({
      clients,
      microBatch: { enabled: false, windowMs: 0, maxBatchSize: 256 },
    }),
  });
  for (const key of ['schema', 'row', 'database'] as const)
    tokens[key] = await signer.sign({ tenant: fixture.tenants[key].id });
}, 120_000);

afterAll(async () => {
  await batched?.stop();
  await unbatched?.stop();
  await client?.close();
  await modelServer?.stop();
  await fixture?.cleanup();
});

beforeEach(async () => {
  await resetStats();
  fixture.events.length = 0;
  inferEvents.length = 0;
});

const BIG_QUERY = `{ customers(first: 50) { edges { node { id churnRisk { score label version } orders(first: 5) { fraudRisk { score } } } } } }`;

describe('predictions aggregated into tenant data', () => {
  it('one customers query, one orders query, one churn and one fraud infer call for 50 customers', async () => {
    const { body } = await batched.query(BIG_QUERY, { token: tokens.schema });
    expect(body.errors).toBeUndefined();
    const nodes = (
      body.data as { customers: { edges: { node: CustomerNode }[] } }
    ).customers.edges.map((e) => e.node);
    expect(nodes).toHaveLength(50);
    expect(nodes.every((n) => n.churnRisk && n.churnRisk.version === '2')).toBe(true);
    const orders = nodes.flatMap((n) => n.orders);
    expect(orders.length).toBeGreaterThan(50);
    expect(
      orders.every((o) => o.fraudRisk !== null && o.fraudRisk.score >= 0 && o.fraudRisk.score <= 1),
    ).toBe(true);

    expect(fixture.events.map((e) => e.operation)).toEqual(['Query.customers', 'Customer.orders']);
    const counted = await stats();
    expect(counted.inferRequests).toEqual({ 'churn/2': 1, 'fraud/2': 1 });
    expect(counted.inferredRows).toEqual({ 'churn/2': 50, 'fraud/2': orders.length });
  });

  it("sends the model server the request's x-request-id and the caller's trace", async () => {
    const traceId = randomBytes(16).toString('hex');
    const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
    const requestId = `infer-${traceId.slice(0, 12)}`;
    const { body, headers } = await batched.query(
      '{ customers(first: 7) { edges { node { id churnRisk { score } } } } }',
      { token: tokens.schema, headers: { traceparent, 'x-request-id': requestId } },
    );
    expect(body.errors).toBeUndefined();
    expect(headers.get('x-request-id')).toBe(requestId);
    const { recentCalls } = await stats();
    expect(recentCalls).toHaveLength(1);
    expect(recentCalls[0]).toMatchObject({ model: 'churn/2', rows: 7, requestId });
    // Tracing is off in this gateway: the caller's trace context goes on as sent.
    expect(recentCalls[0]!.traceparent).toBe(traceparent);
    expect(recentCalls[0]!.traceparent?.split('-')[1]).toBe(traceId);
  });

  it('gives each tenant its own model version and labels from its own thresholds', async () => {
    const query =
      '{ customers(first: 30) { edges { node { churnRisk { score label version } } } } }';
    const predictionsOf = async (token: string) =>
      (
        (await batched.query(query, { token })).body.data as {
          customers: { edges: { node: { churnRisk: Prediction } }[] };
        }
      ).customers.edges.map((e) => e.node.churnRisk);
    const schemaTenant = await predictionsOf(tokens.schema);
    const rowTenant = await predictionsOf(tokens.row);
    expect(new Set(schemaTenant.map((p) => p.version))).toEqual(new Set(['2']));
    expect(new Set(rowTenant.map((p) => p.version))).toEqual(new Set(['1']));
    for (const p of schemaTenant)
      expect(p.label).toBe(p.score >= 0.7 ? 'high' : p.score >= 0.35 ? 'medium' : 'low');
    for (const p of rowTenant) expect(p.label).toBe(p.score >= 0.5 ? 'leave' : 'stay');
    expect(new Set(rowTenant.map((p) => p.label)).size).toBe(2);

    const missingModel = await batched.query(
      '{ customers(first: 2) { edges { node { id orders(first: 1) { id fraudRisk { score } } } } } }',
      {
        token: tokens.row,
      },
    );
    expect(missingModel.status).toBe(200);
    expect(missingModel.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const edges = (missingModel.body.data as { customers: { edges: { node: { id: string } }[] } })
      .customers.edges;
    expect(edges).toHaveLength(2);
  });

  it('returns the real models’ outputs: equal to onnxruntime run directly on the model file', async () => {
    const query = `{ customers(first: 40) { edges { node { ${CHURN.join(' ')} churnRisk { score } } } } }`;
    const { body } = await batched.query(query, { token: tokens.row });
    const nodes = (
      body.data as { customers: { edges: { node: CustomerNode }[] } }
    ).customers.edges.map((e) => e.node);
    const session = await InferenceSession.create(`${DEFAULT_MODEL_REPOSITORY}/churn/1/model.onnx`);
    const input = Float32Array.from(
      nodes.flatMap((n) => CHURN.map((f) => Number(n[f as keyof CustomerNode]))),
    );
    const output = await session.run({
      features: new Tensor('float32', input, [nodes.length, CHURN.length]),
    });
    const direct = Array.from(output.probability!.data as Float32Array);
    nodes.forEach((node, i) => expect(node.churnRisk!.score).toBeCloseTo(direct[i]!, 5));
    await session.release();
  });

  it('lists the tenant’s models and scores ad-hoc inputs with validation', async () => {
    const models = await batched.query(
      '{ models { name version features ready thresholds { label min } } }',
      { token: tokens.schema },
    );
    expect(models.body.data).toEqual({
      models: [
        {
          name: 'churn',
          version: '2',
          features: CHURN,
          ready: true,
          thresholds: [
            { label: 'low', min: 0 },
            { label: 'medium', min: 0.35 },
            { label: 'high', min: 0.7 },
          ],
        },
        {
          name: 'fraud',
          version: '2',
          features: FRAUD,
          ready: true,
          thresholds: [
            { label: 'legit', min: 0 },
            { label: 'review', min: 0.5 },
            { label: 'block', min: 0.85 },
          ],
        },
      ],
    });
    const ok = await batched.query(
      '{ predict(model: "fraud", inputs: [[4900, 12, 1, 4, 3], [5, 1, 0, 1, 14]]) { score label version } }',
      {
        token: tokens.schema,
      },
    );
    const [risky, safe] = (ok.body.data as { predict: Prediction[] }).predict;
    expect(risky!.score).toBeGreaterThan(safe!.score);
    for (const bad of ['inputs: [[1, 2]]', 'inputs: []', 'model: "nope", inputs: [[1,2,3,4,5]]']) {
      const q = bad.startsWith('model')
        ? `{ predict(${bad}) { score } }`
        : `{ predict(model: "fraud", ${bad}) { score } }`;
      const answer = await batched.query(q, { token: tokens.schema });
      expect(answer.body.errors?.[0]?.extensions?.code, bad).toBe('BAD_USER_INPUT');
    }
    expect(sum((await stats()).inferRequests)).toBe(1);
  });
});

describe('micro-batching across concurrent requests', () => {
  async function customerIds(token: string, n: number): Promise<string[]> {
    const { body } = await batched.query(`{ customers(first: ${n}) { edges { node { id } } } }`, {
      token,
    });
    return (body.data as { customers: { edges: { node: { id: string } }[] } }).customers.edges.map(
      (e) => e.node.id,
    );
  }

  /** One burst of concurrent requests from a separate client process (see burst-client.mjs). */
  /** The request ids the gateway answered with, in the order of `requests`. */
  async function fire(
    gateway: TestGateway,
    requests: { token: string; id: string }[],
  ): Promise<string[]> {
    const query = 'query ($id: ID!) { customer(id: $id) { churnRisk { score } } }';
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL('../support/burst-client.mjs', import.meta.url))],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    child.stdin.end(
      JSON.stringify({
        url: gateway.url,
        requests: requests.map(({ token, id }) => ({ token, query, variables: { id } })),
      }),
    );
    let out = '';
    for await (const chunk of child.stdout) out += String(chunk);
    const answers = JSON.parse(out) as {
      status: number;
      requestId: string;
      body: { data: { customer: { churnRisk: { score: number } } } };
    }[];
    expect(answers).toHaveLength(requests.length);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body.data.customer.churnRisk.score).toBeGreaterThanOrEqual(0);
    }
    return answers.map((a) => a.requestId);
  }

  it('64 concurrent single-customer requests make far fewer infer calls with micro-batching on', async () => {
    const ids = await customerIds(tokens.schema, 64);
    const requests = ids.map((id) => ({ token: tokens.schema, id }));
    await resetStats();
    await fire(unbatched, requests);
    const off = sum((await stats()).inferRequests);
    await resetStats();
    const requestIds = await fire(batched, requests);
    const served = await stats();
    const on = sum(served.inferRequests);
    process.stdout.write(
      `micro-batching: 64 concurrent requests → ${off} infer calls off, ${on} on (${(off / on).toFixed(1)}× fewer)\n`,
    );
    expect(ids).toHaveLength(64);
    expect(off).toBe(64);
    expect(on).toBeLessThanOrEqual(16);
    // Each merged call names the requests whose rows it holds (one row each here): as many
    // distinct ids as rows, up to 16, every one a request of this burst.
    expect(new Set(requestIds).size).toBe(64);
    expect(served.recentCalls).toHaveLength(on);
    for (const call of served.recentCalls) {
      const ids = call.requestId?.split(',') ?? [];
      expect(new Set(ids).size).toBe(Math.min(16, call.rows));
      for (const id of ids) expect(requestIds).toContain(id);
    }
  });

  it('never mixes tenants in one batch, even for the same model and version', async () => {
    const [a, b] = await Promise.all([
      customerIds(tokens.schema, 32),
      customerIds(tokens.database, 32),
    ]);
    const requests = a.flatMap((id, i) => [
      { token: tokens.schema, id },
      { token: tokens.database, id: b[i]! },
    ]);
    await resetStats();
    inferEvents.length = 0;
    await fire(batched, requests);
    const served = await stats();
    // Every call the model server served is one predictor call, and each of those belongs to one tenant.
    expect(served.inferRequests['churn/2']).toBe(inferEvents.length);
    const rowsOf = (tenantId: string) =>
      inferEvents.filter((e) => e.tenantId === tenantId).reduce((n, e) => n + e.rows, 0);
    expect(rowsOf(fixture.tenants.schema.id)).toBe(32);
    expect(rowsOf(fixture.tenants.database.id)).toBe(32);
    expect(served.inferredRows['churn/2']).toBe(64);
  });
});

describe('a model backend that goes away', () => {
  it('keeps the data, nulls predictions with BACKEND_UNAVAILABLE, opens the breaker, and recovers after a restart', async () => {
    const port = modelServer.port;
    await modelServer.stop();
    const started = Date.now();
    const down = await batched.query(
      '{ customers(first: 5) { edges { node { id name churnRisk { score } } } } }',
      { token: tokens.schema },
    );
    const elapsed = Date.now() - started;
    expect(down.status).toBe(200);
    const edges = (
      down.body.data as {
        customers: { edges: { node: { id: string; name: string; churnRisk: null } }[] };
      }
    ).customers.edges;
    expect(edges).toHaveLength(5);
    expect(edges.every((e) => e.node.name.length > 0 && e.node.churnRisk === null)).toBe(true);
    expect(new Set(down.body.errors?.map((e) => e.extensions?.code))).toEqual(
      new Set(['BACKEND_UNAVAILABLE']),
    );
    // Bounded, not fast: the answer must not wait past the backend timeout (plus scheduling slack).
    expect(elapsed).toBeLessThan(TIMEOUT_MS + 1_000);

    for (let i = 0; i < 3 && client.breaker.state() !== 'open'; i += 1) {
      await batched.query('{ customers(first: 1) { edges { node { churnRisk { score } } } } }', {
        token: tokens.row,
      });
    }
    expect(client.breaker.state()).toBe('open');

    modelServer = await spawnModelServer({ port });
    let recovered: Prediction | null = null;
    for (let i = 0; i < 50 && !recovered; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      const answer = await batched.query(
        '{ customers(first: 1) { edges { node { churnRisk { score version cached } } } } }',
        {
          token: tokens.database,
        },
      );
      recovered = (
        answer.body.data as { customers: { edges: { node: { churnRisk: Prediction | null } }[] } }
      ).customers.edges[0]!.node.churnRisk;
    }
    expect(recovered).toMatchObject({ version: '2', cached: false });
    expect(client.breaker.state()).toBe('closed');
  });
});
