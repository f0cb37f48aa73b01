import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loyaltyAccount } from '../../../services/realm/src/loyalty.js';
import type { LoggedRequest, RealmStats } from '../../../services/realm/src/realm-server.js';
import { spawnRealmService, type SpawnedRealmService } from '../../../services/realm/spawn.js';
import { eventually } from '../../support/eventually.js';
import { type SpawnedGateway, spawnGateway } from '../../support/spawn-gateway.js';
import { createTestSigner, type TestSigner } from '../../support/tokens.js';
import { writeGatewayConfig } from '../../support/traffic.js';

// A tenant's own GraphQL service (services/realm) stitched into that tenant's schema, with
// real processes: a gateway (embedded PGlite with the demo's data) and the realm, which
// verifies the gateway's signed identity against the gateway's own JWKS.

const ISSUER = 'atrium-realm-test';

let signer: TestSigner;
let dir: string;
let gateway: SpawnedGateway;
let realm: SpawnedRealmService;
let realmPort: number;
/** What acme was served before its realm had started. */
let beforeRealm: { sdl: string; answer: GraphQLAnswer; ready: Readiness };
/** The realm's deadline (`realm.timeoutMs`). */
const REALM_TIMEOUT_MS = 1_000;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface GraphQLAnswer {
  status: number;
  requestId: string | null;
  body: {
    data?: Record<string, unknown> | null;
    errors?: { message: string; path?: unknown[]; extensions?: Record<string, unknown> }[];
  };
}

interface Readiness {
  status: number;
  checks: Record<string, string>;
}

async function readiness(): Promise<Readiness> {
  const res = await fetch(`${gateway.url}/readyz`);
  return { status: res.status, checks: ((await res.json()) as Readiness).checks };
}

async function graphql(
  tenant: string,
  query: string,
  sub = 'tester',
  headers: Record<string, string> = {},
): Promise<GraphQLAnswer> {
  const token = await signer.sign({ tenant, sub });
  const res = await fetch(`${gateway.url}/graphql`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query }),
  });
  return {
    status: res.status,
    requestId: res.headers.get('x-request-id'),
    body: (await res.json()) as GraphQLAnswer['body'],
  };
}

async function sdl(tenant: string): Promise<string> {
  const token = await signer.sign({ tenant });
  const res = await fetch(`${gateway.url}/schema.graphql`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(200);
  return res.text();
}

async function realmGet<T>(path: string): Promise<T> {
  return (await (await fetch(`${realm.url}${path}`)).json()) as T;
}

const resetRealm = () => fetch(`${realm.url}/_stats/reset`, { method: 'POST' });

const MIXED = '{ customers(first: 50) { edges { node { id name loyalty { tier points } } } } }';

// Both executors: graphql-jit compiles the stitched schema's operations from their second use.
describe.each(['graphql-js', 'graphql-jit'] as const)('a tenant realm (%s)', (executor) => {
  beforeAll(async () => {
    signer = await createTestSigner();
    dir = mkdtempSync(join(tmpdir(), 'atrium-realm-'));
    realmPort = await freePort();
    const config = await writeGatewayConfig(dir, 'realm', signer, {
      identity: { issuer: ISSUER },
      server: { host: '127.0.0.1', port: 0, drainTimeoutMs: 2_000, executor },
      tenants: [
        {
          id: 'acme',
          displayName: 'Acme',
          plan: 'pro',
          data: { strategy: 'schema' },
          realm: { url: `http://127.0.0.1:${realmPort}/graphql`, timeoutMs: REALM_TIMEOUT_MS },
        },
        { id: 'globex', displayName: 'Globex', plan: 'pro', data: { strategy: 'row' } },
      ],
    });
    // Embedded PGlite with the demo's seed: the test's own data, whatever the environment says.
    gateway = await spawnGateway({ env: { ATRIUM_CONFIG: config, DATABASE_URL: '' } });
    beforeRealm = {
      sdl: await sdl('acme'),
      answer: await graphql('acme', '{ customers(first: 3) { edges { node { id name } } } }'),
      ready: await readiness(),
    };
    // The realm starts after the gateway, as in demo mode: it needs the gateway's JWKS.
    realm = await spawnRealmService({
      jwks: `${gateway.url}/.well-known/jwks.json`,
      issuer: ISSUER,
      port: realmPort,
    });
    // The gateway retries the introspection it could not do at start.
    await eventually(async () => (await sdl('acme')).includes('loyalty'), 30_000, 100);
  }, 90_000);

  afterAll(async () => {
    await Promise.allSettled([realm?.stop(), gateway?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the tenant its variant while its realm cannot be reached, then the realm too', async () => {
    expect(beforeRealm.sdl).toContain('customers(first: Int = 20');
    expect(beforeRealm.sdl).not.toContain('loyalty');
    expect(beforeRealm.answer.status).toBe(200);
    expect(beforeRealm.answer.body.errors).toBeUndefined();
    expect((beforeRealm.answer.body.data?.customers as { edges: unknown[] }).edges).toHaveLength(3);
    expect(await sdl('acme')).toContain('loyalty');
  });

  it('is ready only while the configured realm answers', async () => {
    expect(beforeRealm.ready.status).toBe(503);
    expect(beforeRealm.ready.checks).toMatchObject({ 'realm:acme': 'unavailable', data: 'ok' });
    const ready = await readiness();
    expect(ready.status).toBe(200);
    expect(ready.checks).toMatchObject({ 'realm:acme': 'ok', data: 'ok' });
    // One check per configured realm: globex has none.
    expect(Object.keys(ready.checks).filter((name) => name.startsWith('realm:'))).toEqual([
      'realm:acme',
    ]);
  });

  it("shows the realm's types and fields in that tenant's schema only", async () => {
    const acme = await sdl('acme');
    expect(acme).toContain('loyalty: LoyaltyAccount');
    expect(acme).toContain('loyaltyTiers: [LoyaltyTierInfo!]!');
    expect(acme).toMatch(/enum LoyaltyTier \{/);
    // The gateway's own fields are all still there; the merge entry point is not shown.
    expect(acme).toContain('customers(first: Int = 20');
    expect(acme).not.toContain('_customers');

    const globex = await sdl('globex');
    expect(globex).toContain('customers(first: Int = 20');
    expect(globex).not.toMatch(/loyalty|Loyalty/);

    const introspect = '{ __type(name: "Customer") { fields { name } } }';
    const names = async (tenant: string) => {
      const { body } = await graphql(tenant, introspect);
      const type = body.data?.__type as { fields: { name: string }[] };
      return type.fields.map((f) => f.name);
    };
    expect(await names('acme')).toContain('loyalty');
    expect(await names('globex')).not.toContain('loyalty');
    const root = await graphql('acme', '{ __schema { types { name } } }');
    const types = (root.body.data?.__schema as { types: { name: string }[] }).types;
    expect(types.map((t) => t.name)).toEqual(
      expect.arrayContaining(['LoyaltyAccount', 'LoyaltyTier', 'LoyaltyTierInfo']),
    );
  });

  it('answers a query mixing shared and realm fields in one request, with one realm request', async () => {
    // Three times: graphql-jit runs the first on graphql-js, then compiles it.
    for (let round = 1; round <= 3; round += 1) await checkMixed();
  });

  async function checkMixed(): Promise<void> {
    await resetRealm();
    const answer = await graphql('acme', MIXED);
    expect(answer.status).toBe(200);
    expect(answer.body.errors).toBeUndefined();
    const edges = (answer.body.data?.customers as { edges: { node: Record<string, unknown> }[] })
      .edges;
    expect(edges).toHaveLength(50);
    for (const { node } of edges) {
      expect(typeof node.name).toBe('string');
      const account = loyaltyAccount('acme', node.id as string);
      expect(node.loyalty).toEqual({ tier: account.tier, points: account.points });
    }
    const stats = await realmGet<RealmStats>('/_stats');
    expect(stats.requests).toBe(1);
    expect(stats.byRootField).toEqual({ _customers: 1 });
    const [logged] = await realmGet<LoggedRequest[]>('/_requests');
    expect(new Set(logged!.customerIds)).toEqual(new Set(edges.map((e) => e.node.id)));
  }

  it("carries the tenant's signed identity, the request id and the trace context to the realm", async () => {
    await resetRealm();
    const traceId = randomBytes(16).toString('hex');
    const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
    const answer = await graphql(
      'acme',
      '{ loyaltyTiers { tier minPoints } customers(first: 2) { edges { node { loyalty { tier } } } } }',
      'alice',
      { traceparent, 'x-request-id': `realm-${traceId}` },
    );
    expect(answer.requestId).toBe(`realm-${traceId}`);
    expect(answer.body.errors).toBeUndefined();
    expect(answer.body.data?.loyaltyTiers).toEqual([
      { tier: 'BRONZE', minPoints: 0 },
      { tier: 'SILVER', minPoints: 1_000 },
      { tier: 'GOLD', minPoints: 5_000 },
      { tier: 'PLATINUM', minPoints: 20_000 },
    ]);
    const logged = await realmGet<LoggedRequest[]>('/_requests');
    expect(logged.length).toBeGreaterThan(0);
    for (const request of logged) {
      expect(request).toMatchObject({
        tenant: 'acme',
        subject: 'alice',
        issuer: ISSUER,
        audience: 'realm',
        requestId: answer.requestId,
      });
      // The caller's trace goes on (tracing is off in this gateway: its header as sent).
      expect(request.traceparent).toBe(traceparent);
    }
  });

  it("refuses realm fields in another tenant's operations at validation", async () => {
    await resetRealm();
    const answer = await graphql('globex', MIXED);
    expect(answer.status).toBe(400);
    expect(answer.body.data).toBeUndefined();
    expect(answer.body.errors?.[0]?.message).toMatch(
      /Cannot query field "loyalty" on type "Customer"/,
    );
    expect(answer.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const plain = await graphql('globex', '{ customers(first: 3) { edges { node { id name } } } }');
    expect(plain.body.errors).toBeUndefined();
    expect((await realmGet<RealmStats>('/_stats')).requests).toBe(0);
  });

  it('gives the realm fields BACKEND_TIMEOUT, with the data, when the realm does not answer in time', async () => {
    // A stopped process: its port still takes connections, nothing answers.
    realm.process.kill('SIGSTOP');
    try {
      const started = Date.now();
      const mixed = await graphql('acme', MIXED);
      const elapsed = Date.now() - started;
      expect(mixed.status).toBe(200);
      const nodes = (mixed.body.data?.customers as { edges: { node: Record<string, unknown> }[] })
        .edges;
      expect(nodes).toHaveLength(50);
      for (const { node } of nodes) {
        expect(typeof node.name).toBe('string');
        expect(node.loyalty).toBeNull();
      }
      expect(new Set(mixed.body.errors?.map((e) => e.extensions?.code))).toEqual(
        new Set(['BACKEND_TIMEOUT']),
      );
      // The realm's own deadline, not the request's (10 s) nor a hang.
      expect(elapsed).toBeGreaterThanOrEqual(REALM_TIMEOUT_MS - 50);
      expect(elapsed).toBeLessThan(REALM_TIMEOUT_MS + 1_500);
      const ready = await readiness();
      expect(ready.status).toBe(503);
      expect(ready.checks['realm:acme']).toBe('unavailable');
    } finally {
      realm.process.kill('SIGCONT');
    }
    // Once it answers again, so do its fields.
    await eventually(
      async () => (await graphql('acme', MIXED)).body.errors === undefined,
      10_000,
      200,
    );
  });

  it('still serves the tenant its own fields when the realm is down', async () => {
    await realm.stop();
    const own = await graphql('acme', '{ customers(first: 5) { edges { node { id name } } } }');
    expect(own.status).toBe(200);
    expect(own.body.errors).toBeUndefined();
    const edges = (own.body.data?.customers as { edges: unknown[] }).edges;
    expect(edges).toHaveLength(5);

    const mixed = await graphql('acme', MIXED);
    expect(mixed.status).toBe(200);
    const nodes = (mixed.body.data?.customers as { edges: { node: Record<string, unknown> }[] })
      .edges;
    expect(nodes).toHaveLength(50);
    for (const { node } of nodes) {
      expect(typeof node.name).toBe('string');
      expect(node.loyalty).toBeNull();
    }
    const codes = new Set(mixed.body.errors?.map((e) => e.extensions?.code));
    expect(codes).toEqual(new Set(['BACKEND_UNAVAILABLE']));
    expect(mixed.body.errors?.[0]?.message).toMatch(/Tenant realm unavailable/);

    // The realm's breaker opens after repeated failures: its fields then fail fast, still
    // coded, still with the data.
    let open: GraphQLAnswer | undefined;
    for (let i = 0; i < 10 && !open; i += 1) {
      const answer = await graphql('acme', MIXED);
      expect(answer.status).toBe(200);
      expect((answer.body.data?.customers as { edges: unknown[] }).edges).toHaveLength(50);
      if (answer.body.errors?.some((e) => /circuit open/.test(e.message))) open = answer;
    }
    expect(open).toBeDefined();
    expect(new Set(open!.body.errors?.map((e) => e.extensions?.code))).toEqual(
      new Set(['BACKEND_UNAVAILABLE']),
    );
    const ready = await readiness();
    expect(ready.status).toBe(503);
    expect(ready.checks['realm:acme']).toBe('unavailable');
    expect(gateway.process.exitCode).toBeNull();
  });
});
