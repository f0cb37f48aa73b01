import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/backends/data/types.js';
import { createPersistedQueries, documentHash } from '../../../src/server/persisted-queries.js';
import { persistedQueryKey } from '../../../src/store/keys.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner } from '../../support/tokens.js';
import { uniqueTenant } from '../../unit/store/store-contract.js';
import {
  closeReplica,
  connectReplica,
  deleteTenantKeys,
  REDIS_HOST_URL,
  type Replica,
  tenantKeys,
  unusedDataSource,
} from './support.js';

// Issue 12 §4 "persisted queries": one tenant stored 60 × 900 KB documents in 2 s (Redis
// 1.3 → 55 MB for 24 h), and documents were stored even when the token limit then refused
// them. Registrations are now bounded per tenant (documents and bytes, per plan, kept in one
// ledger in Redis by one script), a document over the size limit is refused, and a document is
// stored only once it has run. Real HTTP, real Redis (database 14, unique tenant ids).

const REDIS_URL = `${REDIS_HOST_URL}/14`;
const MAX_DOCUMENT_BYTES = 16 * 1024;

interface Answer {
  status: number;
  body: { data?: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] };
}

describe('persisted queries: per-tenant quotas, and only what runs is stored', () => {
  const counted = uniqueTenant('pq-count');
  const sized = uniqueTenant('pq-bytes');
  const other = uniqueTenant('pq-other');
  let dataSource: DataSource;
  let replica: Replica;
  let redis: Redis;
  let gateway: TestGateway;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    const signer = await createTestSigner();
    dataSource = unusedDataSource();
    replica = await connectReplica(REDIS_URL);
    redis = replica.client;
    gateway = await startTestGateway({
      signer,
      dataSource,
      persistedQueries: createPersistedQueries({
        store: replica.store,
        enabled: true,
        ttlSeconds: 600,
        maxDocumentBytes: MAX_DOCUMENT_BYTES,
      }),
      tenants: [
        {
          id: counted,
          data: { strategy: 'row' },
          limits: { persistedQueries: { maxDocuments: 5, maxBytes: 1_000_000 } },
        },
        {
          id: sized,
          data: { strategy: 'row' },
          limits: { persistedQueries: { maxDocuments: 1_000, maxBytes: 40_000 } },
        },
        { id: other, data: { strategy: 'row' } },
      ],
    });
    for (const tenant of [counted, sized, other]) tokens[tenant] = await signer.sign({ tenant });
  });

  afterAll(async () => {
    await gateway?.stop();
    if (replica) await deleteTenantKeys(redis, [counted, sized, other]);
    await closeReplica(replica);
    await (dataSource as { close(): Promise<void> } | undefined)?.close();
  });

  async function register(tenant: string, query: string): Promise<Answer> {
    const response = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[tenant]}` },
      body: JSON.stringify({
        query,
        extensions: { persistedQuery: { version: 1, sha256Hash: documentHash(query) } },
      }),
    });
    return { status: response.status, body: (await response.json()) as Answer['body'] };
  }

  const stored = (tenant: string, query: string) =>
    redis.exists(persistedQueryKey(tenant, documentHash(query)));
  /** A valid operation padded to about `bytes` with a comment (comments are not tokens). */
  const padded = (name: string, bytes: number) =>
    `query ${name} { viewer { tenant { id } } }\n# ${'x'.repeat(Math.max(0, bytes - 40))}`;

  it('refuses a document over the size limit, coded, and stores nothing', async () => {
    const big = padded('Big', 900 * 1024);
    const answer = await register(other, big);
    expect(answer.status).toBe(400);
    expect(answer.body.errors?.[0]?.extensions).toMatchObject({
      code: 'OPERATION_LIMIT',
      limit: 'persistedQueryDocumentBytes',
      max: MAX_DOCUMENT_BYTES,
    });
    expect(await stored(other, big)).toBe(0);
  });

  it('bounds a tenant’s registered documents by count; renewals and other tenants go on', async () => {
    const queries = Array.from({ length: 6 }, (_, i) => `query Q${i} { viewer { tenant { id } } }`);
    const answers: Answer[] = [];
    for (const query of queries) answers.push(await register(counted, query));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 400]);
    expect(answers[5]?.body.errors?.[0]?.extensions).toMatchObject({
      code: 'OPERATION_LIMIT',
      limit: 'persistedQueryDocuments',
      max: 5,
    });
    expect(await stored(counted, queries[5]!)).toBe(0);
    const documents = (await tenantKeys(redis, counted)).filter((k) => k.includes(':pq:'));
    expect(documents).toHaveLength(5);
    // Registering a stored document again renews it within the quota.
    expect((await register(counted, queries[0]!)).status).toBe(200);
    // Another tenant's quota is its own.
    expect((await register(other, queries[5]!)).status).toBe(200);
  });

  it('bounds a tenant’s registered documents by bytes', async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 4; i++) answers.push(await register(sized, padded(`B${i}`, 12_000)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 400]);
    expect(answers[3]?.body.errors?.[0]?.extensions).toMatchObject({
      code: 'OPERATION_LIMIT',
      limit: 'persistedQueryBytes',
      max: 40_000,
    });
    expect(await stored(sized, padded('B3', 12_000))).toBe(0);
  });

  it('stores a document only once it has run: refused by limits or validation, it is not kept', async () => {
    const tooManyTokens = `{ viewer { ${'tenant { id } '.repeat(300)} } }`;
    const overTokens = await register(other, tooManyTokens);
    expect(overTokens.status).toBe(400);
    expect(overTokens.body.errors?.[0]?.extensions).toMatchObject({
      code: 'OPERATION_LIMIT',
      limit: 'tokens',
    });
    expect(await stored(other, tooManyTokens)).toBe(0);

    const invalid = '{ viewer { noSuchField } }';
    expect((await register(other, invalid)).status).toBe(400);
    expect(await stored(other, invalid)).toBe(0);

    const good = '{ viewer { subject } }';
    expect((await register(other, good)).status).toBe(200);
    expect(await stored(other, good)).toBe(1);
  });
});
