import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConcurrencyLimiter } from '../../../src/limits/concurrency.js';
import { createRateLimiter } from '../../../src/limits/rate-limit.js';
import { isStoreError } from '../../../src/store/errors.js';
import {
  concurrencyKey,
  persistedQueryKey,
  rateLimitKey,
  tenantKey,
} from '../../../src/store/keys.js';
import { createRedisClient, waitForRedis } from '../../../src/store/redis-client.js';
import { createRedisStore } from '../../../src/store/redis-store.js';
import type { Store } from '../../../src/store/types.js';
import { eventually, uniqueTenant } from '../../unit/store/store-contract.js';
import { freePort, startRedisServer, type RedisServer } from './redis-process.js';

/** "Does not hang": the bound every call must settle within while Redis is away. */
const SETTLE_BOUND_MS = 2_000;

type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Resolves with how `promise` settled; fails the test if it has not within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms = SETTLE_BOUND_MS): Promise<Settled> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        (value): Settled => ({ ok: true, value }),
        (error: unknown): Settled => ({ ok: false, error }),
      ),
      bound,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every store operation once, so each is checked against the outage. */
function everyOperation(store: Store, tenant: string): Record<string, () => Promise<unknown>> {
  const key = persistedQueryKey(tenant, 'q');
  return {
    get: () => store.get(key),
    mget: () => store.mget([key, persistedQueryKey(tenant, 'r')]),
    set: () => store.set(key, 'v', { ttlSeconds: 60 }),
    msetWithTtl: () => store.msetWithTtl([{ key, value: 'v' }], 60),
    del: () => store.del(key),
    sadd: () => store.sadd(tenantKey(tenant, 'set'), ['m']),
    srem: () => store.srem(tenantKey(tenant, 'set'), ['m']),
    smembers: () => store.smembers(tenantKey(tenant, 'set')),
    rateLimit: () => store.rateLimit(rateLimitKey(tenant), { perSecond: 10, burst: 10 }),
    acquireLease: () =>
      store.acquireLease(concurrencyKey(tenant), { leaseId: 'x', limit: 5, ttlMs: 1000 }),
    releaseLease: () => store.releaseLease(concurrencyKey(tenant), 'x'),
    publish: () => store.publish(`test:outage:${tenant}`, 'm'),
    subscribe: () => store.subscribe(`test:outage:${tenant}:late`, () => undefined),
    ping: () => store.ping(),
  };
}

describe('Redis outage and recovery (own redis-server)', () => {
  const tenant = uniqueTenant('outage');
  const policy = { perSecond: 100, burst: 100 };
  const storeErrors: unknown[] = [];
  const channel = `test:outage:${randomBytes(4).toString('hex')}`;
  const received: string[] = [];
  let port: number;
  let server: RedisServer;
  let client: Redis;
  let store: Store;

  beforeAll(async () => {
    port = await freePort();
    server = await startRedisServer(port);
    client = createRedisClient(
      { url: `redis://127.0.0.1:${port}` },
      { commandTimeoutMs: 200, connectTimeoutMs: 500, maxReconnectDelayMs: 300 },
    ) as Redis;
    await waitForRedis(client, 5_000);
    store = createRedisStore({ client, timeoutMs: 300, breakerCooldownMs: 500 });
  });

  afterAll(async () => {
    server?.signal('SIGCONT');
    await store?.close();
    await server?.kill();
  });

  const limiters = () => ({
    local: createRateLimiter({
      store,
      fallback: 'local',
      onStoreError: (e) => storeErrors.push(e),
    }),
    refuse: createRateLimiter({ store, fallback: 'refuse' }),
    allow: createRateLimiter({ store, fallback: 'allow' }),
    concurrency: createConcurrencyLimiter({ store, fallback: 'local' }),
  });

  it('works while Redis is up, with GCRA run by EVALSHA (EVAL again after SCRIPT FLUSH)', async () => {
    await store.set(persistedQueryKey(tenant, 'q'), 'v');
    expect(await store.get(persistedQueryKey(tenant, 'q'))).toBe('v');
    const { local } = limiters();
    expect(await local.check(tenant, policy)).toMatchObject({ allowed: true, source: 'store' });

    const evalshaCalls = async (): Promise<number> => {
      const stats = await client.info('commandstats');
      return Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0);
    };
    const before = await evalshaCalls();
    await store.rateLimit(rateLimitKey(tenant), policy);
    expect(await evalshaCalls()).toBe(before + 1);
    await client.script('FLUSH');
    expect((await store.rateLimit(rateLimitKey(tenant), policy)).allowed).toBe(true);

    await store.subscribe(channel, (message) => received.push(message));
    await store.publish(channel, 'before');
    await eventually(() => expect(received).toContain('before'));
  });

  it('a frozen Redis (SIGSTOP): every call settles within its timeout; limiters fall back', async () => {
    server.signal('SIGSTOP');
    try {
      // The store still looks ready: the limiters try it, time out, and fall back.
      storeErrors.length = 0;
      const { local, refuse, allow, concurrency } = limiters();
      const localResult = await settlesWithin(local.check(tenant, policy));
      expect(localResult).toMatchObject({ ok: true, value: { allowed: true, source: 'local' } });
      expect(storeErrors).toMatchObject([{ code: 'STORE_TIMEOUT', operation: 'rateLimit' }]);
      const lease = await settlesWithin(concurrency.acquire(tenant, 1));
      expect(lease).toMatchObject({
        ok: true,
        value: { acquired: true, lease: { source: 'local' } },
      });

      for (const [name, call] of Object.entries(everyOperation(store, tenant))) {
        const outcome = await settlesWithin(call());
        expect(outcome.ok, name).toBe(false);
        if (!outcome.ok) {
          expect(isStoreError(outcome.error), name).toBe(true);
          expect(['STORE_TIMEOUT', 'STORE_UNAVAILABLE'], name).toContain(
            isStoreError(outcome.error) ? outcome.error.code : undefined,
          );
        }
      }
      // Five timeouts in a row opened the breaker: the store now says so, and fails at once.
      expect(store.isAvailable()).toBe(false);
      const refused = await refuse.check(tenant, policy);
      expect(refused.allowed).toBe(false);
      expect(refused.error).toMatchObject({ code: 'RATE_LIMITED', status: 503 });
      expect((await allow.check(tenant, policy)).source).toBe('none');
    } finally {
      server.signal('SIGCONT');
    }
    // The breaker closes after its cooldown and the same client answers again.
    await eventually(() => store.ping(), 5_000);
  });

  it('a dead Redis (SIGKILL): calls fail fast, limiters fall back as configured', async () => {
    await server.kill();
    await eventually(() => expect(store.isAvailable()).toBe(false));
    expect(store.status().state).toBe('unavailable');

    for (const [name, call] of Object.entries(everyOperation(store, tenant))) {
      const outcome = await settlesWithin(call());
      expect(outcome.ok, name).toBe(false);
      if (!outcome.ok) expect(isStoreError(outcome.error), name).toBe(true);
    }

    const { local, refuse, allow, concurrency } = limiters();
    storeErrors.length = 0;
    // Local fallback: the same GCRA in this process, so the limit still holds.
    const tight = { perSecond: 1, burst: 1 };
    const results = [];
    for (let i = 0; i < 3; i += 1) results.push(await local.check(tenant, tight));
    expect(results.map((r) => [r.allowed, r.source])).toEqual([
      [true, 'local'],
      [true, 'local'],
      [false, 'local'],
    ]);
    expect(results[2]?.error).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
    expect(results[2]?.headers['Retry-After']).toBe('1');

    const refused = await refuse.check(tenant, policy);
    expect(refused).toMatchObject({ allowed: false, source: 'none' });
    expect(refused.error).toMatchObject({
      code: 'RATE_LIMITED',
      status: 503,
      headers: { 'Retry-After': '1' },
      extensions: { code: 'RATE_LIMITED', reason: 'LIMITER_UNAVAILABLE' },
    });
    expect(await allow.check(tenant, policy)).toMatchObject({
      allowed: true,
      source: 'none',
      headers: {},
    });

    const first = await concurrency.acquire(tenant, 1);
    expect(first).toMatchObject({ acquired: true, lease: { source: 'local' } });
    expect(await concurrency.acquire(tenant, 1)).toMatchObject({
      acquired: false,
      source: 'local',
    });
    if (first.acquired) await concurrency.release(first.lease);
    expect(await concurrency.acquire(tenant, 1)).toMatchObject({ acquired: true });
  });

  it('recovers within 10 s once redis-server is back on the same port, same client', async () => {
    server = await startRedisServer(port);
    const started = Date.now();
    await eventually(() => store.ping(), 10_000);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(store.isAvailable()).toBe(true);
    await store.set(persistedQueryKey(tenant, 'q'), 'again');
    expect(await store.get(persistedQueryKey(tenant, 'q'))).toBe('again');
    const { local, concurrency } = limiters();
    expect(await local.check(tenant, policy)).toMatchObject({ allowed: true, source: 'store' });
    expect(await concurrency.acquire(tenant, 1)).toMatchObject({
      acquired: true,
      lease: { source: 'store' },
    });
    // The subscription made before the outage is renewed on the new server.
    await eventually(async () => {
      await store.publish(channel, 'after');
      expect(received).toContain('after');
    }, 10_000);
  });
});
