import { createHash } from 'node:crypto';
import { parse } from 'graphql';
import { LRUCache } from 'lru-cache';
import { DEFAULT_PERSISTED_QUERY_MAX_DOCUMENT_BYTES } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { persistedQueryKey, persistedQueryLedgerKeys, trustedDocumentKey } from '../store/keys.js';
import type { QuotaDecision, Store } from '../store/types.js';
import type { TenantConfigAdmin } from '../tenancy/tenant-admin.js';
import type { Tenant } from '../tenancy/tenant.js';
import { GRAPHQL_RESPONSE_JSON, type ResponseMediaType } from './media-type.js';

/**
 * Automatic persisted queries (the Apollo APQ protocol) and trusted documents, per tenant.
 *
 * Apollo Server's own APQ cache cannot be used: its `KeyValueCache` sees a hash and nothing
 * else, so one tenant's registered query would answer another tenant's hash. This runs in the
 * HTTP path instead, after admission, when the tenant is known: it turns a request that
 * carries `extensions.persistedQuery` into a plain one (`query` filled in, the extension
 * removed) before Apollo Server sees it, which is configured with `persistedQueries: false`.
 *
 * Protocol (as Apollo Server and Apollo Client implement it):
 * - `{ extensions: { persistedQuery: { version: 1, sha256Hash } } }` with no `query`: the
 *   tenant's stored query runs, or the answer is `PERSISTED_QUERY_NOT_FOUND` (HTTP 200, or 404
 *   for `application/graphql-response+json`: see {@link persistedQueryNotFound}), on
 *   which clients resend the full query with the hash;
 * - `query` + hash: the hash must be the SHA-256 (hex) of the query, else 400; the query runs
 *   and, once it has run (a 2xx answer: it passed parsing, validation and the plan's limits),
 *   is stored for the tenant with a TTL — what would not run is never stored;
 * - both GET (`?extensions=…&query=…`) and POST bodies.
 * A store that cannot answer degrades to "not found": the client resends the full query, and
 * the request costs one round trip more, never a 5xx.
 *
 * Registrations are bounded per tenant, so no tenant can fill the store others share: a
 * document over `maxDocumentBytes` is refused, and so is one that would take the tenant past its
 * plan's `persistedQueries` quota (documents and bytes, counted in one ledger per tenant and
 * checked atomically by the store) — 400 `OPERATION_LIMIT` with `limit`
 * `persistedQueryDocumentBytes`, `persistedQueryDocuments` or `persistedQueryBytes`. Entries
 * leave the quota when their TTL ends; registering a stored document again renews it.
 *
 * Trusted documents: a tenant with `trustedDocuments: true` runs only documents an operator
 * registered (admin endpoint or CLI; kept in the durable copy when a database is configured,
 * and in the store without TTL under `trustedDocumentKey`, rebuilt from it). Clients
 * cannot register through APQ for such a tenant. Any other document is refused with 403
 * `FORBIDDEN` (reason `DOCUMENT_NOT_TRUSTED`): the request is well formed, the tenant's policy
 * forbids it, so a 400 ("fix your request") would mislead. When the registry cannot be read
 * and the document is not in the local cache, the request is refused with 503 rather than run
 * unchecked: the mode exists to fail closed.
 */

/** How long a replica trusts a document it has seen registered before asking the store again. */
export const DEFAULT_TRUSTED_CACHE_TTL_MS = 60_000;
export const DEFAULT_TRUSTED_CACHE_MAX = 10_000;

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The request as the HTTP adapter has it, before Apollo Server sees it. */
export interface PersistedQueryRequest {
  readonly method: string;
  /** The URL's search string, `?…` or empty; GET requests carry the operation there. */
  readonly search: string;
  /** The parsed JSON body of a POST (anything else is passed through untouched). */
  readonly body: unknown;
}

export type PersistedQueryOutcome =
  /**
   * Hand this to Apollo Server: the query filled in, the persistedQuery extension removed.
   * `register`, when present, stores the document: call it once the request has run (a 2xx
   * answer), so that nothing refused by validation or limits is ever stored. It never rejects.
   */
  | {
      readonly kind: 'execute';
      readonly search: string;
      readonly body: unknown;
      readonly register?: (() => Promise<void>) | undefined;
    }
  /** Answer with {@link persistedQueryNotFound}: the client should resend the full query. */
  | { readonly kind: 'not-found' };

export interface PersistedQueries {
  /**
   * Resolves a request of `tenant` (already admitted). Throws a `GatewayError` for a bad
   * hash or version (400), an untrusted document (403) or an unreadable trusted registry (503).
   */
  resolve(
    tenant: PersistedQueryTenant,
    request: PersistedQueryRequest,
  ): Promise<PersistedQueryOutcome>;
}

/** What resolving needs of a tenant: who, its mode, and its plan's quota. */
export type PersistedQueryTenant = Pick<Tenant, 'id' | 'trustedDocuments'> & {
  limits: Pick<Tenant['limits'], 'persistedQueries'>;
};

export interface PersistedQueriesOptions {
  /** Where queries and trusted documents live (Redis in production). */
  store: Pick<Store, 'get' | 'set' | 'putWithQuota'>;
  /** APQ for tenants not in trusted mode. Off → requests pass through (Apollo answers NOT_SUPPORTED). */
  enabled: boolean;
  /** Lifetime of an APQ entry, renewed each time a client registers the query again. */
  ttlSeconds: number;
  /** A larger document (UTF-8 bytes) is not registered. Default 64 KiB. */
  maxDocumentBytes?: number | undefined;
  /** Positive cache of trusted documents per replica. Defaults 60 s / 10 000 entries. */
  trustedCacheTtlMs?: number | undefined;
  trustedCacheMax?: number | undefined;
  /** Told when the store failed and the request degraded; for logs and metrics. */
  onStoreError?: ((error: unknown, operation: string) => void) | undefined;
}

/** SHA-256 of a document as APQ clients compute it: hex of the UTF-8 text. */
export function documentHash(document: string): string {
  return createHash('sha256').update(document, 'utf8').digest('hex');
}

/**
 * The answer to a hash the tenant has not registered: as Apollo Server gives it (200) for
 * `application/json`; 404 for `application/graphql-response+json`, where an answer without
 * `data` must not be 2xx (GraphQL over HTTP). APQ clients read the code in both cases.
 */
export function persistedQueryNotFound(mediaType: ResponseMediaType): {
  status: number;
  headers: Record<string, string>;
  body: { errors: { message: string; extensions: { code: string } }[] };
} {
  return {
    status: mediaType === GRAPHQL_RESPONSE_JSON ? 404 : 200,
    headers: { 'cache-control': 'private, no-cache, must-revalidate' },
    body: {
      errors: [
        { message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } },
      ],
    },
  };
}

function badRequest(message: string, reason: string): GatewayError {
  return new GatewayError('BAD_USER_INPUT', message, { extensions: { reason } });
}

/** A registration the limits refuse: the request ends with 400, like any plan limit. */
function registrationRefused(
  limit: 'persistedQueryDocumentBytes' | 'persistedQueryDocuments' | 'persistedQueryBytes',
  value: number,
  max: number,
): GatewayError {
  const what =
    limit === 'persistedQueryDocumentBytes'
      ? `the document has ${value} bytes`
      : limit === 'persistedQueryDocuments'
        ? `the tenant would keep ${value} documents`
        : `the tenant's documents would take ${value} bytes`;
  return new GatewayError(
    'OPERATION_LIMIT',
    `Persisted query not registered: ${what}, over the limit of ${max}. Send the query without persistedQuery, or retry after registered ones expire.`,
    { request: true, extensions: { limit, value, max } },
  );
}

function quotaRefused(decision: QuotaDecision, quota: { maxDocuments: number; maxBytes: number }) {
  return decision.exceeded === 'entries'
    ? registrationRefused('persistedQueryDocuments', decision.entries, quota.maxDocuments)
    : registrationRefused('persistedQueryBytes', decision.bytes, quota.maxBytes);
}

function untrustedError(): GatewayError {
  return new GatewayError(
    'FORBIDDEN',
    'This tenant runs registered operations only, and this document is not registered.',
    { extensions: { reason: 'DOCUMENT_NOT_TRUSTED' } },
  );
}

function trustedUnavailableError(): GatewayError {
  return new GatewayError(
    'BACKEND_UNAVAILABLE',
    'The registry of trusted documents is temporarily unavailable; retry shortly.',
    {
      status: 503,
      headers: { 'Retry-After': '1' },
      extensions: { reason: 'TRUSTED_DOCUMENTS_UNAVAILABLE', retryAfterSeconds: 1 },
    },
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What the request says, wherever it says it (GET parameters or POST body). */
type Execute = Extract<PersistedQueryOutcome, { kind: 'execute' }>;

interface Operation {
  query: unknown;
  extensions: Record<string, unknown> | undefined;
  /** Rebuilds the request with `query` set and `extensions` replaced. */
  rebuild(query: string, extensions: Record<string, unknown> | undefined): Execute;
}

function readOperation(request: PersistedQueryRequest): Operation | undefined {
  if (request.method === 'POST') {
    // Text bodies (other content types) and arrays (batches) are Apollo's to refuse.
    if (!isPlainObject(request.body)) return undefined;
    const body = request.body;
    const { extensions } = body;
    if (extensions !== undefined && extensions !== null && !isPlainObject(extensions)) {
      throw badRequest('`extensions` must be an object.', 'BAD_EXTENSIONS');
    }
    return {
      query: body.query,
      extensions: extensions ?? undefined,
      rebuild(query, rest) {
        const next: Record<string, unknown> = { ...body, query };
        if (rest === undefined) delete next.extensions;
        else next.extensions = rest;
        return { kind: 'execute', search: request.search, body: next };
      },
    };
  }
  const params = new URLSearchParams(request.search);
  const text = params.get('extensions');
  let extensions: Record<string, unknown> | undefined;
  if (text !== null && text !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw badRequest('The `extensions` parameter is not valid JSON.', 'BAD_EXTENSIONS');
    }
    if (!isPlainObject(parsed)) {
      throw badRequest('The `extensions` parameter must be a JSON object.', 'BAD_EXTENSIONS');
    }
    extensions = parsed;
  }
  return {
    query: params.get('query') ?? undefined,
    extensions,
    rebuild(query, rest) {
      params.set('query', query);
      if (rest === undefined) params.delete('extensions');
      else params.set('extensions', JSON.stringify(rest));
      return { kind: 'execute', search: `?${params.toString()}`, body: request.body };
    },
  };
}

interface PersistedQueryExtension {
  sha256Hash: string;
}

function readExtension(value: unknown): PersistedQueryExtension {
  if (!isPlainObject(value)) {
    throw badRequest('`extensions.persistedQuery` must be an object.', 'PERSISTED_QUERY_INVALID');
  }
  if (value.version !== 1) {
    throw badRequest('Unsupported persisted query version', 'PERSISTED_QUERY_VERSION');
  }
  const hash = value.sha256Hash;
  if (typeof hash !== 'string' || !SHA256_HEX.test(hash)) {
    throw badRequest(
      '`extensions.persistedQuery.sha256Hash` must be 64 lowercase hex digits.',
      'PERSISTED_QUERY_INVALID',
    );
  }
  return { sha256Hash: hash };
}

/** See the module comment. */
export function createPersistedQueries(options: PersistedQueriesOptions): PersistedQueries {
  const { store, enabled, ttlSeconds } = options;
  const maxDocumentBytes = options.maxDocumentBytes ?? DEFAULT_PERSISTED_QUERY_MAX_DOCUMENT_BYTES;
  for (const [name, value] of [
    ['ttlSeconds', ttlSeconds],
    ['maxDocumentBytes', maxDocumentBytes],
  ] as const) {
    if (!(Number.isInteger(value) && value > 0)) {
      throw new TypeError(
        `createPersistedQueries: ${name} must be a whole number > 0; received ${value}`,
      );
    }
  }
  const trusted = new LRUCache<string, string>({
    max: options.trustedCacheMax ?? DEFAULT_TRUSTED_CACHE_MAX,
    ttl: options.trustedCacheTtlMs ?? DEFAULT_TRUSTED_CACHE_TTL_MS,
  });
  const storeFailed = (error: unknown, operation: string): void => {
    if (error instanceof TypeError) throw error;
    options.onStoreError?.(error, operation);
  };

  /** The trusted document with this hash, `undefined` when not registered. */
  async function trustedDocument(tenantId: string, hash: string): Promise<string | undefined> {
    const key = trustedDocumentKey(tenantId, hash);
    const cached = trusted.get(key);
    if (cached !== undefined) return cached;
    let document: string | null;
    try {
      document = await store.get(key);
    } catch (error) {
      storeFailed(error, 'trustedDocument');
      throw trustedUnavailableError();
    }
    if (document === null) return undefined;
    trusted.set(key, document);
    return document;
  }

  async function resolveTrusted(
    tenantId: string,
    query: string | undefined,
    extension: PersistedQueryExtension | undefined,
    operation: Operation,
    rest: Record<string, unknown> | undefined,
    passThrough: PersistedQueryOutcome,
  ): Promise<PersistedQueryOutcome> {
    if (query === undefined) {
      if (extension === undefined) return passThrough;
      const document = await trustedDocument(tenantId, extension.sha256Hash);
      return document === undefined ? { kind: 'not-found' } : operation.rebuild(document, rest);
    }
    const hash = documentHash(query);
    if (extension !== undefined && extension.sha256Hash !== hash) {
      throw badRequest('provided sha does not match query', 'PERSISTED_QUERY_HASH_MISMATCH');
    }
    if ((await trustedDocument(tenantId, hash)) === undefined) throw untrustedError();
    return operation.rebuild(query, rest);
  }

  return {
    async resolve(tenant, request) {
      const passThrough: PersistedQueryOutcome = {
        kind: 'execute',
        search: request.search,
        body: request.body,
      };
      const operation = readOperation(request);
      if (operation === undefined) {
        if (tenant.trustedDocuments && request.method === 'POST' && request.body !== undefined) {
          // A body this module cannot read may not reach execution in trusted mode.
          throw untrustedError();
        }
        return passThrough;
      }
      const { persistedQuery, ...others } = operation.extensions ?? {};
      const rest = Object.keys(others).length > 0 ? others : undefined;
      const extension = persistedQuery == null ? undefined : readExtension(persistedQuery);
      const query = operation.query ?? undefined;
      if (query !== undefined && typeof query !== 'string') {
        throw badRequest('`query` must be a string.', 'BAD_QUERY');
      }

      if (tenant.trustedDocuments) {
        // An empty request runs nothing: Apollo Server refuses it with its own 400.
        return resolveTrusted(tenant.id, query, extension, operation, rest, passThrough);
      }
      if (extension === undefined || !enabled) return passThrough;
      const key = persistedQueryKey(tenant.id, extension.sha256Hash);
      if (query === undefined) {
        let stored: string | null = null;
        try {
          stored = await store.get(key);
        } catch (error) {
          storeFailed(error, 'get');
        }
        return stored === null ? { kind: 'not-found' } : operation.rebuild(stored, rest);
      }
      if (documentHash(query) !== extension.sha256Hash) {
        throw badRequest('provided sha does not match query', 'PERSISTED_QUERY_HASH_MISMATCH');
      }
      const bytes = Buffer.byteLength(query, 'utf8');
      if (bytes > maxDocumentBytes) {
        throw registrationRefused('persistedQueryDocumentBytes', bytes, maxDocumentBytes);
      }
      const quota = tenant.limits.persistedQueries;
      const put = (dryRun: boolean) =>
        store.putWithQuota(key, query, {
          ledger: persistedQueryLedgerKeys(tenant.id),
          ttlSeconds,
          maxEntries: quota.maxDocuments,
          maxBytes: quota.maxBytes,
          dryRun,
        });
      // Refused now, before it runs, if it cannot be kept; stored only after it has run.
      let check: QuotaDecision;
      try {
        check = await put(true);
      } catch (error) {
        // The store is down: run the query, keep nothing (the client will send it again).
        storeFailed(error, 'putWithQuota');
        return operation.rebuild(query, rest);
      }
      if (!check.accepted) throw quotaRefused(check, quota);
      return {
        ...operation.rebuild(query, rest),
        // Awaited by the caller (bounded by the store's timeout) so the client's next hash-only
        // request finds it. A failed write, or one a concurrent registration left no room for,
        // only means the client will send the full query again.
        register: async () => {
          try {
            await put(false);
          } catch (error) {
            storeFailed(error, 'putWithQuota');
          }
        },
      };
    },
  };
}

/** One document to register for a tenant in trusted-documents mode. */
export interface TrustedDocumentInput {
  /** The document text, exactly as clients send it (the hash is over these bytes). */
  readonly body: string;
  /** Its SHA-256 hex, when the manifest states it; checked against `body`. */
  readonly id?: string | undefined;
}

/**
 * Reads documents to register: a JSON array of strings, `{ documents: [...] }`, or an Apollo
 * persisted query manifest (`{ format: "apollo-persisted-query-manifest", version: 1,
 * operations: [{ id, body, … }] }`). Throws `BAD_USER_INPUT` naming what is wrong.
 */
export function parseTrustedDocuments(input: unknown): TrustedDocumentInput[] {
  const list: unknown = Array.isArray(input)
    ? input
    : isPlainObject(input)
      ? (input.operations ?? input.documents)
      : undefined;
  if (!Array.isArray(list) || list.length === 0) {
    throw badRequest(
      'Expected a non-empty array of documents, { documents: [...] } or an Apollo persisted query manifest.',
      'BAD_DOCUMENTS',
    );
  }
  return list.map((item, index) => {
    if (typeof item === 'string') return { body: item };
    if (isPlainObject(item) && typeof item.body === 'string') {
      if (item.id !== undefined && typeof item.id !== 'string') {
        throw badRequest(`documents[${index}].id must be a string.`, 'BAD_DOCUMENTS');
      }
      return { body: item.body, id: item.id };
    }
    throw badRequest(
      `documents[${index}] must be a string or { id, body }; found ${typeof item}.`,
      'BAD_DOCUMENTS',
    );
  });
}

/**
 * Registers documents for a tenant's trusted-documents mode; resolves their hashes in order.
 * Each must parse as GraphQL and match its stated id. Nothing is written unless all are valid;
 * the writing (durable copy first, then the shared store) is the operator admin's.
 */
export async function registerTrustedDocuments(
  admin: Pick<TenantConfigAdmin, 'putDocuments'>,
  tenantId: string,
  documents: readonly TrustedDocumentInput[],
): Promise<string[]> {
  const entries = documents.map((document, index) => {
    try {
      parse(document.body);
    } catch (error) {
      throw badRequest(
        `documents[${index}] is not a valid GraphQL document: ${(error as Error).message}`,
        'BAD_DOCUMENTS',
      );
    }
    const hash = documentHash(document.body);
    if (document.id !== undefined && document.id !== hash) {
      throw badRequest(
        `documents[${index}].id is not the SHA-256 of its body (expected ${hash}).`,
        'BAD_DOCUMENTS',
      );
    }
    return { hash, body: document.body };
  });
  await admin.putDocuments(tenantId, entries);
  return entries.map((entry) => entry.hash);
}

/**
 * Unregisters documents by hash; resolves how many existed. Replicas that used one in the last
 * `DEFAULT_TRUSTED_CACHE_TTL_MS` keep running it until their cache entry expires.
 */
export async function removeTrustedDocuments(
  admin: Pick<TenantConfigAdmin, 'removeDocuments'>,
  tenantId: string,
  hashes: readonly unknown[],
): Promise<number> {
  const valid = hashes.map((hash) => {
    if (typeof hash !== 'string' || !SHA256_HEX.test(hash)) {
      throw badRequest(
        `${JSON.stringify(hash)?.slice(0, 80) ?? typeof hash} is not a SHA-256 hex hash.`,
        'BAD_DOCUMENTS',
      );
    }
    return hash;
  });
  return admin.removeDocuments(tenantId, valid);
}
