import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOipClient, type OipClient } from '../../src/backends/inference/oip-client.js';
import { createPredictor } from '../../src/backends/inference/predictor.js';
import type { TenantDataRef } from '../../src/backends/data/types.js';
import { encodeCursor } from '../../src/sources/sql/tenant-data.js';
import { createMemoryStore } from '../../src/store/memory-store.js';
import { spawnModelServer, type SpawnedModelServer } from '../../services/model-server/spawn.js';
import {
  createPostgresFixture,
  type PostgresFixture,
} from '../integration/gateway/postgres-fixture.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { createTestSigner } from '../support/tokens.js';
import { captureErrorLogs, createRandom, MODELS, runPool } from './support.js';

// Cross-tenant canary probes: three tenants (schema, row and database isolation) on the real
// PostgreSQL, the shared pool cut to ONE connection (every tenant's statements take turns on
// it), warm prediction cache, the real model server; 10,000 interleaved requests at
// concurrency 50, each with another tenant's name or ids planted in the body, headers, host,
// path or variables. No response may carry another tenant's canary name or any of its ids.

const BASE_DOMAIN = 'api.atrium.test';
const REQUESTS = 10_000;
const CONCURRENCY = 50;

interface Canary {
  tenant: TenantDataRef;
  token: string;
  /** Canary customer names, ids and order ids of this tenant. */
  names: string[];
  customerIds: string[];
  orderIds: string[];
  /** Every id the tenant owns (seeded rows too). */
  allIds: Set<string>;
}

let fixture: PostgresFixture;
let modelServer: SpawnedModelServer;
let client: OipClient;
let gateway: TestGateway;
let pool: Pool;
const canaries: Canary[] = [];
const logs = captureErrorLogs();

async function plant(tenant: TenantDataRef): Promise<Omit<Canary, 'token'>> {
  // Every demo table carries tenant_id, whatever the isolation (keys and foreign keys include
  // it); only the row strategy filters on it.
  const row = tenant.data.strategy === 'row';
  const schema = pg.escapeIdentifier(fixture.dataSource.schemaOf(tenant));
  const names: string[] = [];
  const customerIds: string[] = [];
  const orderIds: string[] = [];
  await fixture.dataSource.withSession(tenant, async (session) => {
    for (let i = 0; i < 4; i += 1) {
      const id = `cus_${randomBytes(6).toString('hex')}`;
      const name = `CANARY-${tenant.id}-${randomBytes(4).toString('hex')}`;
      await session.query(
        `INSERT INTO ${schema}.customers (tenant_id, id, name, email, segment, country, lifetime_value, tenure_months, monthly_spend, support_tickets, days_since_last_login)
         VALUES ($1, $2, $3, $4, 'SMB', 'US', 100, 12, 50, 1, 3)`,
        [tenant.id, id, name, `${name}@canary.test`],
      );
      for (let o = 0; o < 2; o += 1) {
        const orderId = `ord_${randomBytes(6).toString('hex')}`;
        await session.query(
          `INSERT INTO ${schema}.orders (tenant_id, id, customer_id, amount, currency, channel, item_count, is_international, payment_attempts, hour_of_day)
           VALUES ($1, $2, $3, 42.5, 'USD', 'WEB', 1, false, 1, 12)`,
          [tenant.id, orderId, id],
        );
        orderIds.push(orderId);
      }
      names.push(name);
      customerIds.push(id);
    }
    const rows = await session.query(
      `SELECT id FROM ${schema}.customers ${row ? 'WHERE tenant_id = $1' : ''} UNION ALL SELECT id FROM ${schema}.orders ${row ? 'WHERE tenant_id = $1' : ''}`,
      row ? [tenant.id] : [],
    );
    allIds.set(tenant.id, new Set((rows.rows as { id: string }[]).map((r) => r.id)));
  });
  return { tenant, names, customerIds, orderIds, allIds: allIds.get(tenant.id) ?? new Set() };
}
const allIds = new Map<string, Set<string>>();

beforeAll(async () => {
  fixture = await createPostgresFixture({
    poolMax: 1,
    seed: { size: 30 },
  });
  modelServer = await spawnModelServer({ port: 0 });
  client = createOipClient({ baseUrl: modelServer.url, timeoutMs: 5_000, connections: 4 });
  const predictor = createPredictor({
    clients: (name) => (name === 'local' ? client : undefined),
    microBatch: { enabled: true, windowMs: 2, maxBatchSize: 256 },
  });
  const signer = await createTestSigner();
  const tenants = Object.values(fixture.tenants);
  gateway = await startTestGateway({
    signer,
    tenants: tenants.map((t) => ({
      id: t.id,
      data: t.data,
      plan: 'pro',
      models: { churn: MODELS.churn },
    })),
    dataSource: fixture.dataSource,
    predictor,
    predictionCache: createMemoryStore(),
    cacheTtlSeconds: 600,
    baseDomain: BASE_DOMAIN,
    logger: logs.logger,
  });
  for (const tenant of tenants) {
    const planted = await plant(tenant);
    canaries.push({
      ...planted,
      token: await signer.sign({ tenant: tenant.id }, { expiresIn: '1h' }),
    });
  }
  pool = new Pool(gateway.url, { connections: CONCURRENCY });
}, 120_000);

afterAll(async () => {
  await pool?.close();
  await gateway?.stop();
  await client?.close();
  await modelServer?.stop();
  await fixture?.cleanup();
});

const LIST =
  'query($after: String) { customers(first: 40, after: $after) { edges { cursor node { id name email churnRisk { score label cached } orders(first: 2) { id amount customer { id name } } } } } }';

interface Probe {
  kind: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
  body: Record<string, unknown>;
  /** The answer must be this status (403 for planted hints, else 200). */
  status: number;
}

function probe(
  self: Canary,
  other: Canary,
  i: number,
  random: ReturnType<typeof createRandom>,
): Probe {
  const foreignCustomer = random.pick(other.customerIds);
  const foreignOrder = random.pick(other.orderIds);
  switch (i % 8) {
    case 0:
      return {
        kind: 'list, tenant in variables and body',
        body: {
          query: LIST,
          variables: { tenant: other.tenant.id, after: null },
          tenant: other.tenant.id,
        },
        status: 200,
      };
    case 1:
      return {
        kind: 'list, tenant in headers',
        headers: {
          'x-tenant': other.tenant.id,
          'x-atrium-tenant': other.tenant.id,
          'x-forwarded-host': `${other.tenant.id}.${BASE_DOMAIN}`,
          cookie: `tenant=${other.tenant.id}`,
        },
        body: { query: LIST, variables: { after: encodeCursor(foreignCustomer) } },
        status: 200,
      };
    case 2:
      return {
        kind: 'foreign ids in variables',
        body: {
          query: `query($id: ID!, $own: ID!, $order: ID!) { customer(id: $id) { id name } own: customer(id: $own) { id name churnRisk { score } } order(id: $order) { id customer { id name } } }`,
          variables: {
            id: foreignCustomer,
            own: random.pick(self.customerIds),
            order: foreignOrder,
          },
        },
        status: 200,
      };
    case 3:
      return {
        kind: 'foreign ids inline',
        body: {
          query: `{ customer(id: "${foreignCustomer}") { id name orders { id } } order(id: "${foreignOrder}") { id amount } viewer { tenant { id } } }`,
        },
        status: 200,
      };
    case 4:
      return {
        kind: 'path names the other tenant',
        path: `/t/${other.tenant.id}/graphql`,
        body: { query: LIST, variables: { after: null } },
        status: 403,
      };
    case 5:
      return {
        kind: 'subdomain names the other tenant',
        host: `${other.tenant.id}.${BASE_DOMAIN}`,
        body: { query: LIST, variables: { after: null } },
        status: 403,
      };
    case 6:
      return {
        kind: 'write with a foreign customer',
        body: {
          query: `mutation($c: ID!) { createOrder(input: { customerId: $c, amount: 1, currency: "USD", channel: WEB }) { id customer { id name } } }`,
          variables: { c: foreignCustomer },
        },
        status: 200,
      };
    default:
      return {
        kind: 'own path, own subdomain',
        path: `/t/${self.tenant.id}/graphql`,
        host: `${self.tenant.id}.${BASE_DOMAIN}`,
        body: {
          query: LIST,
          variables: { after: random.chance(0.5) ? null : encodeCursor(foreignCustomer) },
        },
        status: 200,
      };
  }
}

describe('cross-tenant canaries', () => {
  it(`${REQUESTS} interleaved requests at concurrency ${CONCURRENCY} on a pool of one connection leak nothing`, async () => {
    expect(canaries).toHaveLength(3);
    // Warm the prediction cache and Apollo's document cache for every tenant.
    for (const self of canaries) {
      const warm = await pool.request({
        method: 'POST',
        path: '/graphql',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${self.token}` },
        body: JSON.stringify({ query: LIST, variables: { after: null } }),
      });
      expect(warm.statusCode).toBe(200);
      await warm.body.text();
    }
    const random = createRandom(0xc0ffee);
    const leaks: string[] = [];
    const statuses = new Map<string, number>();
    let ownCanariesSeen = 0;
    let writes = 0;
    let timedOut = 0;
    const jobs = Array.from({ length: REQUESTS }, (_, i) => {
      const self = canaries[i % canaries.length] as Canary;
      const other = canaries[(i + 1 + (Math.floor(i / 3) % 2)) % canaries.length] as Canary;
      return { self, other, probe: probe(self, other, Math.floor(i / 3), random) };
    });
    await runPool(jobs, CONCURRENCY, async ({ self, probe: p }) => {
      const response = await pool.request({
        method: 'POST',
        path: p.path ?? '/graphql',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${self.token}`,
          ...(p.host ? { host: p.host } : {}),
          ...p.headers,
        },
        body: JSON.stringify(p.body),
      });
      const text = await response.body.text();
      const key = `${p.kind}: ${response.statusCode}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      if (response.statusCode !== p.status)
        leaks.push(`${key} (expected ${p.status}): ${text.slice(0, 200)}`);
      for (const foreign of canaries) {
        if (foreign === self) continue;
        for (const name of foreign.names)
          if (text.includes(name)) leaks.push(`${p.kind}: ${self.tenant.id} saw ${name}`);
        for (const id of text.match(/\b(?:cus|ord)_[0-9a-z]+\b/g) ?? []) {
          if (foreign.allIds.has(id) && !self.allIds.has(id))
            leaks.push(`${p.kind}: ${self.tenant.id} saw ${foreign.tenant.id}'s id ${id}`);
        }
      }
      if (p.kind.startsWith('write')) {
        writes += 1;
        // One connection serves 50 concurrent callers here: a write may wait past the pool's
        // acquire timeout. That refuses the write too (counted, bounded below); only an
        // accepted write, or any other answer, would be a leak.
        if (text.includes('"code":"BACKEND_TIMEOUT"') && text.includes('"createOrder"]')) {
          timedOut += 1;
        } else if (!text.includes('"code":"BAD_USER_INPUT"')) {
          leaks.push(
            `${p.kind}: an order for another tenant's customer was not refused: ${text.slice(0, 200)}`,
          );
        }
      }
      if (self.names.some((name) => text.includes(name))) ownCanariesSeen += 1;
    });
    console.log(
      `cross-tenant canaries: ${REQUESTS} requests at concurrency ${CONCURRENCY}, ${leaks.length} leaks, ${ownCanariesSeen} answers showed the caller's own canaries, ${timedOut} of ${writes} foreign writes refused by the pool's timeout instead of BAD_USER_INPUT\n`,
      Object.fromEntries([...statuses].sort()),
    );
    expect(leaks.slice(0, 10)).toEqual([]);
    expect(timedOut).toBeLessThan(writes * 0.02);
    // The probes did reach the data: callers saw their own canaries many times.
    expect(ownCanariesSeen).toBeGreaterThan(REQUESTS / 10);
    expect(logs.lines).toEqual([]);
  }, 150_000);
});
