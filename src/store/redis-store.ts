import type { Cluster, Redis } from 'ioredis';
import { DEFAULT_REDIS_COMMAND_TIMEOUT_MS } from '../config/schema.js';
import { withTimeout } from '../util/timeout.js';
import { StoreError, isStoreError } from './errors.js';
import { assertGcraPolicy } from './gcra.js';
import { hashTagOf } from './keys.js';
import { ADMIT_SCRIPT, GCRA_SCRIPT, LEASE_SCRIPT, QUOTA_SCRIPT } from './scripts.js';
import type {
  AdmitDecision,
  GcraDecision,
  LeaseDecision,
  MessageHandler,
  QuotaDecision,
  Store,
  StoreEntry,
  StoreState,
  StoreStatus,
  Unsubscribe,
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

/**
 * How long a lease release waits for an admission of the same tenant to carry it (see
 * `releaseLease` below) before it is sent on its own. Another replica sees the slot free this
 * much later at most; the replica that released it sees it free at once.
 */
export const RELEASE_COALESCE_MS = 1;
/** Most releases one call carries (Lua's `unpack` and the command's size stay small). */
const MAX_RELEASES_PER_CALL = 256;

/** Lease releases of one key waiting to be sent, and the promise their callers wait on. */
interface PendingReleases {
  readonly ids: string[];
  readonly done: Promise<void>;
  settle(error?: unknown): void;
}

function pendingReleases(): PendingReleases {
  let settle!: (error?: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (error) => (error === undefined ? resolve() : reject(error));
  });
  return { ids: [], done, settle };
}

/** Consecutive timeouts after which calls fail at once for `DEFAULT_BREAKER_COOLDOWN_MS`. */
export const DEFAULT_BREAKER_THRESHOLD = 5;
export const DEFAULT_BREAKER_COOLDOWN_MS = 1_000;

export interface RedisStoreOptions {
  /**
   * A connected (or connecting) ioredis client, single node or Cluster, built by the
   * composition root (see `createRedisClient`). The store defines its Lua commands on it
   * and duplicates it once for pub/sub.
   */
  client: Redis | Cluster;
  /**
   * Deadline for every call, in ms, enforced by the store itself on top of ioredis'
   * `commandTimeout` (which a Cluster does not apply to commands it queues while
   * reconnecting: ioredis#1604). Default `DEFAULT_REDIS_COMMAND_TIMEOUT_MS`.
   */
  timeoutMs?: number | undefined;
  /** `close()` also quits `client` (default `true`: the store is its only user). */
  closeClient?: boolean | undefined;
  /**
   * After this many timeouts in a row, calls fail at once (`STORE_UNAVAILABLE`) for
   * `breakerCooldownMs`, so a server that accepts connections but never answers costs each
   * request nothing instead of a full timeout. Default 5 and 1000 ms.
   */
  breakerThreshold?: number | undefined;
  breakerCooldownMs?: number | undefined;
  /** Told when a subscriber's handler throws; the other handlers still run. */
  onHandlerError?: ((error: unknown, channel: string) => void) | undefined;
}

/** The scripts as ioredis commands (`defineCommand` runs EVALSHA, EVAL on NOSCRIPT). */
interface AtriumCommands {
  atriumGcra(key: string, perSecond: number, burst: number, cost: number): Promise<unknown>;
  atriumLease(key: string, limit: number, ttlMs: number, leaseId: string): Promise<unknown>;
  atriumAdmit(
    rateKey: string,
    leaseKey: string,
    perSecond: number,
    burst: number,
    cost: number,
    limit: number,
    ttlMs: number,
    leaseId: string,
    ...released: string[]
  ): Promise<unknown>;
  atriumQuota(
    key: string,
    sizesKey: string,
    expiriesKey: string,
    value: string,
    ttlMs: number,
    maxEntries: number,
    maxBytes: number,
    dryRun: 0 | 1,
  ): Promise<unknown>;
}

const UNAVAILABLE_REPLIES = /^(CLUSTERDOWN|LOADING|MASTERDOWN|TRYAGAIN|READONLY)\b/;

function isCluster(client: Redis | Cluster): client is Cluster {
  return client.isCluster;
}

/** Maps whatever ioredis rejected with onto the three store error codes. */
function translate(error: unknown, operation: string): StoreError {
  if (isStoreError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (message === 'Command timed out') {
    return new StoreError('STORE_TIMEOUT', operation, message, { cause: error });
  }
  if (error instanceof Error && error.name === 'ReplyError' && !UNAVAILABLE_REPLIES.test(message)) {
    return new StoreError('STORE_FAILED', operation, message, { cause: error });
  }
  // Connection closed, stream not writeable, MaxRetriesPerRequestError, cluster not ready, …
  return new StoreError('STORE_UNAVAILABLE', operation, message, { cause: error });
}

function parseGcraReply(reply: unknown): GcraDecision {
  if (!Array.isArray(reply) || reply.length !== 5) {
    throw new StoreError('STORE_FAILED', 'rateLimit', 'unexpected reply from the GCRA script');
  }
  const [allowed, limit, remaining, resetUs, retryUs] = reply as unknown[];
  return {
    allowed: Number(allowed) === 1,
    limit: Number(limit),
    remaining: Number(remaining),
    resetSeconds: Number(resetUs) / 1e6,
    retryAfterSeconds: Number(retryUs) / 1e6,
  };
}

function parseLeaseReply(reply: unknown): LeaseDecision {
  if (!Array.isArray(reply) || reply.length !== 2) {
    throw new StoreError('STORE_FAILED', 'acquireLease', 'unexpected reply from the lease script');
  }
  return { acquired: Number(reply[0]) === 1, inFlight: Number(reply[1]) };
}

function parseAdmitReply(reply: unknown): AdmitDecision {
  if (!Array.isArray(reply) || reply.length !== 7) {
    throw new StoreError('STORE_FAILED', 'admit', 'unexpected reply from the admission script');
  }
  const rate = parseGcraReply(reply.slice(0, 5));
  if (!rate.allowed) return { rate };
  return { rate, lease: parseLeaseReply(reply.slice(5)) };
}

function parseQuotaReply(reply: unknown): QuotaDecision {
  if (!Array.isArray(reply) || reply.length !== 4) {
    throw new StoreError('STORE_FAILED', 'putWithQuota', 'unexpected reply from the quota script');
  }
  const [accepted, exceeded, entries, bytes] = reply as unknown[];
  return {
    accepted: Number(accepted) === 1,
    exceeded: exceeded === 'entries' || exceeded === 'bytes' ? exceeded : undefined,
    entries: Number(entries),
    bytes: Number(bytes),
  };
}

function groupByHashTag<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  items.forEach((item, index) => {
    const tag = hashTagOf(keyOf(item));
    const group = groups.get(tag);
    if (group) group.push(index);
    else groups.set(tag, [index]);
  });
  return groups;
}

async function execPipeline(
  pipeline: ReturnType<Redis['pipeline']>,
  operation: string,
): Promise<void> {
  const results = await pipeline.exec();
  if (results === null) throw new StoreError('STORE_UNAVAILABLE', operation, 'pipeline aborted');
  for (const [error] of results) {
    if (error) throw translate(error, operation);
  }
}

/**
 * A `Store` over ioredis, single node or Redis Cluster. Every call fails fast with a
 * `StoreError` when the client is not ready, and settles within `timeoutMs` otherwise; a
 * Redis outage therefore costs a request at most one timeout, and nothing once the client
 * knows it is disconnected or the breaker is open. The client reconnects on its own (see
 * `createRedisClient`), and the store follows it: no need to rebuild either.
 *
 * In a Cluster, multi-key calls (`mget`, `msetWithTtl`) are split by hash tag, so they work
 * across tenants; keys from `keys.ts` carry their tenant as the tag.
 */
export function createRedisStore(options: RedisStoreOptions): Store {
  const { client } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS;
  const breakerThreshold = options.breakerThreshold ?? DEFAULT_BREAKER_THRESHOLD;
  const breakerCooldownMs = options.breakerCooldownMs ?? DEFAULT_BREAKER_COOLDOWN_MS;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new TypeError(`createRedisStore: timeoutMs must be > 0; received ${timeoutMs}`);
  }
  if (!(Number.isInteger(breakerThreshold) && breakerThreshold >= 1)) {
    throw new TypeError(
      `createRedisStore: breakerThreshold must be an integer ≥ 1; received ${breakerThreshold}`,
    );
  }
  const cluster = isCluster(client);
  const kind = cluster ? 'redis-cluster' : 'redis';
  const noReply = (operation: string): StoreError =>
    new StoreError('STORE_TIMEOUT', operation, `no reply within ${timeoutMs} ms`);

  client.defineCommand('atriumGcra', { numberOfKeys: 1, lua: GCRA_SCRIPT });
  client.defineCommand('atriumLease', { numberOfKeys: 1, lua: LEASE_SCRIPT });
  client.defineCommand('atriumAdmit', { numberOfKeys: 2, lua: ADMIT_SCRIPT });
  client.defineCommand('atriumQuota', { numberOfKeys: 3, lua: QUOTA_SCRIPT });
  const commands = client as unknown as AtriumCommands;

  let closed = false;
  let lastError: string | undefined;
  let consecutiveTimeouts = 0;
  let breakerOpenUntil = 0;
  const onClientError = (error: Error): void => {
    lastError = error.message;
  };
  client.on('error', onClientError);

  // Lease releases are coalesced: the next admission script on the same key carries them (it
  // removes them before it counts, so this replica's next request sees its own slots free),
  // and whatever no admission took within RELEASE_COALESCE_MS goes as one ZREM per key. Under
  // load a request then costs one round trip instead of two.
  const releases = new Map<string, PendingReleases>();
  let releaseTimer: NodeJS.Timeout | undefined;

  function sendReleases(key: string, batch: PendingReleases): Promise<void> {
    return run('releaseLease', () => client.zrem(key, ...batch.ids)).then(
      () => batch.settle(),
      (error: unknown) => batch.settle(error),
    );
  }

  function flushReleases(): Promise<void> {
    releaseTimer = undefined;
    const sending = [...releases].map(([key, batch]) => sendReleases(key, batch));
    releases.clear();
    return Promise.all(sending).then(() => undefined);
  }

  /** The releases an admission on `key` carries, taken off the queue. */
  function takeReleases(key: string): PendingReleases | undefined {
    const batch = releases.get(key);
    if (batch !== undefined) releases.delete(key);
    return batch;
  }

  function breakerOpen(): boolean {
    return consecutiveTimeouts >= breakerThreshold && performance.now() < breakerOpenUntil;
  }

  /** Runs one call with the fast-fail checks, the deadline and error translation. */
  async function run<T>(operation: string, call: () => Promise<T>): Promise<T> {
    if (closed) throw new StoreError('STORE_UNAVAILABLE', operation, 'the store is closed');
    if (client.status !== 'ready') {
      // A lazyConnect client someone handed us: start it, but do not wait for it.
      if (client.status === 'wait') client.connect().catch(() => undefined);
      throw new StoreError('STORE_UNAVAILABLE', operation, `not connected (${client.status})`);
    }
    if (breakerOpen()) {
      throw new StoreError(
        'STORE_UNAVAILABLE',
        operation,
        `${consecutiveTimeouts} timeouts in a row; pausing calls`,
      );
    }
    try {
      const result = await withTimeout(call(), timeoutMs, () => {
        throw noReply(operation);
      });
      consecutiveTimeouts = 0;
      return result;
    } catch (error) {
      const storeError = translate(error, operation);
      if (storeError.code === 'STORE_TIMEOUT') {
        consecutiveTimeouts += 1;
        if (consecutiveTimeouts >= breakerThreshold) {
          breakerOpenUntil = performance.now() + breakerCooldownMs;
        }
      }
      throw storeError;
    }
  }

  // Pub/sub needs a connection of its own (a subscribed connection accepts nothing else); it
  // is made on first use. It keeps an offline queue so SUBSCRIBE can be sent while it connects,
  // and ioredis re-subscribes by itself after a reconnect.
  const handlersByChannel = new Map<string, Set<MessageHandler>>();
  let subscriber: Redis | Cluster | undefined;
  function getSubscriber(): Redis | Cluster {
    if (subscriber === undefined) {
      const sub = isCluster(client)
        ? client.duplicate([], { enableOfflineQueue: true })
        : client.duplicate({ enableOfflineQueue: true });
      sub.on('error', onClientError);
      sub.on('message', (channel: string, message: string) => {
        const handlers = handlersByChannel.get(channel);
        if (handlers === undefined) return;
        for (const handler of [...handlers]) {
          try {
            handler(message);
          } catch (error) {
            options.onHandlerError?.(error, channel);
          }
        }
      });
      subscriber = sub;
    }
    return subscriber;
  }

  async function runSubscriber<T>(
    operation: string,
    call: (sub: Redis | Cluster) => Promise<T>,
  ): Promise<T> {
    if (closed) throw new StoreError('STORE_UNAVAILABLE', operation, 'the store is closed');
    const sub = getSubscriber();
    try {
      return await withTimeout(call(sub), timeoutMs, () => {
        throw noReply(operation);
      });
    } catch (error) {
      throw translate(error, operation);
    }
  }

  function state(): StoreState {
    if (closed) return 'closed';
    switch (client.status) {
      case 'ready':
        return breakerOpen() ? 'unavailable' : 'ready';
      case 'wait':
      case 'connecting':
      case 'connect':
        return 'connecting';
      default:
        return 'unavailable';
    }
  }

  return {
    async get(key) {
      assertKey(key, 'get');
      return run('get', () => client.get(key));
    },

    async mget(keys) {
      keys.forEach((key) => assertKey(key, 'mget'));
      if (keys.length === 0) return [];
      if (!cluster) return run('mget', () => client.mget(...keys));
      // One MGET per hash tag (one slot each), in parallel, reassembled in order.
      const groups = groupByHashTag(keys, (key) => key);
      return run('mget', async () => {
        const values: (string | null)[] = new Array<string | null>(keys.length).fill(null);
        await Promise.all(
          [...groups.values()].map(async (indexes) => {
            const found = await client.mget(...indexes.map((i) => keys[i] as string));
            indexes.forEach((i, n) => (values[i] = found[n] ?? null));
          }),
        );
        return values;
      });
    },

    async set(key, value, setOptions = {}) {
      assertKey(key, 'set');
      assertValue(value, 'set');
      const { ttlSeconds } = setOptions;
      if (ttlSeconds !== undefined) assertTtlSeconds(ttlSeconds, 'set');
      await run('set', () =>
        ttlSeconds === undefined
          ? client.set(key, value)
          : client.set(key, value, 'EX', ttlSeconds),
      );
    },

    async msetWithTtl(entries: readonly StoreEntry[], ttlSeconds) {
      assertTtlSeconds(ttlSeconds, 'msetWithTtl');
      for (const entry of entries) {
        assertKey(entry.key, 'msetWithTtl');
        assertValue(entry.value, 'msetWithTtl');
      }
      if (entries.length === 0) return;
      // A Cluster pipeline must stay within one slot, so one pipeline per hash tag there.
      const groups = cluster
        ? [...groupByHashTag(entries, (entry) => entry.key).values()]
        : [entries.map((_, i) => i)];
      await run('msetWithTtl', async () => {
        await Promise.all(
          groups.map((indexes) => {
            const pipeline = client.pipeline();
            for (const i of indexes) {
              const entry = entries[i] as StoreEntry;
              pipeline.set(entry.key, entry.value, 'EX', ttlSeconds);
            }
            return execPipeline(pipeline, 'msetWithTtl');
          }),
        );
      });
    },

    async putWithQuota(key, value, request) {
      assertKey(key, 'putWithQuota');
      assertValue(value, 'putWithQuota');
      assertQuotaRequest(request);
      const { sizes, expiries } = request.ledger;
      if (hashTagOf(sizes) !== hashTagOf(key) || hashTagOf(expiries) !== hashTagOf(key)) {
        throw new TypeError('putWithQuota: the ledger keys must share the hash tag of the key');
      }
      const reply = await run('putWithQuota', () =>
        commands.atriumQuota(
          key,
          sizes,
          expiries,
          value,
          request.ttlSeconds * 1000,
          request.maxEntries,
          request.maxBytes,
          request.dryRun ? 1 : 0,
        ),
      );
      return parseQuotaReply(reply);
    },

    async del(key) {
      assertKey(key, 'del');
      return (await run('del', () => client.del(key))) > 0;
    },

    async sadd(key, members) {
      assertKey(key, 'sadd');
      assertMembers(members, 'sadd');
      if (members.length === 0) return 0;
      return run('sadd', () => client.sadd(key, ...members));
    },

    async srem(key, members) {
      assertKey(key, 'srem');
      assertMembers(members, 'srem');
      if (members.length === 0) return 0;
      return run('srem', () => client.srem(key, ...members));
    },

    async smembers(key) {
      assertKey(key, 'smembers');
      return run('smembers', () => client.smembers(key));
    },

    async rateLimit(key, policy) {
      assertKey(key, 'rateLimit');
      assertGcraPolicy(policy);
      const reply = await run('rateLimit', () =>
        commands.atriumGcra(key, policy.perSecond, policy.burst, policy.cost ?? 1),
      );
      return parseGcraReply(reply);
    },

    async acquireLease(key, request) {
      assertKey(key, 'acquireLease');
      assertLeaseRequest(request);
      const reply = await run('acquireLease', () =>
        commands.atriumLease(key, request.limit, request.ttlMs, request.leaseId),
      );
      return parseLeaseReply(reply);
    },

    async admit(request) {
      assertAdmitRequest(request);
      const { rate, lease } = request;
      const carried = takeReleases(lease.key);
      try {
        const reply = await run('admit', () =>
          commands.atriumAdmit(
            rate.key,
            lease.key,
            rate.policy.perSecond,
            rate.policy.burst,
            rate.policy.cost ?? 1,
            lease.limit,
            lease.ttlMs,
            lease.leaseId,
            ...(carried?.ids ?? []),
          ),
        );
        carried?.settle();
        return parseAdmitReply(reply);
      } catch (error) {
        // Whoever released them learns it failed (a lost release expires with its lease).
        carried?.settle(error);
        throw error;
      }
    },

    async releaseLease(key, leaseId) {
      assertKey(key, 'releaseLease');
      if (closed) throw new StoreError('STORE_UNAVAILABLE', 'releaseLease', 'the store is closed');
      let batch = releases.get(key);
      if (batch === undefined) {
        batch = pendingReleases();
        releases.set(key, batch);
      }
      batch.ids.push(leaseId);
      const { done } = batch;
      if (batch.ids.length >= MAX_RELEASES_PER_CALL) void sendReleases(key, takeReleases(key)!);
      else releaseTimer ??= setTimeout(() => void flushReleases(), RELEASE_COALESCE_MS);
      return done;
    },

    async publish(channel, message) {
      assertChannel(channel, 'publish');
      assertValue(message, 'publish');
      await run('publish', () => client.publish(channel, message));
    },

    async subscribe(channel, handler): Promise<Unsubscribe> {
      assertChannel(channel, 'subscribe');
      if (typeof handler !== 'function')
        throw new TypeError('subscribe: handler must be a function');
      const own: MessageHandler = (message) => handler(message);
      let handlers = handlersByChannel.get(channel);
      const first = handlers === undefined;
      if (handlers === undefined) {
        handlers = new Set();
        handlersByChannel.set(channel, handlers);
      }
      handlers.add(own);
      const remove = (): boolean => {
        const current = handlersByChannel.get(channel);
        current?.delete(own);
        if (current?.size !== 0) return false;
        handlersByChannel.delete(channel);
        return true;
      };
      if (first) {
        try {
          await runSubscriber('subscribe', (sub) => sub.subscribe(channel));
        } catch (error) {
          remove();
          throw error;
        }
      }
      return async () => {
        if (remove() && subscriber !== undefined && !closed) {
          // Best effort: a channel nobody listens to costs only its (dropped) messages.
          await runSubscriber('unsubscribe', (sub) => sub.unsubscribe(channel)).catch(
            () => undefined,
          );
        }
      };
    },

    async ping() {
      await run('ping', () => client.ping());
    },

    isAvailable: () => state() === 'ready',

    status: (): StoreStatus => ({ kind, state: state(), lastError }),

    async close() {
      if (closed) return;
      // Releases still waiting are sent first: a slot must not stay taken until its lease
      // expires because this replica shut down.
      clearTimeout(releaseTimer);
      await flushReleases();
      closed = true;
      handlersByChannel.clear();
      subscriber?.disconnect();
      if (options.closeClient ?? true) {
        // A QUIT that gets no reply in time: disconnect anyway.
        await withTimeout(
          client.quit().catch(() => undefined),
          timeoutMs,
          () => undefined,
        );
        client.disconnect();
      }
      client.off('error', onClientError);
    },
  };
}
