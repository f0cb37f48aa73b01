import type { PlanLimits } from '../config/schema.js';
import { GatewayError, unreachable } from '../errors.js';
import { rateLimitKey } from '../store/keys.js';
import { createMemoryStore } from '../store/memory-store.js';
import type { Clock, GcraDecision, Store } from '../store/types.js';

/**
 * What to do when the shared store cannot answer:
 * - `local`: limit per process with the same GCRA in memory (each replica then admits up to
 *   the full rate, so the fleet admits up to N×; availability over precision);
 * - `refuse`: reject with a retryable 503 (`RATE_LIMITED`, `Retry-After: 1`);
 * - `allow`: admit without limiting.
 */
export type LimiterFallback = 'local' | 'refuse' | 'allow';

/** Which limiter decided: the shared store, the per-process fallback, or nobody. */
export type LimiterSource = 'store' | 'local' | 'none';

/** A tenant's (or subject's) rate: `PlanLimits['rateLimit']`. */
export type RateLimitPolicy = PlanLimits['rateLimit'];

export interface RateLimitResult extends GcraDecision {
  readonly source: LimiterSource;
  /**
   * Response headers for this decision, always safe to send: `RateLimit` and
   * `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10 syntax), plus `Retry-After`
   * when refused. Empty when nobody limited (`source: 'none'` and allowed).
   */
  readonly headers: Readonly<Record<string, string>>;
  /** Set exactly when `allowed` is false: the error that ends the request. */
  readonly error?: GatewayError | undefined;
}

/** The store was asked already and could not answer (the fallback decides). */
export interface StoreFailed {
  readonly storeError: unknown;
}

export interface RateLimitCheckOptions {
  /** Limit one subject (user, client id) within the tenant, in its own bucket. */
  subject?: string | undefined;
  /**
   * The store's answer when the caller asked it already, in one round trip with other work
   * (admission's rate + lease script): read it instead of asking again.
   */
  decided?: GcraDecision | StoreFailed | undefined;
}

export interface RateLimiter {
  /** The shared store this limiter counts in. */
  readonly store: Store;
  /**
   * Charges one request to the tenant (or tenant + subject) and says whether it may run.
   * Never rejects because of the store: store failures follow the configured fallback.
   */
  check(
    tenantId: string,
    policy: RateLimitPolicy,
    options?: RateLimitCheckOptions,
  ): Promise<RateLimitResult>;
}

export interface RateLimiterOptions {
  /** The shared store (Redis in production, memory in demo mode). */
  store: Store;
  /** Behaviour while the store cannot answer. */
  fallback: LimiterFallback;
  /** Time source of the local fallback. Default `Date.now`. */
  clock?: Clock | undefined;
  /** Keys the local fallback keeps (LRU). Default 10 000. */
  localMaxKeys?: number | undefined;
  /** Told each time the store failed and the fallback decided instead; for logs and metrics. */
  onStoreError?: ((error: unknown, operation: string) => void) | undefined;
}

export const DEFAULT_LOCAL_LIMITER_MAX_KEYS = 10_000;

/** Seconds a client is told to wait when the limiter itself is unavailable (`refuse`). */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 1;

/** Whole seconds for headers: rounded up so a client that obeys is never early. */
function ceilSeconds(seconds: number): number {
  return Math.max(0, Math.ceil(seconds - 1e-9));
}

/**
 * The IETF draft's two fields for one GCRA policy (token identifiers, valid in every revision
 * since -07). The policy advertises `q = burst + 1` requests per `w` = the seconds a full
 * bucket takes to refill; `r`/`t` are what is left now and when the bucket is full again,
 * or, when refused, when the next request will be admitted (matching `Retry-After`).
 */
export function rateLimitHeaders(
  decision: GcraDecision,
  policy: RateLimitPolicy,
  name = 'tenant',
): Record<string, string> {
  const window = Math.max(1, Math.ceil(decision.limit / policy.perSecond));
  const t = decision.allowed
    ? ceilSeconds(decision.resetSeconds)
    : Math.max(1, ceilSeconds(decision.retryAfterSeconds));
  const headers: Record<string, string> = {
    'RateLimit-Policy': `${name};q=${decision.limit};w=${window}`,
    RateLimit: `${name};r=${decision.remaining};t=${t}`,
  };
  if (!decision.allowed) headers['Retry-After'] = String(t);
  return headers;
}

/** The refusal for an exhausted rate limit: 429 with Retry-After and the RateLimit fields. */
export function rateLimitedError(headers: Readonly<Record<string, string>>): GatewayError {
  const retryAfter = Number(headers['Retry-After'] ?? UNAVAILABLE_RETRY_AFTER_SECONDS);
  return new GatewayError(
    'RATE_LIMITED',
    `Rate limit exceeded; retry after ${retryAfter} second${retryAfter === 1 ? '' : 's'}.`,
    { headers, extensions: { reason: 'RATE', retryAfterSeconds: retryAfter } },
  );
}

/**
 * The refusal when the limiter cannot decide (store down, fallback `refuse`). Same code, so
 * clients back off the same way, but status 503: the client did nothing wrong, and a 429
 * would blame its quota.
 */
export function limiterUnavailableError(): GatewayError {
  return new GatewayError(
    'RATE_LIMITED',
    'Rate limiting is temporarily unavailable; retry shortly.',
    {
      status: 503,
      headers: { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) },
      extensions: {
        reason: 'LIMITER_UNAVAILABLE',
        retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS,
      },
    },
  );
}

/**
 * GCRA rate limiting per tenant (and optionally per tenant + subject) on the shared store,
 * so N replicas enforce one limit; with the store down, the configured fallback decides.
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { store, fallback } = options;
  if (fallback !== 'local' && fallback !== 'refuse' && fallback !== 'allow') {
    throw new TypeError(
      `createRateLimiter: fallback must be local, refuse or allow; received ${String(fallback)}`,
    );
  }
  // The local fallback is the memory store's GCRA: same arithmetic, this process only.
  const local =
    fallback === 'local'
      ? createMemoryStore({
          clock: options.clock,
          maxEntries: options.localMaxKeys ?? DEFAULT_LOCAL_LIMITER_MAX_KEYS,
        })
      : undefined;

  function result(
    decision: GcraDecision,
    policy: RateLimitPolicy,
    name: string,
    source: LimiterSource,
  ): RateLimitResult {
    const headers = rateLimitHeaders(decision, policy, name);
    return decision.allowed
      ? { ...decision, source, headers }
      : { ...decision, source, headers, error: rateLimitedError(headers) };
  }

  return {
    store,
    async check(tenantId, policy, checkOptions = {}) {
      // Builds (and so validates) the key before any I/O: a bad tenant id is a TypeError.
      const key = rateLimitKey(tenantId, checkOptions.subject);
      const name = checkOptions.subject === undefined ? 'tenant' : 'subject';
      const { decided } = checkOptions;
      if (decided !== undefined && !('storeError' in decided)) {
        return result(decided, policy, name, 'store');
      }
      if (decided !== undefined) {
        options.onStoreError?.(decided.storeError, 'rateLimit');
      } else if (store.isAvailable()) {
        try {
          return result(await store.rateLimit(key, policy), policy, name, 'store');
        } catch (error) {
          if (error instanceof TypeError) throw error;
          options.onStoreError?.(error, 'rateLimit');
        }
      }
      switch (fallback) {
        case 'local':
          return result(
            await (local as ReturnType<typeof createMemoryStore>).rateLimit(key, policy),
            policy,
            name,
            'local',
          );
        case 'allow':
          return {
            allowed: true,
            limit: policy.burst + 1,
            remaining: policy.burst,
            resetSeconds: 0,
            retryAfterSeconds: 0,
            source: 'none',
            headers: {},
          };
        case 'refuse': {
          const error = limiterUnavailableError();
          return {
            allowed: false,
            limit: policy.burst + 1,
            remaining: 0,
            resetSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS,
            retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS,
            source: 'none',
            headers: error.headers,
            error,
          };
        }
        default:
          return unreachable(fallback);
      }
    },
  };
}
