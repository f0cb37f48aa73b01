/**
 * The shared-state surface Atrium needs, and nothing more: small enough that an in-process
 * implementation (demo mode) and a Redis one (single node or Cluster) can honour the same
 * contract, which one behavioural test suite checks against both.
 *
 * Keys are opaque strings here; build them with `keys.ts` so every key carries its tenant.
 * Values are strings; callers serialise.
 *
 * Failure contract: every I/O method settles within the store's timeout. A store that cannot
 * answer (outage, timeout, closed) rejects with a `StoreError` (see `errors.ts`) so callers can
 * degrade (cache miss, local limits) instead of failing the request. Caller mistakes (a
 * negative TTL, a non-string value) reject with `TypeError` before any I/O: do not degrade
 * on those, fix the caller.
 */
export interface Store {
  /** The value under `key`, or `null` when absent or expired. */
  get(key: string): Promise<string | null>;
  /** The values under `keys`, in order, `null` for each one absent. Keys may span tenants. */
  mget(keys: readonly string[]): Promise<(string | null)[]>;
  /** Stores `value`; with `ttlSeconds` it expires after that many seconds. */
  set(key: string, value: string, options?: SetOptions): Promise<void>;
  /** Stores every entry with the same TTL in one round trip (a pipeline). */
  msetWithTtl(entries: readonly StoreEntry[], ttlSeconds: number): Promise<void>;
  /**
   * Stores `value` under `key` for `ttlSeconds` if the ledger it is counted in stays within
   * `maxEntries` and `maxBytes`, checking and writing in one atomic step (a Lua script in
   * Redis), so concurrent writers on any replica cannot overshoot. Entries leave the ledger
   * when they expire; writing a key the ledger already holds renews it. With `dryRun`, only
   * decides. For what clients may fill, per tenant: persisted queries.
   */
  putWithQuota(key: string, value: string, request: QuotaRequest): Promise<QuotaDecision>;
  /** Deletes `key`; resolves `true` when something was deleted. */
  del(key: string): Promise<boolean>;
  /**
   * Adds `members` to the set under `key` (no expiry); resolves how many were not there yet.
   * For small operator-managed sets such as the tenant index.
   */
  sadd(key: string, members: readonly string[]): Promise<number>;
  /** Removes `members` from the set under `key`; resolves how many were there. */
  srem(key: string, members: readonly string[]): Promise<number>;
  /** Every member of the set under `key`, in no particular order; `[]` when absent. */
  smembers(key: string): Promise<string[]>;
  /**
   * One GCRA rate-limit check that charges `policy.cost` (default 1) when allowed. Time comes
   * from the store (Redis `TIME`), so every replica measures against the same clock.
   */
  rateLimit(key: string, policy: GcraPolicy): Promise<GcraDecision>;
  /**
   * Takes one of `limit` slots under `key` for `ttlMs`, dropping expired leases first, so a
   * replica that dies holding leases cannot leak them for longer than `ttlMs`.
   */
  acquireLease(key: string, request: LeaseRequest): Promise<LeaseDecision>;
  /**
   * Admission in one atomic step (one round trip in Redis): `rateLimit(rate.key, rate.policy)`
   * and, only when that allows, `acquireLease(lease.key, lease)`. Both keys must carry the same
   * tenant (one hash tag); `lease` in the answer is absent when the rate refused.
   */
  admit(request: AdmitRequest): Promise<AdmitDecision>;
  /** Gives a lease back. Releasing an unknown or expired lease is a no-op. */
  releaseLease(key: string, leaseId: string): Promise<void>;
  /** Sends `message` to every current subscriber of `channel` (on every replica). */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Calls `handler` for each message on `channel` until the returned function is called.
   * Resolves once the subscription is live. Messages sent while the store is disconnected are
   * lost (Redis pub/sub is fire-and-forget): re-read state after an outage.
   */
  subscribe(channel: string, handler: MessageHandler): Promise<Unsubscribe>;
  /** Round trip to the backing store; rejects with a `StoreError` when it cannot answer. */
  ping(): Promise<void>;
  /** `true` when calls are expected to succeed now (connection ready, not closed). */
  isAvailable(): boolean;
  /** A snapshot for `/readyz` and logs. */
  status(): StoreStatus;
  /** Releases connections and timers. Further calls reject with `STORE_UNAVAILABLE`. */
  close(): Promise<void>;
}

export interface SetOptions {
  /** Positive whole seconds; omitted → no expiry. */
  ttlSeconds?: number | undefined;
}

export interface StoreEntry {
  readonly key: string;
  readonly value: string;
}

/** GCRA parameters: a sustained rate plus a burst on top of it. */
export interface GcraPolicy {
  /** Sustained requests per second (> 0). */
  readonly perSecond: number;
  /**
   * Requests allowed at once on top of the steady one: an idle key admits `burst + 1`
   * requests back to back, then one every `1 / perSecond` seconds.
   */
  readonly burst: number;
  /** Units this request costs; default 1. */
  readonly cost?: number | undefined;
}

/** The outcome of one GCRA check. Seconds are exact (fractional); round when emitting headers. */
export interface GcraDecision {
  readonly allowed: boolean;
  /** Requests an idle key admits at once (`burst + 1`). */
  readonly limit: number;
  /** Requests that would be admitted right now after this one. */
  readonly remaining: number;
  /** Seconds until the key is back to a full `limit` (nothing charged any more). */
  readonly resetSeconds: number;
  /** Seconds until this request would be admitted; 0 when allowed. */
  readonly retryAfterSeconds: number;
}

export interface LeaseRequest {
  /** Caller-made unique id (e.g. `randomUUID()`), used to release the lease. */
  readonly leaseId: string;
  /** Slots available under the key (≥ 1). */
  readonly limit: number;
  /** Lifetime of the lease; it expires by itself after this long. */
  readonly ttlMs: number;
}

export interface LeaseDecision {
  readonly acquired: boolean;
  /** Live leases under the key, counting this one when acquired. */
  readonly inFlight: number;
}

export interface AdmitRequest {
  readonly rate: { readonly key: string; readonly policy: GcraPolicy };
  readonly lease: LeaseRequest & { readonly key: string };
}

export interface AdmitDecision {
  readonly rate: GcraDecision;
  /** Absent when the rate refused (no slot was asked for). */
  readonly lease?: LeaseDecision | undefined;
}

/** The two keys of a quota ledger; both must share the hash tag of the keys they count. */
export interface QuotaLedgerKeys {
  /** Entry sizes and the totals. */
  readonly sizes: string;
  /** Entry expiries. */
  readonly expiries: string;
}

export interface QuotaRequest {
  readonly ledger: QuotaLedgerKeys;
  /** Positive whole seconds. */
  readonly ttlSeconds: number;
  /** Entries the ledger may hold (≥ 1). */
  readonly maxEntries: number;
  /** Bytes its entries may take together, each counted as its key plus its value (≥ 1). */
  readonly maxBytes: number;
  /** Decide only; write nothing. */
  readonly dryRun?: boolean | undefined;
}

export interface QuotaDecision {
  /** It fits (and, unless a dry run, is stored). */
  readonly accepted: boolean;
  /** The bound it would pass, when refused. */
  readonly exceeded?: 'entries' | 'bytes' | undefined;
  /** The ledger's entries and bytes with this entry counted (stored or not). */
  readonly entries: number;
  readonly bytes: number;
}

export type MessageHandler = (message: string) => void;
export type Unsubscribe = () => Promise<void>;

export type StoreState = 'ready' | 'connecting' | 'unavailable' | 'closed';

export interface StoreStatus {
  /** Which implementation: `memory` or `redis` / `redis-cluster`. */
  readonly kind: 'memory' | 'redis' | 'redis-cluster';
  readonly state: StoreState;
  /** The last connection error seen, for logs; never sent to clients. */
  readonly lastError?: string | undefined;
}

/** Milliseconds since the Unix epoch; injected so tests can move time by hand. */
export interface Clock {
  now(): number;
}

export const SYSTEM_CLOCK: Clock = { now: () => Date.now() };
