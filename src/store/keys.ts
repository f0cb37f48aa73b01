import { TENANT_ID_PATTERN } from '../config/schema.js';
import type { QuotaLedgerKeys } from './types.js';

/**
 * The one place store keys are built. Every key is `atrium:{<tenant>}:<kind>[:<part>…]`:
 * - the tenant id is validated against `TENANT_ID_PATTERN` (a DNS label: no `:`, `{`, `}`),
 *   so a key can never name another tenant;
 * - `{<tenant>}` is a Redis Cluster hash tag (the first `{…}` in the key), so all of a
 *   tenant's keys live in one slot and multi-key commands and scripts work in a cluster;
 * - parts are escaped (`%` `:` `{` `}` → `%25` `%3A` `%7B` `%7D`), so the mapping from parts
 *   to key is injective: `("a:b", "c")` and `("a", "b:c")` cannot collide.
 *
 * A bad tenant id or kind is a programming error (the tenant was resolved from verified
 * claims long before a key is built), so these throw `TypeError`.
 */

const PREFIX = 'atrium';
const KIND_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

/** Key kinds in use; a kind is fixed text chosen by code, never input. */
export const KEY_KINDS = {
  rateLimit: 'rl',
  rateLimitSubject: 'rl-sub',
  concurrency: 'conc',
  prediction: 'pred',
  persistedQuery: 'pq',
  persistedQuerySizes: 'pq-size',
  persistedQueryExpiries: 'pq-exp',
  trustedDocument: 'doc',
  tenantConfig: 'config',
} as const;

export function assertTenantId(tenantId: unknown): asserts tenantId is string {
  if (typeof tenantId !== 'string' || !TENANT_ID_PATTERN.test(tenantId)) {
    throw new TypeError(
      `store key: tenant id must match ${String(TENANT_ID_PATTERN)}; received ${JSON.stringify(tenantId) ?? String(tenantId)}`,
    );
  }
}

/** Escapes one key part so it cannot introduce a separator or a hash tag. */
export function escapeKeyPart(part: string): string {
  if (typeof part !== 'string') {
    throw new TypeError(`store key: parts must be strings; received ${typeof part}`);
  }
  return part.replace(/[%:{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** `atrium:{<tenant>}:<kind>:<part>…` with every part escaped. */
export function tenantKey(tenantId: string, kind: string, ...parts: readonly string[]): string {
  assertTenantId(tenantId);
  if (!KIND_PATTERN.test(kind)) {
    throw new TypeError(
      `store key: kind must match ${String(KIND_PATTERN)}; received ${JSON.stringify(kind)}`,
    );
  }
  const head = `${PREFIX}:{${tenantId}}:${kind}`;
  return parts.length === 0 ? head : `${head}:${parts.map(escapeKeyPart).join(':')}`;
}

/**
 * The GCRA state of a tenant, or of one subject (user, API client) within the tenant. The
 * two live under different kinds, so a subject can never share the tenant-wide bucket.
 */
export function rateLimitKey(tenantId: string, subject?: string): string {
  return subject === undefined
    ? tenantKey(tenantId, KEY_KINDS.rateLimit)
    : tenantKey(tenantId, KEY_KINDS.rateLimitSubject, subject);
}

/** The sorted set of a tenant's in-flight request leases. */
export function concurrencyKey(tenantId: string): string {
  return tenantKey(tenantId, KEY_KINDS.concurrency);
}

/** A cached prediction: tenant + model + version + hash of the input row. */
export function predictionKey(
  tenantId: string,
  model: string,
  version: string,
  inputHash: string,
): string {
  return tenantKey(tenantId, KEY_KINDS.prediction, model, version, inputHash);
}

/** An automatic persisted query (APQ) of a tenant, by its SHA-256 hash. */
export function persistedQueryKey(tenantId: string, hash: string): string {
  return tenantKey(tenantId, KEY_KINDS.persistedQuery, hash);
}

/**
 * The ledger of a tenant's automatic persisted queries, which bounds them by count and bytes
 * (`Store.putWithQuota`): a hash of entry sizes with the totals, and a sorted set of expiries.
 * Both carry the tenant's hash tag, so one script can update them with the document.
 */
export function persistedQueryLedgerKeys(tenantId: string): QuotaLedgerKeys {
  return {
    sizes: tenantKey(tenantId, KEY_KINDS.persistedQuerySizes),
    expiries: tenantKey(tenantId, KEY_KINDS.persistedQueryExpiries),
  };
}

/**
 * A document registered for a tenant in trusted-documents mode, by its SHA-256 hash. Kept
 * apart from `persistedQueryKey`: any client can fill the APQ cache, only an operator can
 * register a trusted document.
 */
export function trustedDocumentKey(tenantId: string, hash: string): string {
  return tenantKey(tenantId, KEY_KINDS.trustedDocument, hash);
}

/** A tenant's run-time configuration (JSON), changed through the store. */
export function tenantConfigKey(tenantId: string): string {
  return tenantKey(tenantId, KEY_KINDS.tenantConfig);
}

/**
 * The channel announcing tenant config changes; messages carry the tenant id. One channel
 * for all tenants so an instance needs a single subscription; it holds no tenant data.
 */
export function tenantConfigChannel(): string {
  return `${PREFIX}:tenant-config`;
}

/**
 * The set of tenant ids that have a run-time configuration record. Deliberately outside
 * every tenant's hash tag: it names tenants but holds none of their data, and it is only
 * ever used in single-key commands (SADD, SMEMBERS), so its own slot breaks no Cluster rule.
 */
export function tenantIndexKey(): string {
  return `${PREFIX}:tenant-index`;
}

/**
 * A value that changes (a fresh random id) on every run-time tenant config write. Replicas
 * poll it to catch up on changes whose pub/sub message they missed (while disconnected).
 */
export function tenantConfigRevisionKey(): string {
  return `${PREFIX}:tenant-config-rev`;
}

/**
 * The Redis Cluster hash tag of a key (the text between the first `{` and the next `}`), or
 * the whole key when it has none. Keys with the same tag share a slot.
 */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}
