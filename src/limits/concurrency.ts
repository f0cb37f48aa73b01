import { randomUUID } from 'node:crypto';
import { GatewayError, unreachable } from '../errors.js';
import { concurrencyKey } from '../store/keys.js';
import { createMemoryStore } from '../store/memory-store.js';
import type { Clock, LeaseDecision, Store } from '../store/types.js';
import {
  type LimiterFallback,
  type LimiterSource,
  limiterUnavailableError,
  type StoreFailed,
} from './rate-limit.js';

/**
 * How long a lease lives unless released. A replica that crashes mid-request holds its
 * tenant's slot at most this long. Requests are bounded well below it (backend timeouts,
 * drain timeout); one that outlives it only lets the tenant run one more request than its
 * limit for a moment.
 */
export const DEFAULT_LEASE_TTL_MS = 30_000;

/** Seconds a refused client is told to wait: a slot frees when any in-flight request ends. */
export const CONCURRENCY_RETRY_AFTER_SECONDS = 1;

/** A held slot. Give it back with `release` (idempotent) when the request ends. */
export interface ConcurrencyLease {
  readonly tenantId: string;
  readonly id: string;
  readonly source: LimiterSource;
}

export type ConcurrencyResult =
  | { readonly acquired: true; readonly lease: ConcurrencyLease; readonly inFlight: number }
  | {
      readonly acquired: false;
      /** The error that ends the request (429, or 503 when the limiter itself is unavailable). */
      readonly error: GatewayError;
      readonly inFlight: number;
      readonly source: LimiterSource;
    };

export interface AcquireOptions {
  /** The lease's id (unique); default a new UUID. */
  leaseId?: string | undefined;
  /**
   * The store's answer for `leaseId` when the caller asked it already (admission's rate +
   * lease script): read it instead of asking again.
   */
  decided?: LeaseDecision | StoreFailed | undefined;
}

export interface ConcurrencyLimiter {
  /** The shared store this limiter counts in, and how long its leases live there. */
  readonly store: Store;
  readonly leaseTtlMs: number;
  /**
   * Takes one of the tenant's `limit` in-flight slots, counted across all replicas. Never
   * rejects because of the store: store failures follow the configured fallback.
   */
  acquire(tenantId: string, limit: number, options?: AcquireOptions): Promise<ConcurrencyResult>;
  /** Gives the slot back. Idempotent; never rejects (a lost release expires with the lease). */
  release(lease: ConcurrencyLease): Promise<void>;
}

export interface ConcurrencyLimiterOptions {
  store: Store;
  /** Behaviour while the store cannot answer (see `LimiterFallback`). */
  fallback: LimiterFallback;
  /** Lease lifetime. Default `DEFAULT_LEASE_TTL_MS`. */
  leaseTtlMs?: number | undefined;
  /** Time source of the local fallback. Default `Date.now`. */
  clock?: Clock | undefined;
  /** Told each time the store failed and the fallback decided instead. */
  onStoreError?: ((error: unknown, operation: string) => void) | undefined;
}

/** The refusal for a tenant at its in-flight limit. */
export function concurrencyLimitedError(limit: number): GatewayError {
  return new GatewayError(
    'RATE_LIMITED',
    `Too many concurrent requests for this tenant (limit ${limit}); retry when one completes.`,
    {
      headers: { 'Retry-After': String(CONCURRENCY_RETRY_AFTER_SECONDS) },
      extensions: { reason: 'CONCURRENCY', retryAfterSeconds: CONCURRENCY_RETRY_AFTER_SECONDS },
    },
  );
}

/**
 * Per-tenant in-flight limit with expiring leases in the shared store (a sorted set of lease
 * ids scored by expiry, checked and added in one script), so replicas share one count and a
 * crashed replica's leases expire instead of leaking.
 */
export function createConcurrencyLimiter(options: ConcurrencyLimiterOptions): ConcurrencyLimiter {
  const { store, fallback } = options;
  const ttlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  if (!(Number.isInteger(ttlMs) && ttlMs >= 1)) {
    throw new TypeError(
      `createConcurrencyLimiter: leaseTtlMs must be an integer ≥ 1; received ${ttlMs}`,
    );
  }
  if (fallback !== 'local' && fallback !== 'refuse' && fallback !== 'allow') {
    throw new TypeError(
      `createConcurrencyLimiter: fallback must be local, refuse or allow; received ${String(fallback)}`,
    );
  }
  const local = fallback === 'local' ? createMemoryStore({ clock: options.clock }) : undefined;
  const released = new WeakSet<ConcurrencyLease>();

  function outcome(
    tenantId: string,
    leaseId: string,
    limit: number,
    decision: LeaseDecision,
    source: LimiterSource,
  ): ConcurrencyResult {
    if (decision.acquired) {
      return {
        acquired: true,
        lease: { tenantId, id: leaseId, source },
        inFlight: decision.inFlight,
      };
    }
    return {
      acquired: false,
      error: concurrencyLimitedError(limit),
      inFlight: decision.inFlight,
      source,
    };
  }

  return {
    store,
    leaseTtlMs: ttlMs,
    async acquire(tenantId, limit, acquireOptions = {}) {
      if (!(Number.isInteger(limit) && limit >= 1)) {
        throw new TypeError(`concurrency: limit must be an integer ≥ 1; received ${limit}`);
      }
      const key = concurrencyKey(tenantId);
      const request = { leaseId: acquireOptions.leaseId ?? randomUUID(), limit, ttlMs };
      const { decided } = acquireOptions;
      if (decided !== undefined && !('storeError' in decided)) {
        return outcome(tenantId, request.leaseId, limit, decided, 'store');
      }
      if (decided !== undefined) {
        options.onStoreError?.(decided.storeError, 'acquireLease');
      } else if (store.isAvailable()) {
        try {
          return outcome(
            tenantId,
            request.leaseId,
            limit,
            await store.acquireLease(key, request),
            'store',
          );
        } catch (error) {
          if (error instanceof TypeError) throw error;
          options.onStoreError?.(error, 'acquireLease');
          // A timed-out script may still run once the store answers again, and nobody would
          // release its lease: take it back (a no-op if it never ran; lease ids are unique).
          store.releaseLease(key, request.leaseId).catch(() => undefined);
        }
      }
      switch (fallback) {
        case 'local': {
          const decision = await (local as ReturnType<typeof createMemoryStore>).acquireLease(
            key,
            request,
          );
          return outcome(tenantId, request.leaseId, limit, decision, 'local');
        }
        case 'allow':
          return {
            acquired: true,
            lease: { tenantId, id: request.leaseId, source: 'none' },
            inFlight: 0,
          };
        case 'refuse':
          return { acquired: false, error: limiterUnavailableError(), inFlight: 0, source: 'none' };
        default:
          return unreachable(fallback);
      }
    },

    async release(lease) {
      if (released.has(lease)) return;
      released.add(lease);
      const key = concurrencyKey(lease.tenantId);
      try {
        if (lease.source === 'store') await store.releaseLease(key, lease.id);
        else if (lease.source === 'local') await local?.releaseLease(key, lease.id);
      } catch (error) {
        // The lease expires by itself; until then the tenant has one slot fewer.
        options.onStoreError?.(error, 'releaseLease');
      }
    },
  };
}
