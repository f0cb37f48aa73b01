import { setTimeout as sleep } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { GatewayError, isGatewayError, unreachable } from '../../errors.js';
import {
  createCircuitBreaker,
  DEFAULT_BREAKER_WINDOW_MS,
  type CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitPermit,
  type CircuitState,
} from './breaker.js';
import { MONOTONIC_CLOCK, type Clock } from './clock.js';
import { createRetryBudget, type RetryBudget, type RetryBudgetOptions } from './retry-budget.js';

export const DEFAULT_RETRY_MAX_ATTEMPTS = 3;
export const DEFAULT_RETRY_BASE_DELAY_MS = 20;
export const DEFAULT_RETRY_MAX_DELAY_MS = 200;
/** Distinct tenants whose calls must fail before a backend's shared breaker counts failures. */
export const DEFAULT_SHARED_FAILURE_TENANTS = 2;
/** Tenant breakers kept per backend (least recently used are dropped, closed). */
export const DEFAULT_MAX_TENANT_BREAKERS = 10_000;
/** A tenant breaker unused this long is dropped; it would be closed again by then anyway. */
export const DEFAULT_TENANT_BREAKER_IDLE_MS = 10 * 60_000;

/**
 * The one classification of a failed attempt, for every upstream (model backends, tenant
 * HTTP/JSON and GraphQL services). The attempt function decides the kind; the policy decides
 * what the kind means for retries and breakers (see {@link createResiliencePolicy}).
 */
export type FailureKind =
  /**
   * Connection refused/reset/closed: retryable, a health failure — the backend's own, whoever
   * called: no request's content gets a connection refused.
   */
  | 'connection'
  /** The attempt ran out of time: a health failure; retryable only if a whole attempt fits. */
  | 'timeout'
  /** 5xx, 408, 429: retryable, a health failure. */
  | 'server'
  /** A success status with a body that is not the answer asked for: a health failure, not retried. */
  | 'malformed'
  /**
   * A well-formed answer made unusable by the request's own input (e.g. non-finite scores for
   * extreme features): the caller's failure, counted against its tenant only; not retried.
   */
  | 'input'
  /** Other 4xx: the request is wrong (unknown model, bad shape); not retried, neutral. */
  | 'rejected'
  /** The caller's signal fired: neutral. */
  | 'cancelled'
  /** Our own client is closed: neutral. */
  | 'closed';

/** A classified failure of one attempt; `error` is what the caller gets if it is the last. */
export class AttemptFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    readonly error: GatewayError,
  ) {
    super(error.message);
    this.name = 'AttemptFailure';
  }
}

/**
 * What a failure says about health, and about whose: `backend` is the backend's whoever called;
 * `call` may be the request's doing (a slow or crashing input), so it is the calling tenant's
 * until several tenants see it; `caller` is the calling tenant's only.
 */
type Health = 'backend' | 'call' | 'caller' | 'neutral';

const HEALTH: Readonly<Record<FailureKind, Health>> = {
  connection: 'backend',
  timeout: 'call',
  server: 'call',
  malformed: 'call',
  input: 'caller',
  rejected: 'neutral',
  cancelled: 'neutral',
  closed: 'neutral',
};

export interface RetryOptions {
  /** Attempts per call, the first included. 1 disables retries. Default 3. */
  maxAttempts?: number;
  /** Backoff before retry k is uniform in [0, min(maxDelayMs, baseDelayMs × 2^(k-1))]. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** The shared retry budget, or options to build this policy's own. */
  budget?: RetryBudget | RetryBudgetOptions;
}

export interface TenantBreakerOptions extends Omit<CircuitBreakerOptions, 'onStateChange'> {
  /** Told every transition of a tenant's breaker (metrics, logs); exceptions are swallowed. */
  onStateChange?: (tenant: string, from: CircuitState, to: CircuitState) => void;
  /** Tenant breakers kept at once. Default 10 000. */
  maxTenants?: number;
  /** A tenant breaker unused this long is dropped. Default 10 min. */
  idleMs?: number;
}

export interface ResiliencePolicyOptions {
  /** Names the upstream in client-safe messages, e.g. `Inference backend`. Default `Backend`. */
  label?: string;
  /** Deadline of one call, all attempts and backoff included; the caller's signal may end it sooner. */
  timeoutMs: number;
  /**
   * Limit of one attempt; default `timeoutMs`. Set it lower to leave room for a retry after a
   * timed-out attempt: a timeout is retried only if a whole attempt still fits the deadline.
   */
  attemptTimeoutMs?: number;
  retry?: RetryOptions;
  /** The backend's shared breaker, or options to build it. */
  breaker?: CircuitBreaker | CircuitBreakerOptions;
  /** Options of each (tenant, backend) breaker; default the shared breaker's options. */
  tenantBreaker?: TenantBreakerOptions;
  /**
   * Distinct tenants that must have failed within `attributionWindowMs` before a tenant's
   * failure also counts against the shared breaker. Default 2.
   */
  sharedFailureTenants?: number;
  /** Default the shared breaker's window (10 s). */
  attributionWindowMs?: number;
  /** Time source of breakers, budget and attribution. Deadlines use real time. */
  clock?: Clock;
  /** Uniform [0, 1) source for backoff jitter. Default `Math.random`. */
  random?: () => number;
}

/** What an attempt function is given. */
export interface AttemptContext {
  /** Aborts when the attempt's time is up or the caller gives up: hand it to the I/O. */
  readonly signal: AbortSignal;
  /** 1 for the first attempt. */
  readonly attempt: number;
}

/** One attempt: resolves the answer, or throws an {@link AttemptFailure} saying what failed. */
export type Attempt<T> = (context: AttemptContext) => Promise<T>;

export interface CallOptions {
  /** The caller's cancellation. */
  signal?: AbortSignal | undefined;
  /**
   * The tenant the call is for. Its failures count against its own breaker, which contains it;
   * they reach the backend's shared breaker only when several tenants fail. Omitted → every
   * health failure counts against the shared breaker.
   */
  tenant?: string | undefined;
}

export interface ResiliencePolicy {
  /** The backend's shared breaker. */
  readonly breaker: CircuitBreaker;
  readonly retryBudget: RetryBudget;
  /** A tenant's own breaker on this backend, once it has made a call (for metrics and tests). */
  tenantBreaker(tenant: string): CircuitBreaker | undefined;
  /** Runs `attempt` under the whole policy: breakers, deadline, retries, budget. */
  call<T>(attempt: Attempt<T>, options?: CallOptions): Promise<T>;
  /**
   * Runs `attempt` once under the attempt timeout, outside breakers and budget (health and
   * metadata probes must see the backend even while a circuit is open). Failures reject with
   * their `GatewayError`.
   */
  once<T>(attempt: Attempt<T>): Promise<T>;
}

function positive(name: string, value: number | undefined, integer = false): void {
  if (
    value !== undefined &&
    (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value)))
  ) {
    throw new TypeError(
      `createResiliencePolicy: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`,
    );
  }
}

/** A permit of the tenant's breaker and one of the shared breaker, settled together. */
interface CallPermit {
  settle(outcome: FailureKind | 'success'): void;
}

/**
 * The failure policy of every upstream call, written once.
 *
 * Per attempt:
 * - `connection`, `server` → retried with full-jitter exponential backoff while attempts, the
 *   retry budget and the deadline allow; health failures.
 * - `timeout` → `BACKEND_TIMEOUT`; a health failure; retried only when a whole attempt still
 *   fits before the deadline (so never with the default `attemptTimeoutMs = timeoutMs`).
 * - `malformed` → not retried (it would answer the same); a health failure.
 * - `input` → not retried; the caller's failure (its tenant's breaker only).
 * - `rejected`, `cancelled`, `closed` → not retried; neutral for every breaker: a 4xx proves
 *   nothing about health, and one tenant's misconfiguration must not open any circuit.
 * - circuit open (the tenant's or the backend's) → `BACKEND_UNAVAILABLE` "circuit open" at
 *   once, without an attempt.
 *
 * Breakers: a call for a tenant passes the tenant's own breaker on this backend, then the
 * backend's shared breaker. Every health failure counts against the tenant's breaker, so a
 * tenant whose requests fail is contained (its calls fail fast) while others go on. The shared
 * breaker judges the backend: a `connection` failure counts against it at once (no request
 * makes a backend refuse connections); a `timeout`, `server` or `malformed` failure may be the
 * request's doing (a slow or crashing input), so it counts only once such failures within
 * `attributionWindowMs` come from at least `sharedFailureTenants` distinct tenants; `input`
 * failures never count against it. Successes count for both. A call without a tenant counts
 * its health failures against the shared breaker directly.
 */
export function createResiliencePolicy(options: ResiliencePolicyOptions): ResiliencePolicy {
  positive('timeoutMs', options.timeoutMs);
  positive('attemptTimeoutMs', options.attemptTimeoutMs);
  positive('retry.maxAttempts', options.retry?.maxAttempts, true);
  positive('sharedFailureTenants', options.sharedFailureTenants, true);
  positive('attributionWindowMs', options.attributionWindowMs);
  positive('tenantBreaker.maxTenants', options.tenantBreaker?.maxTenants, true);
  positive('tenantBreaker.idleMs', options.tenantBreaker?.idleMs);

  const label = options.label ?? 'Backend';
  const timeoutMs = options.timeoutMs;
  const attemptTimeoutMs = Math.min(options.attemptTimeoutMs ?? timeoutMs, timeoutMs);
  const maxAttempts = options.retry?.maxAttempts ?? DEFAULT_RETRY_MAX_ATTEMPTS;
  const baseDelayMs = options.retry?.baseDelayMs ?? DEFAULT_RETRY_BASE_DELAY_MS;
  const maxDelayMs = options.retry?.maxDelayMs ?? DEFAULT_RETRY_MAX_DELAY_MS;
  const random = options.random ?? Math.random;
  const clock = options.clock ?? MONOTONIC_CLOCK;
  const sharedFailureTenants = options.sharedFailureTenants ?? DEFAULT_SHARED_FAILURE_TENANTS;

  const budgetOption = options.retry?.budget;
  const retryBudget: RetryBudget =
    budgetOption !== undefined && 'tryWithdraw' in budgetOption
      ? budgetOption
      : createRetryBudget({ ...budgetOption, clock });
  const breakerOption = options.breaker;
  const sharedOptions: CircuitBreakerOptions =
    breakerOption !== undefined && 'acquire' in breakerOption ? {} : (breakerOption ?? {});
  const breaker: CircuitBreaker =
    breakerOption !== undefined && 'acquire' in breakerOption
      ? breakerOption
      : createCircuitBreaker({
          openMessage: `${label} unavailable (circuit open)`,
          ...sharedOptions,
          clock,
        });
  const attributionWindowMs =
    options.attributionWindowMs ?? sharedOptions.windowMs ?? DEFAULT_BREAKER_WINDOW_MS;

  const {
    onStateChange: onTenantStateChange,
    maxTenants,
    idleMs,
    ...tenantBreakerOptions
  } = options.tenantBreaker ?? {};
  const tenantBreakers = new LRUCache<string, CircuitBreaker>({
    max: maxTenants ?? DEFAULT_MAX_TENANT_BREAKERS,
    ttl: idleMs ?? DEFAULT_TENANT_BREAKER_IDLE_MS,
    updateAgeOnGet: true,
  });
  // Tenants whose calls had a health failure recently, by the time of their last one; Map order
  // is that time's order (re-inserted on each failure), so pruning reads from the front.
  const failingTenants = new Map<string, number>();
  const maxFailingTenants = maxTenants ?? DEFAULT_MAX_TENANT_BREAKERS;

  function tenantBreakerFor(tenant: string): CircuitBreaker {
    let own = tenantBreakers.get(tenant);
    if (own === undefined) {
      const { onStateChange: _shared, ...shape } = sharedOptions;
      own = createCircuitBreaker({
        ...shape,
        openMessage: `${label} unavailable for this tenant (circuit open)`,
        ...tenantBreakerOptions,
        clock,
        ...(onTenantStateChange
          ? { onStateChange: (from, to) => onTenantStateChange(tenant, from, to) }
          : {}),
      });
      tenantBreakers.set(tenant, own);
    }
    return own;
  }

  /** Records a tenant's `call` failure; true when several tenants have them now. */
  function failingWidely(tenant: string): boolean {
    const now = clock.now();
    failingTenants.delete(tenant);
    failingTenants.set(tenant, now);
    for (const [id, at] of failingTenants) {
      if (now - at < attributionWindowMs && failingTenants.size <= maxFailingTenants) break;
      failingTenants.delete(id);
    }
    return failingTenants.size >= sharedFailureTenants;
  }

  function acquire(tenant: string | undefined): CallPermit {
    const own: CircuitPermit | undefined =
      tenant === undefined ? undefined : tenantBreakerFor(tenant).acquire();
    let shared: CircuitPermit;
    try {
      shared = breaker.acquire();
    } catch (error) {
      own?.release();
      throw error;
    }
    return {
      settle(outcome) {
        if (outcome === 'success') {
          own?.success();
          shared.success();
          return;
        }
        switch (HEALTH[outcome]) {
          case 'neutral':
            own?.release();
            shared.release();
            return;
          case 'caller':
            own?.failure();
            shared.release();
            return;
          case 'backend':
            own?.failure();
            shared.failure();
            return;
          case 'call':
            own?.failure();
            if (tenant === undefined || failingWidely(tenant)) shared.failure();
            else shared.release();
            return;
          default:
            unreachable(HEALTH[outcome]);
        }
      },
    };
  }

  function cancellation(signal: AbortSignal): GatewayError {
    const reason: unknown = signal.reason;
    if (isGatewayError(reason)) return reason;
    if (reason instanceof Error && reason.name === 'TimeoutError') {
      return new GatewayError('BACKEND_TIMEOUT', `${label} timed out`, { cause: reason });
    }
    return new GatewayError('BACKEND_UNAVAILABLE', `${label} request cancelled`, {
      cause: reason,
    });
  }

  /** One attempt under its own timer, every outcome classified. */
  async function runAttempt<T>(
    attempt: Attempt<T>,
    n: number,
    limitMs: number,
    callerSignal: AbortSignal | undefined,
  ): Promise<T> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, limitMs);
    const onCallerAbort = () => controller.abort();
    callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      return await attempt({ signal: controller.signal, attempt: n });
    } catch (error) {
      if (callerSignal?.aborted) throw new AttemptFailure('cancelled', cancellation(callerSignal));
      if (timedOut) {
        throw new AttemptFailure(
          'timeout',
          new GatewayError('BACKEND_TIMEOUT', `${label} timed out`, {
            cause: new Error(`attempt ${n}: no complete answer within ${Math.round(limitMs)} ms`),
          }),
        );
      }
      if (error instanceof AttemptFailure) throw error;
      // An unclassified error is treated like a connection error: retryable, a health failure.
      throw new AttemptFailure(
        'connection',
        new GatewayError('BACKEND_UNAVAILABLE', `${label} unavailable (connection failed)`, {
          cause: error,
        }),
      );
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onCallerAbort);
    }
  }

  return {
    breaker,
    retryBudget,
    tenantBreaker: (tenant) => tenantBreakers.get(tenant),

    async call(attempt, { signal, tenant } = {}) {
      if (signal?.aborted) throw cancellation(signal);
      const deadline = performance.now() + timeoutMs;
      let lastError: GatewayError | undefined;

      for (let n = 1; ; n++) {
        let permit: CallPermit;
        try {
          permit = acquire(tenant);
        } catch (error) {
          // Circuit opened mid-retry: report what actually went wrong, not the breaker.
          throw lastError ?? error;
        }
        // Only calls that reach the backend earn retries; fast-failed ones would inflate the budget.
        if (n === 1) retryBudget.deposit();
        const limit = Math.max(1, Math.min(attemptTimeoutMs, deadline - performance.now()));
        let failure: AttemptFailure;
        try {
          const value = await runAttempt(attempt, n, limit, signal);
          permit.settle('success');
          return value;
        } catch (error) {
          failure = error as AttemptFailure;
        }
        permit.settle(failure.kind);
        switch (failure.kind) {
          case 'cancelled':
          case 'rejected':
          case 'closed':
          case 'malformed':
          case 'input':
            throw failure.error;
          case 'connection':
          case 'server':
          case 'timeout':
            break;
          default:
            unreachable(failure.kind);
        }
        lastError = failure.error;
        if (n >= maxAttempts) throw lastError;
        const delay = random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (n - 1));
        const remainingAfterDelay = deadline - performance.now() - delay;
        const needed = failure.kind === 'timeout' ? attemptTimeoutMs : 1;
        if (remainingAfterDelay < needed) throw lastError;
        if (!retryBudget.tryWithdraw()) throw lastError;
        if (delay > 0) {
          try {
            await sleep(delay, undefined, signal ? { signal } : undefined);
          } catch {
            throw signal?.aborted ? cancellation(signal) : lastError;
          }
        }
      }
    },

    async once(attempt) {
      try {
        return await runAttempt(attempt, 1, attemptTimeoutMs, undefined);
      } catch (error) {
        throw (error as AttemptFailure).error;
      }
    },
  };
}
