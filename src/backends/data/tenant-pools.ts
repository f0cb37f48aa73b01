import { GatewayError } from '../../errors.js';

/** The part of a pooled client this cache needs (node-postgres `PoolClient`). */
export interface PooledClientLike {
  release(destroy?: boolean | Error): void;
}

/** The part of a pool this cache needs (node-postgres `Pool`). */
export interface PoolLike<C extends PooledClientLike> {
  connect(): Promise<C>;
  end(): Promise<void>;
}

export interface TenantPoolSpec {
  tenantId: string;
  url: string;
  poolMax: number;
}

export interface TenantPoolsOptions<C extends PooledClientLike> {
  /** Most pools kept open at once; the least recently used idle pool is closed to make room. */
  maxPools: number;
  /** A pool nobody has used for this long is closed. */
  idleMs: number;
  createPool(spec: TenantPoolSpec): PoolLike<C>;
}

export interface TenantPoolLease<C> {
  client: C;
  /** Returns the client; `destroy` closes it instead of pooling it. Call exactly once. */
  release(destroy: boolean): void;
}

export interface TenantPools<C> {
  acquire(spec: TenantPoolSpec): Promise<TenantPoolLease<C>>;
  /** Tenant ids with an open pool, least recently used first. */
  openTenants(): string[];
  /** Closes every pool; clients in use are closed when released. */
  close(): Promise<void>;
}

interface Entry<C extends PooledClientLike> {
  spec: TenantPoolSpec;
  pool: PoolLike<C>;
  /** Leases out plus connects in progress. */
  active: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Removed from the cache while busy: close it as soon as it goes idle. */
  retired: boolean;
  ended: boolean;
}

/**
 * A bounded cache of per-tenant pools for the `database` strategy.
 *
 * Hand-written rather than lru-cache because the rules are about *idle* pools, which lru-cache
 * cannot express: eviction must skip a pool that is in use (ending a pg Pool strands the callers
 * queued for one of its connections until their connect timeout), and idleness counts from the
 * last release, not the last lookup (an entry TTL would expire a pool in the middle of a long
 * request). When every pool is busy the cache briefly holds more than `maxPools`, and trims back
 * as soon as pools go idle; a caller is never made to wait for another tenant's pool.
 */
export function createTenantPools<C extends PooledClientLike>(
  options: TenantPoolsOptions<C>,
): TenantPools<C> {
  if (!Number.isInteger(options.maxPools) || options.maxPools < 1) {
    throw new TypeError(`maxTenantPools must be a positive integer; found ${options.maxPools}`);
  }
  if (!Number.isInteger(options.idleMs) || options.idleMs < 1) {
    throw new TypeError(`tenantPoolIdleMs must be a positive integer; found ${options.idleMs}`);
  }
  // Map iteration order is insertion order: re-inserting on use keeps it least-recent first.
  const entries = new Map<string, Entry<C>>();
  const closing = new Set<Promise<void>>();
  /** Every pool not yet ended, cached or retired. */
  const live = new Set<Entry<C>>();
  let closed = false;

  function end(entry: Entry<C>): void {
    if (entry.ended) return;
    entry.ended = true;
    live.delete(entry);
    clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
    const done = entry.pool.end().catch(() => {
      // Ending is best effort: a pool whose server vanished has nothing left to close.
    });
    closing.add(done);
    void done.finally(() => closing.delete(done));
  }

  function remove(entry: Entry<C>): void {
    if (entries.get(entry.spec.tenantId) === entry) entries.delete(entry.spec.tenantId);
    if (entry.active === 0) end(entry);
    else entry.retired = true;
  }

  function trim(): void {
    for (const entry of entries.values()) {
      if (entries.size <= options.maxPools) return;
      if (entry.active === 0) remove(entry);
    }
  }

  function settle(entry: Entry<C>): void {
    entry.active -= 1;
    if (entry.active > 0) return;
    if (entry.retired || closed) {
      end(entry);
      return;
    }
    entry.idleTimer = setTimeout(() => {
      if (entry.active === 0) remove(entry);
    }, options.idleMs);
    // An idle pool must not keep a process (a script, a test) alive.
    entry.idleTimer.unref();
    trim();
  }

  return {
    async acquire(spec) {
      if (closed) throw new GatewayError('BACKEND_UNAVAILABLE', 'The data backend is closed');
      let entry = entries.get(spec.tenantId);
      if (
        entry !== undefined &&
        (entry.spec.url !== spec.url || entry.spec.poolMax !== spec.poolMax)
      ) {
        // The tenant's settings changed (hot reload): new connections go to the new settings.
        remove(entry);
        entry = undefined;
      }
      if (entry === undefined) {
        entry = {
          spec: { ...spec },
          pool: options.createPool(spec),
          active: 0,
          idleTimer: undefined,
          retired: false,
          ended: false,
        };
        live.add(entry);
      } else {
        entries.delete(spec.tenantId);
      }
      entries.set(spec.tenantId, entry);
      clearTimeout(entry.idleTimer);
      entry.idleTimer = undefined;
      entry.active += 1;
      trim();
      const owner = entry;
      let client: C;
      try {
        client = await owner.pool.connect();
      } catch (error) {
        settle(owner);
        throw error;
      }
      let released = false;
      return {
        client,
        release(destroy) {
          if (released) return;
          released = true;
          client.release(destroy ? true : undefined);
          settle(owner);
        },
      };
    },

    openTenants() {
      return [...entries.keys()];
    },

    async close() {
      closed = true;
      // Unlike eviction, closing does not wait for busy pools to go idle: a pg Pool that is
      // ending closes each checked-out client when it is released.
      entries.clear();
      for (const entry of [...live]) end(entry);
      await Promise.all([...closing]);
    },
  };
}
