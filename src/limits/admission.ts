import type { Principal } from '../auth/principal.js';
import { GatewayError } from '../errors.js';
import type { Tenant } from '../tenancy/tenant.js';
import type { ConcurrencyLimiter } from './concurrency.js';
import type { RateLimiter } from './rate-limit.js';

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
 * Rate first (cheap, and a refused request must not hold a slot), then the in-flight slot.
 * Both count across replicas through the store and follow its fallback when it is down.
 */
export function createAdmissionControl({
  rateLimiter,
  concurrency,
}: AdmissionControlOptions): AdmissionControl {
  return {
    async admit(tenant) {
      const rate = await rateLimiter.check(tenant.id, tenant.limits.rateLimit);
      if (!rate.allowed)
        throw rate.error ?? new GatewayError('RATE_LIMITED', 'Rate limit exceeded.');
      const slot = await concurrency.acquire(tenant.id, tenant.limits.maxConcurrent);
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
