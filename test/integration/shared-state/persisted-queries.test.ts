import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/backends/data/types.js';
import { createAdminRoute } from '../../../src/server/admin.js';
import { createPersistedQueries, documentHash } from '../../../src/server/persisted-queries.js';
import { persistedQueryKey, trustedDocumentKey } from '../../../src/store/keys.js';
import { createRedisClient } from '../../../src/store/redis-client.js';
import { createRedisStore } from '../../../src/store/redis-store.js';
import type { Store } from '../../../src/store/types.js';
import { createLogger } from '../../../src/telemetry/logger.js';
import { createTenantConfigAdmin } from '../../../src/tenancy/tenant-admin.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner, type TestSigner } from '../../support/tokens.js';
import { freePort } from '../store/redis-process.js';
import { uniqueTenant } from '../../unit/store/store-contract.js';
import {
  closeReplica,
  connectReplica,
  deleteTenantKeys,
  REDIS_HOST_URL,
  type Replica,
  unusedDataSource,
} from './support.js';

const REDIS_URL = `${REDIS_HOST_URL}/14`;
const TTL_SECONDS = 120;

interface Answer {
  status: number;
  headers: Headers;
  body: {
    data?: unknown;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
    [key: string]: unknown;
  };
}

async function answer(response: Response): Promise<Answer> {
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Answer['body'],
  };
}

function post(url: string, token: string, body: unknown, path = '/graphql'): Promise<Answer> {
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  }).then(answer);
}

function get(url: string, token: string, params: Record<string, string>): Promise<Answer> {
  return fetch(`${url}/graphql?${new URLSearchParams(params).toString()}`, {
    // What Apollo Client sends for GET when CSRF prevention is on.
    headers: { authorization: `Bearer ${token}`, 'apollo-require-preflight': 'true' },
  }).then(answer);
}

const apq = (hash: string, version = 1) => ({ persistedQuery: { version, sha256Hash: hash } });

const NOT_FOUND = {
  errors: [
    { message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } },
  ],
};

describe('automatic persisted queries and trusted documents, per tenant in Redis', () => {
  const acme = uniqueTenant('pq-acme');
  const globex = uniqueTenant('pq-globex');
  const trusted = uniqueTenant('pq-trusted');
  const operator = uniqueTenant('pq-ops');
  let signer: TestSigner;
  let dataSource: DataSource;
  const replicas: Replica[] = [];
  const gateways: TestGateway[] = [];
  let redis: Redis;
  const tokens: Record<string, string> = {};

  function startGateway(store: Store): Promise<TestGateway> {
    return startTestGateway({
      signer,
      dataSource,
      persistedQueries: createPersistedQueries({ store, enabled: true, ttlSeconds: TTL_SECONDS }),
      tenants: [
        { id: acme, data: { strategy: 'row' } },
        { id: globex, data: { strategy: 'row' } },
        { id: trusted, data: { strategy: 'row' }, trustedDocuments: true },
      ],
    });
  }

  beforeAll(async () => {
    signer = await createTestSigner();
    dataSource = unusedDataSource();
    for (let i = 0; i < 2; i += 1) {
      const replica = await connectReplica(REDIS_URL);
      replicas.push(replica);
      gateways.push(await startGateway(replica.store));
    }
    redis = replicas[0]!.client;
    for (const tenant of [acme, globex, trusted]) tokens[tenant] = await signer.sign({ tenant });
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    if (replicas[0]) await deleteTenantKeys(replicas[0].client, [acme, globex, trusted]);
    await Promise.all(replicas.map((r) => closeReplica(r)));
    await dataSource?.close();
  });

  it('follows the APQ protocol over POST, and a hash registered by one tenant is unknown to another', async () => {
    const [a, b] = gateways.map((g) => g.url) as [string, string];
    const query = `query Apq { viewer { tenant { id } } }`;
    const hash = documentHash(query);

    const unknown = await post(a, tokens[acme]!, { extensions: apq(hash) });
    expect(unknown.status).toBe(200);
    expect(unknown.body).toEqual(NOT_FOUND);
    expect(unknown.headers.get('cache-control')).toBe('private, no-cache, must-revalidate');

    // The client's retry: query and hash. It runs, and is stored under acme's tag with the TTL.
    const registered = await post(a, tokens[acme]!, { query, extensions: apq(hash) });
    expect(registered.status).toBe(200);
    expect(registered.body).toEqual({ data: { viewer: { tenant: { id: acme } } } });
    const key = persistedQueryKey(acme, hash);
    expect(await redis.get(key)).toBe(query);
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(TTL_SECONDS - 10);
    expect(ttl).toBeLessThanOrEqual(TTL_SECONDS);

    // Hash only now runs on every replica, for this tenant only.
    const hit = await post(b, tokens[acme]!, { extensions: apq(hash), operationName: 'Apq' });
    expect(hit.body).toEqual({ data: { viewer: { tenant: { id: acme } } } });
    expect(await post(b, tokens[globex]!, { extensions: apq(hash) })).toMatchObject({
      status: 200,
      body: NOT_FOUND,
    });
    expect(await redis.exists(persistedQueryKey(globex, hash))).toBe(0);

    // Extensions other than persistedQuery reach Apollo untouched (and harmlessly).
    const extra = await post(b, tokens[acme]!, {
      extensions: { ...apq(hash), tracing: { enabled: false } },
    });
    expect(extra.body).toEqual({ data: { viewer: { tenant: { id: acme } } } });
  });

  it('follows the APQ protocol over GET', async () => {
    const [a, b] = gateways.map((g) => g.url) as [string, string];
    const query = `{ viewer { subject tenant { id } } }`;
    const hash = documentHash(query);
    const extensions = JSON.stringify(apq(hash));

    expect((await get(a, tokens[globex]!, { extensions })).body).toEqual(NOT_FOUND);
    const registered = await get(a, tokens[globex]!, { query, extensions });
    expect(registered.body).toEqual({
      data: { viewer: { subject: 'tester', tenant: { id: globex } } },
    });
    expect((await get(b, tokens[globex]!, { extensions })).body).toEqual({
      data: { viewer: { subject: 'tester', tenant: { id: globex } } },
    });
    expect((await get(b, tokens[acme]!, { extensions })).body).toEqual(NOT_FOUND);
  });

  it('refuses a wrong hash, an unknown version and a malformed extension with coded 400s', async () => {
    const a = gateways[0]!.url;
    const query = '{ viewer { subject } }';
    const wrong = documentHash('{ viewer { scopes } }');
    const mismatch = await post(a, tokens[acme]!, { query, extensions: apq(wrong) });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.errors?.[0]?.extensions).toEqual({
      code: 'BAD_USER_INPUT',
      reason: 'PERSISTED_QUERY_HASH_MISMATCH',
    });
    expect(await redis.exists(persistedQueryKey(acme, wrong))).toBe(0);

    const version = await post(a, tokens[acme]!, {
      query,
      extensions: apq(documentHash(query), 2),
    });
    expect(version.status).toBe(400);
    expect(version.body.errors?.[0]?.extensions?.reason).toBe('PERSISTED_QUERY_VERSION');

    for (const extensions of [
      { persistedQuery: { version: 1, sha256Hash: 'not-a-hash' } },
      { persistedQuery: 'yes' },
    ]) {
      const bad = await post(a, tokens[acme]!, { extensions });
      expect(bad.status).toBe(400);
      expect(bad.body.errors?.[0]?.extensions?.reason).toBe('PERSISTED_QUERY_INVALID');
    }
    const badGet = await get(a, tokens[acme]!, { query, extensions: '{not json' });
    expect(badGet.status).toBe(400);
    expect(badGet.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('degrades to "not found" while the store is down, and still runs full queries', async () => {
    // A store whose Redis is not there at all: nothing listens on this port.
    const client = createRedisClient(
      { url: `redis://127.0.0.1:${await freePort()}` },
      { commandTimeoutMs: 200, connectTimeoutMs: 200 },
    );
    const store = createRedisStore({ client, timeoutMs: 200 });
    const gateway = await startGateway(store);
    try {
      const query = '{ viewer { tenant { id } } }';
      const hash = documentHash(query);
      const started = performance.now();
      const missing = await post(gateway.url, tokens[acme]!, { extensions: apq(hash) });
      expect(missing).toMatchObject({ status: 200, body: NOT_FOUND });
      const full = await post(gateway.url, tokens[acme]!, { query, extensions: apq(hash) });
      expect(full.status).toBe(200);
      expect(full.body).toEqual({ data: { viewer: { tenant: { id: acme } } } });
      // Bounded by the store's timeout, not hanging on the missing Redis.
      expect(performance.now() - started).toBeLessThan(2_000);
      // A trusted tenant fails closed instead: 503, retryable.
      const closed = await post(gateway.url, tokens[trusted]!, { query });
      expect(closed.status).toBe(503);
      expect(closed.headers.get('retry-after')).toBe('1');
      expect(closed.body.errors?.[0]?.extensions).toMatchObject({
        code: 'BACKEND_UNAVAILABLE',
        reason: 'TRUSTED_DOCUMENTS_UNAVAILABLE',
      });
    } finally {
      await gateway.stop();
      await store.close();
    }
  });

  it('runs only registered documents for a tenant in trusted-documents mode', async () => {
    const store = replicas[0]!.store;
    // The admin endpoint on its own gateway, as src/main.ts mounts it.
    const admin = await startTestGateway({
      signer,
      dataSource,
      tenants: [{ id: acme, data: { strategy: 'row' } }],
      routes: {
        '/admin/*': createAdminRoute({
          verifier: gateways[0]!.verifier,
          tenants: createTenantConfigAdmin({ store, reservedIds: [operator] }),
          registry: gateways[0]!.registry,
          adminTenant: operator,
          scope: 'atrium:admin',
          bodyLimitBytes: 1024 * 1024,
          logger: createLogger({ level: 'silent' }),
        }),
      },
    });
    try {
      const [a, b] = gateways.map((g) => g.url) as [string, string];
      const allowed = 'query Allowed { viewer { tenant { id } } }';
      const other = '{ viewer { scopes } }';
      const token = tokens[trusted]!;

      const refused = await post(a, token, { query: allowed });
      expect(refused.status).toBe(403);
      expect(refused.body.errors?.[0]?.extensions).toEqual({
        code: 'FORBIDDEN',
        reason: 'DOCUMENT_NOT_TRUSTED',
      });
      // Clients cannot register through APQ in this mode.
      const viaApq = await post(a, token, {
        query: allowed,
        extensions: apq(documentHash(allowed)),
      });
      expect(viaApq.status).toBe(403);
      expect(await redis.exists(persistedQueryKey(trusted, documentHash(allowed)))).toBe(0);

      // Registration needs an operator token: the operator tenant and the admin scope.
      const documents = { documents: [allowed] };
      const asTenant = await post(
        admin.url,
        await signer.sign({ tenant: trusted, scope: 'atrium:admin' }),
        documents,
        `/admin/tenants/${trusted}/documents`,
      );
      expect(asTenant.status).toBe(403);
      const noScope = await post(
        admin.url,
        await signer.sign({ tenant: operator, scope: 'read' }),
        documents,
        `/admin/tenants/${trusted}/documents`,
      );
      expect(noScope.status).toBe(403);
      const registered = await post(
        admin.url,
        await signer.sign({ tenant: operator, scope: 'atrium:admin' }),
        documents,
        `/admin/tenants/${trusted}/documents`,
      );
      expect(registered).toMatchObject({
        status: 200,
        body: { tenant: trusted, hashes: [documentHash(allowed)] },
      });
      expect(await redis.get(trustedDocumentKey(trusted, documentHash(allowed)))).toBe(allowed);
      expect(await redis.ttl(trustedDocumentKey(trusted, documentHash(allowed)))).toBe(-1);

      // Now the document runs, in full or by hash, on every replica; nothing else does.
      expect((await post(b, token, { query: allowed })).body).toEqual({
        data: { viewer: { tenant: { id: trusted } } },
      });
      expect((await post(a, token, { extensions: apq(documentHash(allowed)) })).body).toEqual({
        data: { viewer: { tenant: { id: trusted } } },
      });
      expect((await post(a, token, { extensions: apq(documentHash(other)) })).body).toEqual(
        NOT_FOUND,
      );
      expect((await post(b, token, { query: other })).status).toBe(403);
      expect(
        (
          await get(b, token, {
            query: other,
            extensions: JSON.stringify(apq(documentHash(other))),
          })
        ).status,
      ).toBe(403);
      // The registration is the trusted tenant's: acme's APQ cache does not know the hash.
      expect(
        (await post(a, tokens[acme]!, { extensions: apq(documentHash(allowed)) })).body,
      ).toEqual(NOT_FOUND);
    } finally {
      await admin.stop();
    }
  });
});
