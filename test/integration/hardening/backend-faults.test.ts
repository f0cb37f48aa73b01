import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOipClient, type OipClient } from '../../../src/backends/inference/oip-client.js';
import { createPredictor } from '../../../src/backends/inference/predictor.js';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import { startTestGateway, type GraphQLAnswer, type TestGateway } from '../../support/gateway.js';
import { createTestSigner } from '../../support/tokens.js';
import { createPostgresFixture, type PostgresFixture } from '../gateway/postgres-fixture.js';
import { type ProxyMode, startTcpProxy, type TcpProxy } from './tcp-proxy.js';

// Backend faults, injected by real TCP proxies in front of the real PostgreSQL and the real
// model server: one tenant's data backend (its own database) and model backend go slow, dark,
// reset or down, while another tenant keeps using healthy ones. The faulty tenant gets coded
// partial results within the request deadline; the healthy tenant's latency barely moves.

const DEADLINE_MS = 1_500;
/** Scheduling slack on a loaded 2-core machine for "answered by the deadline". */
const SLACK_MS = 1_500;

const CHURN = {
  model: 'churn',
  version: '2',
  thresholds: { low: 0, high: 0.5 },
  features: [
    'tenureMonths',
    'monthlySpend',
    'supportTickets',
    'daysSinceLastLogin',
    'lifetimeValue',
  ],
};

let fixture: PostgresFixture;
let modelServer: SpawnedModelServer;
let pgProxy: TcpProxy;
let modelProxy: TcpProxy;
const clients = new Map<string, OipClient>();
let gateway: TestGateway;
let tokens: { healthy: string; faulty: string };

beforeAll(async () => {
  fixture = await createPostgresFixture({ poolMax: 4, seed: { size: 20 } });
  modelServer = await spawnModelServer({ port: 0 });
  pgProxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 });
  modelProxy = await startTcpProxy({ host: '127.0.0.1', port: modelServer.port });
  // The inference timeout is longer than the request deadline on purpose: the deadline is
  // what must bound the request.
  clients.set(
    'healthy',
    createOipClient({ baseUrl: modelServer.url, timeoutMs: 5_000, connections: 4 }),
  );
  clients.set(
    'faulty',
    createOipClient({
      baseUrl: `http://127.0.0.1:${modelProxy.port}`,
      timeoutMs: 5_000,
      connections: 4,
    }),
  );
  const predictor = createPredictor({
    clients: (name) => clients.get(name),
    microBatch: { enabled: true, windowMs: 2, maxBatchSize: 256 },
  });
  const healthy = fixture.tenants.schema;
  const faulty = fixture.tenants.database;
  const proxiedUrl = new URL(faulty.data.strategy === 'database' ? faulty.data.url : '');
  proxiedUrl.port = String(pgProxy.port);
  const signer = await createTestSigner();
  gateway = await startTestGateway({
    signer,
    tenants: [
      {
        id: healthy.id,
        data: healthy.data,
        plan: 'pro',
        models: { churn: { backend: 'healthy', ...CHURN } },
      },
      {
        id: faulty.id,
        data: { strategy: 'database', url: proxiedUrl.toString() },
        plan: 'pro',
        models: { churn: { backend: 'faulty', ...CHURN } },
      },
    ],
    dataSource: fixture.dataSource,
    predictor,
    requestDeadlineMs: DEADLINE_MS,
  });
  tokens = {
    healthy: await signer.sign({ tenant: healthy.id }, { expiresIn: '1h' }),
    faulty: await signer.sign({ tenant: faulty.id }, { expiresIn: '1h' }),
  };
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  await Promise.all([...clients.values()].map((c) => c.close()));
  await modelProxy?.close();
  await pgProxy?.close();
  await modelServer?.stop();
  await fixture?.cleanup();
});

/** Data and predictions: customers (non-null root) with their churn scores (nullable). */
const WITH_MODEL = '{ customers(first: 5) { edges { node { id name churnRisk { score } } } } }';
/** A nullable data field next to one that needs no backend. */
const WITH_DATA = '{ viewer { tenant { id } } customer(id: "cus_nope") { id name } }';

interface Timed {
  ms: number;
  answer: GraphQLAnswer;
}

async function timed(query: string, token: string): Promise<Timed> {
  const started = performance.now();
  const answer = await gateway.query(query, { token });
  return { ms: performance.now() - started, answer };
}

async function load(
  query: string,
  token: string,
  count: number,
  concurrency: number,
): Promise<Timed[]> {
  const results: Timed[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next += 1;
        results.push(await timed(query, token));
      }
    }),
  );
  return results;
}

function p50(results: readonly Timed[]): number {
  const sorted = results.map((r) => r.ms).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function recover(): Promise<void> {
  await pgProxy.setMode({ kind: 'pass' });
  await modelProxy.setMode({ kind: 'pass' });
  const until = Date.now() + 30_000;
  for (;;) {
    const [model, data] = await Promise.all([
      timed(WITH_MODEL, tokens.faulty),
      timed(WITH_DATA, tokens.faulty),
    ]);
    if (!model.answer.body.errors && !data.answer.body.errors) return;
    if (Date.now() > until)
      throw new Error(`no recovery: ${JSON.stringify(model.answer.body.errors)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface Scenario {
  name: string;
  proxy: () => TcpProxy;
  mode: ProxyMode;
  query: string;
  /** Checks one faulty-tenant answer's data: what must still be there. */
  partial: (data: GraphQLAnswer['body']['data']) => void;
}

const modelPartial = (data: GraphQLAnswer['body']['data']) => {
  const edges = (data as { customers: { edges: { node: { name: string; churnRisk: unknown } }[] } })
    .customers.edges;
  expect(edges).toHaveLength(5);
  for (const { node } of edges) {
    expect(node.name).toEqual(expect.any(String));
    expect(node.churnRisk).toBeNull();
  }
};
const dataPartial = (data: GraphQLAnswer['body']['data']) => {
  expect(data).toEqual({ viewer: { tenant: { id: fixture.tenants.database.id } }, customer: null });
};

const scenarios: Scenario[] = [
  {
    name: 'model backend slow (3 s per chunk)',
    proxy: () => modelProxy,
    mode: { kind: 'slow', delayMs: 3_000 },
    query: WITH_MODEL,
    partial: modelPartial,
  },
  {
    name: 'model backend dark (accepts, never answers)',
    proxy: () => modelProxy,
    mode: { kind: 'blackhole' },
    query: WITH_MODEL,
    partial: modelPartial,
  },
  {
    name: 'model backend resetting connections',
    proxy: () => modelProxy,
    mode: { kind: 'reset' },
    query: WITH_MODEL,
    partial: modelPartial,
  },
  {
    name: 'model backend down (refused)',
    proxy: () => modelProxy,
    mode: { kind: 'down' },
    query: WITH_MODEL,
    partial: modelPartial,
  },
  {
    name: 'data backend slow (3 s per chunk)',
    proxy: () => pgProxy,
    mode: { kind: 'slow', delayMs: 3_000 },
    query: WITH_DATA,
    partial: dataPartial,
  },
  {
    name: 'data backend dark',
    proxy: () => pgProxy,
    mode: { kind: 'blackhole' },
    query: WITH_DATA,
    partial: dataPartial,
  },
  {
    name: 'data backend resetting connections',
    proxy: () => pgProxy,
    mode: { kind: 'reset' },
    query: WITH_DATA,
    partial: dataPartial,
  },
  {
    name: 'data backend down (refused)',
    proxy: () => pgProxy,
    mode: { kind: 'down' },
    query: WITH_DATA,
    partial: dataPartial,
  },
];

describe('backend faults', () => {
  it('serves both tenants cleanly before any fault (the baseline)', async () => {
    await recover();
    for (const token of [tokens.healthy, tokens.faulty]) {
      const { answer } = await timed(WITH_MODEL, token);
      expect(answer.status).toBe(200);
      expect(answer.body.errors).toBeUndefined();
    }
  });

  it('gives the faulty tenant coded partial results within the deadline, and leaves the healthy tenant alone', async () => {
    const report: Record<string, unknown>[] = [];
    for (const scenario of scenarios) {
      await recover();
      // The healthy tenant's baseline, measured in this run, right before the fault.
      const baseline = p50(await load(WITH_MODEL, tokens.healthy, 30, 3));
      await scenario.proxy().setMode(scenario.mode);
      const [faulty, healthy] = await Promise.all([
        load(scenario.query, tokens.faulty, 16, 8),
        load(WITH_MODEL, tokens.healthy, 30, 3),
      ]);
      const codes = new Map<string, number>();
      for (const { ms, answer } of faulty) {
        expect(answer.status, scenario.name).toBe(200);
        expect(answer.body.errors?.length, scenario.name).toBeGreaterThan(0);
        for (const error of answer.body.errors ?? []) {
          const code = String(error.extensions?.code);
          codes.set(code, (codes.get(code) ?? 0) + 1);
          expect(
            ['BACKEND_TIMEOUT', 'BACKEND_UNAVAILABLE'],
            `${scenario.name}: ${error.message}`,
          ).toContain(code);
        }
        scenario.partial(answer.body.data);
        expect(ms, `${scenario.name}: answered in ${ms} ms`).toBeLessThan(DEADLINE_MS + SLACK_MS);
      }
      for (const { answer } of healthy) {
        expect(answer.status, scenario.name).toBe(200);
        expect(answer.body.errors, scenario.name).toBeUndefined();
      }
      const healthyP50 = p50(healthy);
      report.push({
        scenario: scenario.name,
        faultyCodes: Object.fromEntries(codes),
        faultyMaxMs: Math.round(Math.max(...faulty.map((r) => r.ms))),
        healthyBaselineP50Ms: Math.round(baseline),
        healthyP50Ms: Math.round(healthyP50),
      });
      // Behavioural isolation, not a benchmark: generous, with an absolute floor for noise.
      expect(healthyP50, scenario.name).toBeLessThan(Math.max(2 * baseline, baseline + 100));
    }
    console.table(report);
    await recover();
  }, 240_000);
});
