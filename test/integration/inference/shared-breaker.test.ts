import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createOipClient, type OipClient } from '../../../src/backends/inference/oip-client.js';
import { createPredictor } from '../../../src/backends/inference/predictor.js';
import { createPostgresDataSource } from '../../../src/backends/data/postgres.js';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import { startTestGateway, type GraphQLAnswer, type TestGateway } from '../../support/gateway.js';
import { createTestSigner } from '../../support/tokens.js';
import { TEST_DB_URL } from '../data/support.js';

// Issue 12 §4 "shared breaker": inputs that make a model answer non-finite scores must be the
// sending tenant's error. Before the fix, five such requests of one tenant opened the breaker
// of the shared model backend and every other tenant's predictions failed for its openMs.
// Real model server (its fraud v2 model answers NaN for ±3.4e38 features), real gateway over
// HTTP, the OIP client composed as src/main.ts composes it (default breaker and policy).

const FRAUD = {
  backend: 'shared',
  model: 'fraud',
  version: '2',
  thresholds: { legit: 0, block: 0.85 },
  features: ['amount', 'itemCount', 'isInternational', 'paymentAttempts', 'hourOfDay'],
};
const PREDICT = 'query($i: [[Float!]!]!) { predict(model: "fraud", inputs: $i) { score label } }';
/** Within FP32 range, but the model's arithmetic overflows: its answer is NaN. */
const EXTREME = [[3.4e38, 3.4e38, 3.4e38, 3.4e38, 3.4e38]];
const ORDINARY = [[120, 3, 0, 1, 14]];

let server: SpawnedModelServer;
let client: OipClient;
let dataSource: SqlDataSource;
let gateway: TestGateway;
const tokens = { mallory: '', alice: '' };

interface ServerStats {
  inferRequests: Record<string, number>;
}

async function inferCalls(): Promise<number> {
  const stats = (await (await fetch(`${server.url}/stats`)).json()) as ServerStats;
  return stats.inferRequests['fraud/2'] ?? 0;
}

function predict(token: string, inputs: number[][]): Promise<GraphQLAnswer> {
  return gateway.query(PREDICT, { token, variables: { i: inputs } });
}

function codes(answer: GraphQLAnswer): unknown[] {
  return (answer.body.errors ?? []).map((e) => e.extensions?.code);
}

beforeAll(async () => {
  server = await spawnModelServer({ port: 0 });
  // As src/main.ts builds it: one client (one breaker) per configured backend.
  client = createOipClient({ baseUrl: server.url, timeoutMs: 5_000, connections: 4 });
  const predictor = createPredictor({
    clients: (name) => (name === 'shared' ? client : undefined),
    microBatch: { enabled: true, windowMs: 2, maxBatchSize: 256 },
  });
  // Predictions only: the real PostgreSQL data source is never asked for a row here.
  dataSource = createPostgresDataSource({
    url: TEST_DB_URL,
    poolMax: 1,
    tenantPoolMax: 1,
    maxTenantPools: 1,
    tenantPoolIdleMs: 1_000,
    statementTimeoutMs: 1_000,
    rowRole: 'atrium_tenant',
  });
  const signer = await createTestSigner();
  gateway = await startTestGateway({
    // Viewer, limits and HTTP only: this data source holds no tables to check.
    checkBindings: false,
    signer,
    dataSource,
    predictor,
    tenants: [
      { id: 'mallory', data: { strategy: 'schema' }, plan: 'pro', models: { fraud: FRAUD } },
      { id: 'alice', data: { strategy: 'schema' }, plan: 'pro', models: { fraud: FRAUD } },
    ],
  });
  tokens.mallory = await signer.sign({ tenant: 'mallory' }, { expiresIn: '1h' });
  tokens.alice = await signer.sign({ tenant: 'alice' }, { expiresIn: '1h' });
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  await client?.close();
  await dataSource?.close();
  await server?.stop();
});

beforeEach(async () => {
  await fetch(`${server.url}/stats/reset`, { method: 'POST' });
});

describe('one tenant’s inputs cannot open the breaker other tenants share', () => {
  it('answers a non-finite score as the sender’s BAD_USER_INPUT and keeps other tenants served', async () => {
    const bad: GraphQLAnswer[] = [];
    for (let i = 0; i < 5; i++) bad.push(await predict(tokens.mallory, EXTREME));
    // Another tenant on the same backend is answered at once.
    const other = await predict(tokens.alice, ORDINARY);
    expect(other.body.errors).toBeUndefined();
    expect(client.breaker.state()).toBe('closed');
    for (const answer of bad) {
      expect(answer.status).toBe(200);
      expect(codes(answer)).toEqual(['BAD_USER_INPUT']);
      expect(answer.body.errors?.[0]?.message).toContain('finite');
    }
    const [prediction] = (other.body.data as { predict: { score: number }[] }).predict;
    expect(prediction?.score).toBeGreaterThanOrEqual(0);
    expect(prediction?.score).toBeLessThanOrEqual(1);
    expect(await inferCalls()).toBe(6);

    // The tenant that tripped the failures is contained: its own circuit is open, so its next
    // prediction fails fast, without a call to the backend, while the other tenant's go on.
    const before = await inferCalls();
    const contained = await predict(tokens.mallory, ORDINARY);
    expect(codes(contained)).toEqual(['BACKEND_UNAVAILABLE']);
    expect(contained.body.errors?.[0]?.message).toContain('circuit open');
    expect(client.tenantBreaker('mallory')?.state()).toBe('open');
    expect(await inferCalls()).toBe(before);
    expect((await predict(tokens.alice, ORDINARY)).body.errors).toBeUndefined();
    expect(await inferCalls()).toBe(before + 1);
  });

  it('refuses values outside the FP32 range before they go out', async () => {
    const answer = await predict(tokens.alice, [[3.5e38, 1, 0, 1, 2]]);
    expect(codes(answer)).toEqual(['BAD_USER_INPUT']);
    expect(answer.body.errors?.[0]?.message).toContain('FP32');
    expect(await inferCalls()).toBe(0);
  });
});
