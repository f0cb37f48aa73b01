import { describe, expect, it } from 'vitest';
import {
  createPersistedQueries,
  documentHash,
  parseTrustedDocuments,
  registerTrustedDocuments,
  removeTrustedDocuments,
} from '../../../src/server/persisted-queries.js';
import { persistedQueryKey, trustedDocumentKey } from '../../../src/store/keys.js';
import { createMemoryStore } from '../../../src/store/memory-store.js';
import { createTenantConfigAdmin } from '../../../src/tenancy/tenant-admin.js';

const limits = { persistedQueries: { maxDocuments: 2, maxBytes: 1_000 } };
const open = { id: 'acme', trustedDocuments: false, limits };
const locked = { id: 'acme', trustedDocuments: true, limits };
const query = '{ viewer { subject } }';
const hash = documentHash(query);
const apq = { persistedQuery: { version: 1, sha256Hash: hash } };
const apqFor = (text: string) => ({
  persistedQuery: { version: 1, sha256Hash: documentHash(text) },
});

function setup(enabled = true) {
  const store = createMemoryStore();
  return { store, pq: createPersistedQueries({ store, enabled, ttlSeconds: 60 }) };
}

describe('persisted queries (memory store)', () => {
  it('rewrites a GET with a stored hash: query filled in, only its extension removed', async () => {
    const { store, pq } = setup();
    await store.set(persistedQueryKey('acme', hash), query);
    const search = `?${new URLSearchParams({
      extensions: JSON.stringify({ ...apq, other: { a: 1 } }),
      variables: '{}',
    }).toString()}`;
    const outcome = await pq.resolve(open, { method: 'GET', search, body: undefined });
    expect(outcome.kind).toBe('execute');
    const params = new URLSearchParams(outcome.kind === 'execute' ? outcome.search : '');
    expect(params.get('query')).toBe(query);
    expect(JSON.parse(params.get('extensions') ?? '')).toEqual({ other: { a: 1 } });
    expect(params.get('variables')).toBe('{}');
  });

  it('passes through what it does not handle, and refuses a non-string query', async () => {
    const { pq } = setup();
    const text = { method: 'POST', search: '', body: 'query { a }' };
    expect(await pq.resolve(open, text)).toEqual({ kind: 'execute', search: '', body: text.body });
    const plain = { method: 'POST', search: '', body: { query } };
    expect(await pq.resolve(open, plain)).toEqual({
      kind: 'execute',
      search: '',
      body: plain.body,
    });
    await expect(
      pq.resolve(open, { method: 'POST', search: '', body: { query: 42 } }),
    ).rejects.toMatchObject({ code: 'BAD_USER_INPUT', extensions: { reason: 'BAD_QUERY' } });
    await expect(
      pq.resolve(open, { method: 'POST', search: '', body: { query, extensions: [1] } }),
    ).rejects.toMatchObject({ extensions: { reason: 'BAD_EXTENSIONS' } });
  });

  it('with APQ off, hands the extension to Apollo Server (which answers NOT_SUPPORTED)', async () => {
    const { store, pq } = setup(false);
    const request = { method: 'POST', search: '', body: { query, extensions: apq } };
    expect(await pq.resolve(open, request)).toEqual({
      kind: 'execute',
      search: '',
      body: request.body,
    });
    expect(await store.get(persistedQueryKey('acme', hash))).toBeNull();
  });

  it('registers a document only when told it has run, within the tenant’s quota', async () => {
    const { store, pq } = setup();
    /** What the HTTP adapter does for a registration whose request then ran. */
    const registerAndRun = async (tenant: typeof open, text: string) => {
      const outcome = await pq.resolve(tenant, {
        method: 'POST',
        search: '',
        body: { query: text, extensions: apqFor(text) },
      });
      expect(outcome).toMatchObject({ kind: 'execute', body: { query: text } });
      // Not before it has run: a document refused by validation or limits is never stored.
      expect(await store.get(persistedQueryKey(tenant.id, documentHash(text)))).toBeNull();
      if (outcome.kind === 'execute') await outcome.register?.();
      expect(await store.get(persistedQueryKey(tenant.id, documentHash(text)))).toBe(text);
    };
    await registerAndRun(open, query);
    await registerAndRun(open, '{ viewer { scopes } }');
    const third = '{ viewer { tenant { id } } }';
    await expect(registerAndRun(open, third)).rejects.toMatchObject({
      code: 'OPERATION_LIMIT',
      status: 400,
      extensions: { limit: 'persistedQueryDocuments', value: 3, max: 2 },
    });
    // Another tenant has a quota of its own.
    await registerAndRun({ ...open, id: 'globex' }, third);
  });

  it('refuses a document over maxDocumentBytes before anything else', async () => {
    const store = createMemoryStore();
    const pq = createPersistedQueries({
      store,
      enabled: true,
      ttlSeconds: 60,
      maxDocumentBytes: 10,
    });
    await expect(
      pq.resolve(open, { method: 'POST', search: '', body: { query, extensions: apq } }),
    ).rejects.toMatchObject({
      code: 'OPERATION_LIMIT',
      status: 400,
      extensions: { limit: 'persistedQueryDocumentBytes', value: query.length, max: 10 },
    });
    expect(() =>
      createPersistedQueries({ store, enabled: true, ttlSeconds: 60, maxDocumentBytes: 0 }),
    ).toThrow(/maxDocumentBytes/);
  });

  it('in trusted mode refuses unreadable bodies and unregistered documents', async () => {
    const { store, pq } = setup();
    await expect(
      pq.resolve(locked, { method: 'POST', search: '', body: 'query { a }' }),
    ).rejects.toMatchObject({ code: 'FORBIDDEN', extensions: { reason: 'DOCUMENT_NOT_TRUSTED' } });
    await expect(
      pq.resolve(locked, { method: 'POST', search: '', body: [{ query }] }),
    ).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(
      pq.resolve(locked, {
        method: 'GET',
        search: `?query=${encodeURIComponent(query)}`,
        body: undefined,
      }),
    ).rejects.toMatchObject({ code: 'FORBIDDEN' });
    // An APQ entry (any client can make one) does not make a document trusted.
    await store.set(persistedQueryKey('acme', hash), query);
    expect(
      await pq.resolve(locked, { method: 'POST', search: '', body: { extensions: apq } }),
    ).toEqual({ kind: 'not-found' });

    expect(
      await registerTrustedDocuments(createTenantConfigAdmin({ store }), 'acme', [{ body: query }]),
    ).toEqual([hash]);
    expect(
      await pq.resolve(locked, { method: 'POST', search: '', body: { extensions: apq } }),
    ).toEqual({ kind: 'execute', search: '', body: { query } });
    expect(await removeTrustedDocuments(createTenantConfigAdmin({ store }), 'acme', [hash])).toBe(
      1,
    );
  });

  it('reads document lists and manifests, and refuses bad documents before writing', async () => {
    const store = createMemoryStore();
    expect(parseTrustedDocuments([query])).toEqual([{ body: query }]);
    expect(parseTrustedDocuments({ documents: [query] })).toEqual([{ body: query }]);
    expect(
      parseTrustedDocuments({
        format: 'apollo-persisted-query-manifest',
        version: 1,
        operations: [{ id: hash, body: query, name: 'Q', type: 'query' }],
      }),
    ).toEqual([{ body: query, id: hash }]);
    expect(() => parseTrustedDocuments({})).toThrow(/non-empty array/);
    expect(() => parseTrustedDocuments([42])).toThrow(/documents\[0\]/);

    await expect(
      registerTrustedDocuments(createTenantConfigAdmin({ store }), 'acme', [
        { body: query },
        { body: '{ broken' },
      ]),
    ).rejects.toMatchObject({ extensions: { reason: 'BAD_DOCUMENTS' } });
    await expect(
      registerTrustedDocuments(createTenantConfigAdmin({ store }), 'acme', [
        { body: query, id: documentHash('other') },
      ]),
    ).rejects.toThrow(/not the SHA-256/);
    expect(await store.get(trustedDocumentKey('acme', hash))).toBeNull();
    await expect(
      removeTrustedDocuments(createTenantConfigAdmin({ store }), 'acme', ['nope']),
    ).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
    });
  });
});
