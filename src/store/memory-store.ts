import { LRUCache } from 'lru-cache';
import { StoreError } from './errors.js';
import { assertGcraPolicy, gcraStep } from './gcra.js';
import {
  type Clock,
  type GcraDecision,
  type GcraPolicy,
  type LeaseDecision,
  type LeaseRequest,
  type MessageHandler,
  type QuotaDecision,
  type QuotaRequest,
  type SetOptions,
  type Store,
  type StoreEntry,
  type StoreStatus,
  type Unsubscribe,
  SYSTEM_CLOCK,
} from './types.js';
import {
  assertAdmitRequest,
  assertChannel,
  assertKey,
  assertLeaseRequest,
  assertMembers,
  assertQuotaRequest,
  assertTtlSeconds,
  assertValue,
} from './validate.js';

/** Entries kept before the least recently used are evicted; bounds the demo's memory. */
export const DEFAULT_MEMORY_STORE_MAX_ENTRIES = 50_000;
/**
 * Approximate bytes of keys and values kept before the least recently used are evicted: a
 * count alone does not bound memory when values are large (persisted documents).
 */
export const DEFAULT_MEMORY_STORE_MAX_BYTES = 64 * 1024 * 1024;
/** Rough per-entry overhead counted on top of a key's and value's characters. */
const ENTRY_OVERHEAD_BYTES = 64;

export interface MemoryStoreOptions {
  /** Time source for TTLs, GCRA and leases (ms since epoch). Default `Date.now`. */
  clock?: Clock | undefined;
  /** Maximum keys held; least recently used keys go first. Default 50 000. */
  maxEntries?: number | undefined;
  /** Maximum approximate bytes held (UTF-16 keys and values); LRU first. Default 64 MiB. */
  maxBytes?: number | undefined;
  /** Told when a subscriber's handler throws; the other handlers still run. */
  onHandlerError?: ((error: unknown, channel: string) => void) | undefined;
}

type Entry =
  | { readonly type: 'string'; readonly value: string; readonly expiresAt: number | undefined }
  | { readonly type: 'leases'; readonly leases: Map<string, number> }
  | { readonly type: 'set'; readonly members: Set<string> }
  | {
      readonly type: 'ledger';
      /** Counted key → its size in UTF-8 bytes and its expiry (ms). */
      readonly items: Map<string, { bytes: number; expiresAt: number }>;
      bytes: number;
    };

/** What an entry costs in memory, roughly (JavaScript strings take two bytes a character). */
function entrySize(entry: Entry, key: string): number {
  const base = ENTRY_OVERHEAD_BYTES + key.length * 2;
  switch (entry.type) {
    case 'string':
      return base + entry.value.length * 2;
    case 'leases':
      return base + entry.leases.size * ENTRY_OVERHEAD_BYTES;
    case 'set':
      return base + entry.members.size * ENTRY_OVERHEAD_BYTES;
    case 'ledger':
      return base + entry.items.size * 2 * ENTRY_OVERHEAD_BYTES;
  }
}

/**
 * An in-process `Store` with the Redis store's semantics (TTL expiry, GCRA, expiring leases,
 * pub/sub), for demo mode and tests. State is per process: with several replicas each would
 * enforce limits on its own, so production uses the Redis store.
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): Store {
  const clock = options.clock ?? SYSTEM_CLOCK;
  const maxEntries = options.maxEntries ?? DEFAULT_MEMORY_STORE_MAX_ENTRIES;
  if (!(Number.isInteger(maxEntries) && maxEntries >= 1)) {
    throw new TypeError(
      `createMemoryStore: maxEntries must be an integer ≥ 1; received ${maxEntries}`,
    );
  }
  const maxBytes = options.maxBytes ?? DEFAULT_MEMORY_STORE_MAX_BYTES;
  if (!(Number.isInteger(maxBytes) && maxBytes >= 1)) {
    throw new TypeError(`createMemoryStore: maxBytes must be an integer ≥ 1; received ${maxBytes}`);
  }
  // Sizes are measured when an entry is set; entries changed in place (leases, sets) are
  // re-measured when next set, which the small ones rarely need.
  const entries = new LRUCache<string, Entry>({
    max: maxEntries,
    maxSize: maxBytes,
    sizeCalculation: (entry, key) => entrySize(entry, key),
  });
  const channels = new Map<string, Set<MessageHandler>>();
  let closed = false;

  function ensureOpen(operation: string): void {
    if (closed) throw new StoreError('STORE_UNAVAILABLE', operation, 'the store is closed');
  }

  // Expiry is checked lazily against the injected clock, which is what makes TTLs testable
  // without real waiting; eviction bounds what is never read again.
  function readString(key: string, operation: string): string | null {
    const entry = entries.get(key);
    if (entry === undefined) return null;
    if (entry.type !== 'string') {
      throw new StoreError('STORE_FAILED', operation, `WRONGTYPE: key holds ${entry.type}`);
    }
    if (entry.expiresAt !== undefined && entry.expiresAt <= clock.now()) {
      entries.delete(key);
      return null;
    }
    return entry.value;
  }

  function writeString(key: string, value: string, ttlMs: number | undefined): void {
    entries.set(key, {
      type: 'string',
      value,
      expiresAt: ttlMs === undefined ? undefined : clock.now() + ttlMs,
    });
  }

  function readSet(key: string, operation: string, create: boolean): Set<string> | undefined {
    const entry = entries.get(key);
    if (entry !== undefined && entry.type !== 'set') {
      throw new StoreError('STORE_FAILED', operation, `WRONGTYPE: key holds ${entry.type}`);
    }
    if (entry !== undefined || !create) return entry?.members;
    const members = new Set<string>();
    entries.set(key, { type: 'set', members });
    return members;
  }

  // Async functions turn synchronous throws into rejections, like the Redis store's I/O.
  const store: Store = {
    async get(key) {
      assertKey(key, 'get');
      ensureOpen('get');
      return readString(key, 'get');
    },

    async mget(keys) {
      keys.forEach((key) => assertKey(key, 'mget'));
      ensureOpen('mget');
      return keys.map((key) => {
        const entry = entries.get(key);
        // Redis MGET answers nil for a key of another type rather than failing.
        return entry?.type === 'string' ? readString(key, 'mget') : null;
      });
    },

    async set(key, value, setOptions: SetOptions = {}) {
      assertKey(key, 'set');
      assertValue(value, 'set');
      if (setOptions.ttlSeconds !== undefined) assertTtlSeconds(setOptions.ttlSeconds, 'set');
      ensureOpen('set');
      writeString(
        key,
        value,
        setOptions.ttlSeconds === undefined ? undefined : setOptions.ttlSeconds * 1000,
      );
    },

    async msetWithTtl(list: readonly StoreEntry[], ttlSeconds) {
      assertTtlSeconds(ttlSeconds, 'msetWithTtl');
      for (const entry of list) {
        assertKey(entry.key, 'msetWithTtl');
        assertValue(entry.value, 'msetWithTtl');
      }
      ensureOpen('msetWithTtl');
      for (const entry of list) writeString(entry.key, entry.value, ttlSeconds * 1000);
    },

    async putWithQuota(key, value, request: QuotaRequest): Promise<QuotaDecision> {
      assertKey(key, 'putWithQuota');
      assertValue(value, 'putWithQuota');
      assertQuotaRequest(request);
      ensureOpen('putWithQuota');
      const ledgerKey = request.ledger.sizes;
      const found = entries.get(ledgerKey);
      if (found !== undefined && found.type !== 'ledger') {
        throw new StoreError('STORE_FAILED', 'putWithQuota', `WRONGTYPE: key holds ${found.type}`);
      }
      const ledger = found ?? { type: 'ledger' as const, items: new Map(), bytes: 0 };
      const now = clock.now();
      for (const [item, { bytes, expiresAt }] of ledger.items) {
        if (expiresAt > now) continue;
        ledger.items.delete(item);
        ledger.bytes -= bytes;
      }
      // UTF-8 bytes, as Redis counts them, so both stores enforce the same quota.
      const size = Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value, 'utf8');
      const known = ledger.items.get(key);
      const count = ledger.items.size + (known === undefined ? 1 : 0);
      const bytes = ledger.bytes + size - (known?.bytes ?? 0);
      if (count > request.maxEntries) {
        return { accepted: false, exceeded: 'entries', entries: count, bytes };
      }
      if (bytes > request.maxBytes) {
        return { accepted: false, exceeded: 'bytes', entries: count, bytes };
      }
      if (request.dryRun) return { accepted: true, entries: count, bytes };
      const ttlMs = request.ttlSeconds * 1000;
      writeString(key, value, ttlMs);
      ledger.items.set(key, { bytes: size, expiresAt: now + ttlMs });
      ledger.bytes = bytes;
      // Set again so the cache measures its new size.
      entries.set(ledgerKey, ledger);
      return { accepted: true, entries: count, bytes };
    },

    async del(key) {
      assertKey(key, 'del');
      ensureOpen('del');
      const entry = entries.get(key);
      if (entry === undefined) return false;
      entries.delete(key);
      return !(
        entry.type === 'string' &&
        entry.expiresAt !== undefined &&
        entry.expiresAt <= clock.now()
      );
    },

    async sadd(key, members) {
      assertKey(key, 'sadd');
      assertMembers(members, 'sadd');
      ensureOpen('sadd');
      const set = readSet(key, 'sadd', members.length > 0);
      if (set === undefined) return 0;
      const before = set.size;
      for (const member of members) set.add(member);
      return set.size - before;
    },

    async srem(key, members) {
      assertKey(key, 'srem');
      assertMembers(members, 'srem');
      ensureOpen('srem');
      const set = readSet(key, 'srem', false);
      if (set === undefined) return 0;
      let removed = 0;
      for (const member of members) if (set.delete(member)) removed += 1;
      // Redis drops an emptied set; so do we, so `del` and `get` agree with it.
      if (set.size === 0) entries.delete(key);
      return removed;
    },

    async smembers(key) {
      assertKey(key, 'smembers');
      ensureOpen('smembers');
      return [...(readSet(key, 'smembers', false) ?? [])];
    },

    async rateLimit(key, policy: GcraPolicy): Promise<GcraDecision> {
      assertKey(key, 'rateLimit');
      assertGcraPolicy(policy);
      ensureOpen('rateLimit');
      const stored = readString(key, 'rateLimit');
      const step = gcraStep(stored === null ? undefined : Number(stored), clock.now(), policy);
      if (step.newTatMs !== undefined) writeString(key, String(step.newTatMs), step.ttlMs);
      return step.decision;
    },

    async acquireLease(key, request: LeaseRequest): Promise<LeaseDecision> {
      assertKey(key, 'acquireLease');
      assertLeaseRequest(request);
      ensureOpen('acquireLease');
      const now = clock.now();
      let entry = entries.get(key);
      if (entry !== undefined && entry.type !== 'leases') {
        throw new StoreError('STORE_FAILED', 'acquireLease', `WRONGTYPE: key holds ${entry.type}`);
      }
      if (entry === undefined) {
        entry = { type: 'leases', leases: new Map() };
        entries.set(key, entry);
      }
      for (const [id, expiresAt] of entry.leases) {
        if (expiresAt <= now) entry.leases.delete(id);
      }
      if (entry.leases.size >= request.limit)
        return { acquired: false, inFlight: entry.leases.size };
      entry.leases.set(request.leaseId, now + request.ttlMs);
      return { acquired: true, inFlight: entry.leases.size };
    },

    async admit(request) {
      assertAdmitRequest(request);
      const rate = await store.rateLimit(request.rate.key, request.rate.policy);
      if (!rate.allowed) return { rate };
      return { rate, lease: await store.acquireLease(request.lease.key, request.lease) };
    },

    async releaseLease(key, leaseId) {
      assertKey(key, 'releaseLease');
      ensureOpen('releaseLease');
      const entry = entries.get(key);
      if (entry?.type !== 'leases') return;
      // The emptied entry stays (the LRU bounds it): deleting the cache's last entry makes
      // lru-cache clear all its preallocated slots, ~1000× the cost of this call.
      entry.leases.delete(leaseId);
    },

    async publish(channel, message) {
      assertChannel(channel, 'publish');
      assertValue(message, 'publish');
      ensureOpen('publish');
      const handlers = channels.get(channel);
      if (handlers === undefined) return;
      // Deliver after publish resolves, as Redis does: a handler never runs inside publish.
      for (const handler of [...handlers]) {
        queueMicrotask(() => {
          if (closed || !channels.get(channel)?.has(handler)) return;
          try {
            handler(message);
          } catch (error) {
            options.onHandlerError?.(error, channel);
          }
        });
      }
    },

    async subscribe(channel, handler): Promise<Unsubscribe> {
      assertChannel(channel, 'subscribe');
      if (typeof handler !== 'function')
        throw new TypeError('subscribe: handler must be a function');
      ensureOpen('subscribe');
      let handlers = channels.get(channel);
      if (handlers === undefined) {
        handlers = new Set();
        channels.set(channel, handlers);
      }
      // A wrapper per subscription, so subscribing the same function twice needs two unsubscribes.
      const own: MessageHandler = (message) => handler(message);
      handlers.add(own);
      return async () => {
        const current = channels.get(channel);
        current?.delete(own);
        if (current?.size === 0) channels.delete(channel);
      };
    },

    async ping() {
      ensureOpen('ping');
    },

    isAvailable: () => !closed,

    status: (): StoreStatus => ({ kind: 'memory', state: closed ? 'closed' : 'ready' }),

    async close() {
      closed = true;
      entries.clear();
      channels.clear();
    },
  };
  return store;
}
