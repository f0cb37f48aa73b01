import { randomUUID } from 'node:crypto';
import type { Principal } from '../auth/principal.js';
import { GatewayError } from '../errors.js';
import { concurrencyKey, rateLimitKey } from '../store/keys.js';
import type { Store } from '../store/types.js';
import type { Tenant } from '../tenancy/tenant.js';
import type { ConcurrencyLimiter } from './concurrency.js';
import type { RateLimiter, StoreFailed } from './rate-limit.js';

/** What a request holds while it runs: headers to send back and a lease to give back. */
export interface Admission {
  /** e.g. RateLimit-* headers, sent with the response. */
  readonly headers: Readonly<Record<string, string>>;
  /** Gives back whatever the admission holds (a concurrency lease). Idempotent. */
  release(): void;
}

/**
 * Decides whether a request of a tenant may run now. Throws a `RATE_LIMITED` GatewayError
 * (with Retry-After) when it may not.
 */
export interface AdmissionControl {
  admit(tenant: Tenant, principal: Principal): Promise<Admission>;
}

/** Admits everything: for tools and tests that exercise other stages. */
export const admitAll: AdmissionControl = {
  admit: () => Promise.resolve({ headers: {}, release: () => undefined }),
};

export interface AdmissionControlOptions {
  rateLimiter: RateLimiter;
  concurrency: ConcurrencyLimiter;
}

/**
 * Rate first (a refused request must not hold a slot), then the in-flight slot. Both count
 * across replicas through the store and follow its fallback when it is down. When both
 * limiters count in the same store, the two decisions are one store call (one Redis round
 * trip, one script); the release, at the end of the request, is the only other one.
 */
export function createAdmissionControl({
  rateLimiter,
  concurrency,
}: AdmissionControlOptions): AdmissionControl {
  const shared = rateLimiter.store === concurrency.store ? rateLimiter.store : undefined;

  /** The store's two answers in one call, or why it could not give them. */
  async function decide(tenant: Tenant, leaseId: string) {
    const store = shared as Store;
    const lease = {
      key: concurrencyKey(tenant.id),
      leaseId,
      limit: tenant.limits.maxConcurrent,
      ttlMs: concurrency.leaseTtlMs,
    };
    try {
      const { rate, lease: held } = await store.admit({
        rate: { key: rateLimitKey(tenant.id), policy: tenant.limits.rateLimit },
        lease,
      });
      return { rate, lease: held };
    } catch (error) {
      if (error instanceof TypeError) throw error;
      // A timed-out script may still run once the store answers again, and nobody would
      // release its lease: take it back (a no-op if it never ran; lease ids are unique).
      store.releaseLease(lease.key, leaseId).catch(() => undefined);
      const failed: StoreFailed = { storeError: error };
      return { rate: failed, lease: failed };
    }
  }

  return {
    async admit(tenant) {
      const leaseId = randomUUID();
      const decided = shared?.isAvailable() ? await decide(tenant, leaseId) : undefined;
      const rate = await rateLimiter.check(tenant.id, tenant.limits.rateLimit, {
        decided: decided?.rate,
      });
      if (!rate.allowed)
        throw rate.error ?? new GatewayError('RATE_LIMITED', 'Rate limit exceeded.');
      const slot = await concurrency.acquire(tenant.id, tenant.limits.maxConcurrent, {
        leaseId,
        decided: decided?.lease,
      });
      if (!slot.acquired) throw slot.error;
      let released = false;
      return {
        headers: rate.headers,
        release() {
          if (released) return;
          released = true;
          void concurrency.release(slot.lease);
        },
      };
    },
  };
}
