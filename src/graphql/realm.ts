/**
 * Tenant realms: a tenant's own GraphQL service stitched into that tenant's schema, and no
 * other's (DESIGN.md, "Tenant services"; config `tenants[].realm`).
 *
 * A realm tenant's schema is `stitchSchemas` of its feature variant (executed here, in the
 * same request, with the same GatewayContext) and the realm's schema (introspected over HTTP
 * with the tenant's signed identity). Types the realm shares with the gateway are merged by
 * key: for a shared object type `T` with an `id`, the realm exposes a batch entry point — a
 * root field whose name starts with `_`, with one argument `ids: [ID!]!` and the type `[T]!`
 * (`_authors(ids: [ID!]!): [Author]!`), answering one element per id in order. Realm
 * fields on N parents cost one realm request per batch. Entry points are hidden from clients;
 * the gateway's own fields always win over a realm's of the same name (a realm adds, never
 * replaces).
 */
import { buildHTTPExecutor } from '@graphql-tools/executor-http';
import { stitchSchemas, ValidationLevel } from '@graphql-tools/stitch';
import type { SubschemaConfig } from '@graphql-tools/delegate';
import { type ExecutionRequest, type Executor, filterSchema } from '@graphql-tools/utils';
import { schemaFromExecutor } from '@graphql-tools/wrap';
import {
  type ExecutionResult,
  getNamedType,
  type GraphQLField,
  type GraphQLSchema,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
} from 'graphql';
import { LRUCache } from 'lru-cache';
import type { IdentitySigner } from '../auth/identity.js';
import {
  AttemptFailure,
  createResiliencePolicy,
  type ResiliencePolicy,
} from '../backends/resilience/policy.js';
import { REALM_AUDIENCE, type TenantRealmConfig } from '../config/schema.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { Deadline } from '../limits/deadline.js';
import type { Logger } from '../telemetry/logger.js';
import { originHeaders } from '../telemetry/tracing.js';
import type { Tenant } from '../tenancy/tenant.js';
import type { GatewayContext } from './context.js';
import { toGraphQLError } from './errors.js';

/**
 * After a failed introspection the next try waits 1 s, doubling on each failure up to this: a
 * realm that starts after the gateway (it verifies the gateway's JWKS) is picked up at once, a
 * realm that is down costs one try per 30 s.
 */
export const DEFAULT_REALM_RETRY_MS = 30_000;
const FIRST_RETRY_MS = 1_000;
/** `sub` of the identity the gateway signs when it asks a realm for its schema itself. */
export const GATEWAY_SUBJECT = 'atrium-gateway';
/** The key field of merged types. */
export const REALM_KEY_FIELD = 'id';
/**
 * Attempts per realm call: one. A realm request may be a mutation, which must not run twice;
 * the policy's deadline and breakers still apply.
 */
export const REALM_MAX_ATTEMPTS = 1;
/** Distinct realm deployments whose policies (breakers) are kept; the least used go first. */
export const DEFAULT_MAX_REALM_ORIGINS = 500;
const LABEL = 'Tenant realm';
const ACCEPT = 'application/graphql-response+json, application/json';

export interface TenantRealmsOptions {
  /** The tenant's feature variant (src/graphql/variants.ts). */
  variantFor(tenant: Tenant): GraphQLSchema;
  /** Signs the realm identity (`identity: signed`); undefined → such realms are refused. */
  signer: IdentitySigner | undefined;
  log: Logger;
  /** Longest wait after failed introspections; default {@link DEFAULT_REALM_RETRY_MS}. */
  retryAfterMs?: number | undefined;
  /** Milliseconds; default Date.now. */
  now?: (() => number) | undefined;
  /** The fetch realms are called with; default globalThis.fetch. */
  fetch?: typeof fetch | undefined;
  /** Realm deployments whose policies are kept at once; default {@link DEFAULT_MAX_REALM_ORIGINS}. */
  maxOrigins?: number | undefined;
}

export interface TenantRealms {
  /**
   * The schema a tenant sees: its variant stitched with its realm once the realm's schema is
   * known, else (no realm, not introspected yet, unreachable) its variant; the first call for a
   * realm starts its introspection. The same object while nothing changes, one per realm
   * tenant, so the gateway keeps one Apollo Server per realm tenant at most.
   */
  schemaFor(tenant: Tenant): GraphQLSchema;
  /** Introspects the realms of these tenants now; never rejects (failures are logged). */
  warm(tenants: readonly Tenant[]): Promise<void>;
  /** Realm tenants with a stitched schema now. */
  size(): number;
  /**
   * Readiness of a tenant's realm: `{ __typename }` answered, asked with the gateway's own
   * identity in one attempt outside the breakers (as tenant services' health is probed).
   * Resolves for a tenant without a realm; rejects with a `GatewayError` otherwise.
   */
  probe(tenant: Tenant | undefined): Promise<void>;
  /** Cancels the retries waiting (on stop). */
  close(): void;
}

interface Entry {
  /** What the stitched schema depends on: realm settings and the variant object. */
  key: string;
  variant: GraphQLSchema;
  schema: GraphQLSchema | undefined;
  loading: Promise<void> | undefined;
  retryAt: number;
  failures: number;
  /** The retry scheduled after a failure. */
  timer: NodeJS.Timeout | undefined;
}

/** The realm's own schema is wrong for stitching: the operator's to fix, logged as such. */
export class RealmSchemaError extends Error {
  override name = 'RealmSchemaError';
}

function realmKey(realm: TenantRealmConfig): string {
  return JSON.stringify([realm.url, realm.identity, realm.timeoutMs]);
}

function isIdList(field: GraphQLField<unknown, unknown>): boolean {
  const [arg] = field.args;
  if (field.args.length !== 1 || arg?.name !== 'ids') return false;
  let type = arg.type;
  if (isNonNullType(type)) type = type.ofType;
  return isListType(type) && isScalarType(getNamedType(type)) && getNamedType(type).name === 'ID';
}

/** `T` if `field` is a batch entry point for it (`_xs(ids: [ID!]!): [T]!`). */
function entryPointType(field: GraphQLField<unknown, unknown>): string | undefined {
  if (!field.name.startsWith('_') || !isIdList(field)) return undefined;
  let type = field.type;
  if (isNonNullType(type)) type = type.ofType;
  if (!isListType(type)) return undefined;
  const named = getNamedType(type);
  return isObjectType(named) ? named.name : undefined;
}

/** Entry points by type name, checked against the types the realm shares with the variant. */
function entryPoints(variant: GraphQLSchema, remote: GraphQLSchema): Map<string, string> {
  const found = new Map<string, string>();
  for (const field of Object.values(remote.getQueryType()?.getFields() ?? {})) {
    const type = entryPointType(field);
    if (type !== undefined && !found.has(type)) found.set(type, field.name);
  }
  const roots = new Set(
    [variant.getQueryType(), variant.getMutationType(), variant.getSubscriptionType()].map(
      (t) => t?.name,
    ),
  );
  for (const type of Object.values(remote.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__') || roots.has(type.name)) continue;
    const shared = variant.getType(type.name);
    if (!isObjectType(shared)) continue;
    const extra = Object.keys(type.getFields()).filter((f) => !shared.getFields()[f]);
    if (extra.length === 0) continue;
    if (!found.has(type.name) || !shared.getFields()[REALM_KEY_FIELD]) {
      throw new RealmSchemaError(
        `the realm adds ${type.name}.${extra.join(', ')} but has no entry point for ${type.name}: ` +
          `expose \`_name(ids: [ID!]!): [${type.name}]!\` (one element per id, in order)`,
      );
    }
  }
  return found;
}

/**
 * Transport failures of a realm call, as the gateway's codes (a realm's own errors pass): the
 * policy's own (`BACKEND_TIMEOUT`, `BACKEND_UNAVAILABLE`, circuit open) as they are.
 */
function translated(result: ExecutionResult): ExecutionResult {
  if (result.data != null || !result.errors) return result;
  return {
    errors: result.errors.map((error) => {
      if (error.path !== undefined && error.path.length > 0) return error;
      if (isGatewayError(error.originalError)) return toGraphQLError(error.originalError);
      const timeout = /timeout|timed out|aborted/i.test(error.message);
      return toGraphQLError(
        new GatewayError(
          timeout ? 'BACKEND_TIMEOUT' : 'BACKEND_UNAVAILABLE',
          timeout
            ? "The tenant's realm did not answer in time."
            : "The tenant's realm is not available.",
          { cause: error },
        ),
      );
    }),
  };
}

function unavailable(reason: string, detail: string, cause?: unknown): GatewayError {
  return new GatewayError('BACKEND_UNAVAILABLE', `${LABEL} unavailable (${reason})`, {
    cause: new Error(detail, { cause }),
  });
}

/**
 * One attempt at a realm request, its failures classified for the resilience policy: 5xx, 408
 * and 429 are the realm's (`server`), a success that is not JSON too (`malformed`); another
 * 4xx is refused (`rejected`, neutral) unless it is a GraphQL response, which GraphQL over
 * HTTP allows for request errors. The body is read inside the attempt, under its timeout.
 */
async function attemptRealm(
  fetchFn: typeof fetch,
  url: string,
  init: RequestInit,
  signal: AbortSignal,
): Promise<Response> {
  const response = await fetchFn(url, {
    ...init,
    signal: init.signal ? AbortSignal.any([signal, init.signal]) : signal,
  });
  const { status } = response;
  const what = `${init.method ?? 'GET'} ${url}`;
  if (status >= 500 || status === 408 || status === 429) {
    await response.body?.cancel();
    throw new AttemptFailure('server', unavailable(`HTTP ${status}`, `${what}: HTTP ${status}`));
  }
  const type = response.headers.get('content-type') ?? '';
  const text = await response.text();
  if (status < 200 || status >= 300) {
    if (!type.includes('application/graphql-response+json')) {
      throw new AttemptFailure(
        'rejected',
        new GatewayError('BACKEND_UNAVAILABLE', `${LABEL} rejected the request (HTTP ${status})`, {
          cause: new Error(`${what}: HTTP ${status}: ${text.slice(0, 200)}`),
        }),
      );
    }
  } else {
    try {
      JSON.parse(text);
    } catch (error) {
      throw new AttemptFailure(
        'malformed',
        unavailable('invalid answer', `${what}: not JSON`, error),
      );
    }
  }
  return new Response(text, {
    status,
    statusText: response.statusText,
    headers: { 'content-type': type || 'application/json' },
  });
}

/** A signal that aborts when the request's deadline passes or the request ends. */
function deadlineSignal(deadline: Deadline | undefined): AbortSignal | undefined {
  if (deadline === undefined) return undefined;
  const timeout = AbortSignal.timeout(Math.max(1, deadline.remaining()));
  return deadline.ended ? AbortSignal.any([timeout, deadline.ended]) : timeout;
}

export interface RealmExecutorOptions {
  tenantId: string;
  realm: TenantRealmConfig;
  /** Signs the realm identity (`identity: signed`). */
  signer: IdentitySigner | undefined;
  /** The realm deployment's policy: deadline, breakers, no retry (see `createTenantRealms`). */
  policy: ResiliencePolicy;
  /** Default globalThis.fetch. */
  fetch?: typeof fetch | undefined;
}

/** The headers of a realm call: identity (the request's, or the gateway's own), origin. */
async function realmHeaders(
  tenantId: string,
  realm: TenantRealmConfig,
  signer: IdentitySigner | undefined,
  context: Partial<GatewayContext> | undefined,
): Promise<Record<string, string>> {
  const headers = context?.requestId
    ? originHeaders([{ requestId: context.requestId, traceparent: context.traceparent }])
    : {};
  if (realm.identity === 'signed') {
    if (!signer) throw new GatewayError('INTERNAL_SERVER_ERROR', 'No identity signer');
    const token = await signer.sign({
      tenant: tenantId,
      subject: context?.principal?.subject ?? GATEWAY_SUBJECT,
      scopes: context?.principal?.scopes ?? [],
      audience: REALM_AUDIENCE,
    });
    headers.authorization = `Bearer ${token}`;
  }
  return headers;
}

/**
 * Calls one tenant's realm: its identity (the request's subject and scopes, or the gateway's
 * own for introspection), the request id and trace context, under the realm deployment's
 * resilience policy (the realm's timeout and the request's deadline, the tenant's and the
 * deployment's breakers, one attempt).
 */
export function createRealmExecutor(options: RealmExecutorOptions): Executor {
  const { tenantId, realm, signer, policy } = options;
  const fetchFn = options.fetch ?? globalThis.fetch;
  // The policy times calls; the executor's own timeout would be a second, unclassified one.
  const http = buildHTTPExecutor({ endpoint: realm.url });
  const executor = async (request: ExecutionRequest) => {
    const context = request.context as Partial<GatewayContext> | undefined;
    // The stitched schema of one tenant is only ever served to that tenant's requests.
    if (context?.tenant && context.tenant.id !== tenantId) {
      throw new GatewayError('INTERNAL_SERVER_ERROR', 'A realm was asked for another tenant.');
    }
    const headers = await realmHeaders(tenantId, realm, signer, context);
    const signal = deadlineSignal(context?.deadline);
    const guarded = (url: string, init: RequestInit = {}) =>
      policy.call((attempt) => attemptRealm(fetchFn, url, init, attempt.signal), {
        tenant: tenantId,
        signal,
      });
    const result = await http({
      ...request,
      extensions: { ...request.extensions, headers, fetch: guarded },
    });
    if (Symbol.asyncIterator in result) return result;
    return translated(result);
  };
  // Executor is generic in the shape of `data`, which a remote service's answer cannot be.
  return executor as Executor;
}

/** The variant and the realm, merged by key, entry points hidden, the gateway's fields first. */
export function stitchRealm(
  variant: GraphQLSchema,
  remote: GraphQLSchema,
  executor: Executor,
): GraphQLSchema {
  const points = entryPoints(variant, remote);
  const local: SubschemaConfig = { schema: variant };
  const realm: SubschemaConfig = {
    schema: remote,
    executor,
    // Delegations of one request's tick go out as one realm request.
    batch: true,
    merge: Object.fromEntries(
      [...points].map(([type, fieldName]) => [
        type,
        {
          selectionSet: `{ ${REALM_KEY_FIELD} }`,
          fieldName,
          key: (parent: Record<string, unknown>) => parent[REALM_KEY_FIELD],
          argsFromKeys: (ids: readonly unknown[]) => ({ ids }),
        },
      ]),
    ),
  };
  const stitched = stitchSchemas({
    subschemas: [local, realm],
    typeMergingOptions: {
      // Stitching would print (console.warn) every field the two define differently; here the
      // gateway's definition wins by rule, so there is nothing to reconcile.
      validationSettings: { validationLevel: ValidationLevel.Off },
      // A field both define is the gateway's: its resolver, type and directives.
      fieldConfigMerger: (candidates) =>
        (candidates.find((c) => c.subschema === local) ?? candidates[candidates.length - 1]!)
          .fieldConfig,
    },
  });
  // Entry points are the gateway's to call, not the client's (unless the variant has one too).
  const hidden = new Set(points.values());
  const own = variant.getQueryType()?.getFields() ?? {};
  return filterSchema({
    schema: stitched,
    rootFieldFilter: (operation, name) =>
      !(operation === 'Query' && hidden.has(name) && !own[name]),
  });
}

export function createTenantRealms(options: TenantRealmsOptions): TenantRealms {
  const retryAfterMs = options.retryAfterMs ?? DEFAULT_REALM_RETRY_MS;
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  let closed = false;
  // One policy per realm deployment (origin; and timeout, which the policy holds): tenants
  // sharing a deployment share its breaker, and each call counts against its tenant's first.
  const policies = new LRUCache<string, ResiliencePolicy>({
    max: options.maxOrigins ?? DEFAULT_MAX_REALM_ORIGINS,
  });

  function policyFor(realm: TenantRealmConfig): ResiliencePolicy {
    const origin = new URL(realm.url).origin;
    const key = `${origin} ${realm.timeoutMs}`;
    let policy = policies.get(key);
    if (!policy) {
      policy = createResiliencePolicy({
        label: LABEL,
        timeoutMs: realm.timeoutMs,
        retry: { maxAttempts: REALM_MAX_ATTEMPTS },
        breaker: {
          onStateChange: (from, to) =>
            options.log[to === 'open' ? 'warn' : 'info'](
              { realm: origin, from, to },
              'realm circuit breaker state changed',
            ),
        },
      });
      policies.set(key, policy);
    }
    return policy;
  }

  function entryFor(tenant: Tenant, realm: TenantRealmConfig, variant: GraphQLSchema): Entry {
    const key = realmKey(realm);
    let entry = entries.get(tenant.id);
    // A changed realm or variant (tenant config) starts over; a load still running for the old
    // one writes to its own entry, which nobody reads any more.
    if (!entry || entry.key !== key || entry.variant !== variant) {
      if (entry) clearTimeout(entry.timer);
      entry = {
        key,
        variant,
        schema: undefined,
        loading: undefined,
        retryAt: 0,
        failures: 0,
        timer: undefined,
      };
      entries.set(tenant.id, entry);
    }
    return entry;
  }

  function load(tenant: Tenant, realm: TenantRealmConfig, entry: Entry): Promise<void> {
    entry.loading ??= (async () => {
      const log = options.log.child({ tenant: tenant.id, realm: realm.url });
      try {
        if (realm.identity === 'signed' && !options.signer) {
          throw new RealmSchemaError('identity: signed, but the gateway has no signing key');
        }
        const executor = createRealmExecutor({
          tenantId: tenant.id,
          realm,
          signer: options.signer,
          policy: policyFor(realm),
          fetch: options.fetch,
        });
        const remote = await schemaFromExecutor(executor);
        entry.schema = stitchRealm(entry.variant, remote, executor);
        log.info('tenant realm stitched into the tenant schema');
      } catch (error) {
        const wait = Math.min(retryAfterMs, FIRST_RETRY_MS * 2 ** entry.failures);
        entry.failures += 1;
        entry.retryAt = now() + wait;
        // Retried in the background too, so the realm's fields appear without waiting for a
        // request to notice; only while this entry is still the tenant's.
        if (!closed) {
          entry.timer = setTimeout(() => {
            if (entries.get(tenant.id) === entry && !entry.schema) void load(tenant, realm, entry);
          }, wait);
          entry.timer.unref();
        }
        log.warn(
          { err: (error as Error).message, retryInMs: wait },
          'tenant realm unavailable: serving the tenant its variant without it',
        );
      } finally {
        entry.loading = undefined;
      }
    })();
    return entry.loading;
  }

  function schemaFor(tenant: Tenant): GraphQLSchema {
    const variant = options.variantFor(tenant);
    const { realm } = tenant;
    if (!realm) {
      clearTimeout(entries.get(tenant.id)?.timer);
      entries.delete(tenant.id);
      return variant;
    }
    const entry = entryFor(tenant, realm, variant);
    if (entry.schema) return entry.schema;
    if (!entry.loading && now() >= entry.retryAt) void load(tenant, realm, entry);
    return variant;
  }

  return {
    schemaFor,
    async warm(tenants) {
      await Promise.all(
        tenants.flatMap((tenant) => {
          if (!tenant.realm) return [];
          const entry = entryFor(tenant, tenant.realm, options.variantFor(tenant));
          return entry.schema ? [] : [load(tenant, tenant.realm, entry)];
        }),
      );
    },
    size: () => [...entries.values()].filter((e) => e.schema).length,
    async probe(tenant) {
      const realm = tenant?.realm;
      if (!tenant || !realm) return;
      const headers = await realmHeaders(tenant.id, realm, options.signer, undefined);
      const fetchFn = options.fetch ?? globalThis.fetch;
      await policyFor(realm).once(async ({ signal }) => {
        const init = {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json', accept: ACCEPT },
          body: JSON.stringify({ query: '{ __typename }' }),
        };
        const answer = (await (await attemptRealm(fetchFn, realm.url, init, signal)).json()) as {
          data?: { __typename?: unknown } | null;
        };
        if (typeof answer.data?.__typename !== 'string') {
          throw new AttemptFailure(
            'malformed',
            unavailable('invalid answer', `${realm.url}: no data.__typename`),
          );
        }
      });
    },
    close() {
      closed = true;
      for (const entry of entries.values()) clearTimeout(entry.timer);
    },
  };
}
