import { type Principal } from '../auth/principal.js';
import { type Tenant } from '../tenancy/tenant.js';

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
