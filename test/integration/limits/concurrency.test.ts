import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConcurrencyLimiter } from '../../../src/limits/concurrency.js';
import { concurrencyKey } from '../../../src/store/keys.js';
import { createMemoryStore } from '../../../src/store/memory-store.js';
import { createRedisClient, waitForRedis } from '../../../src/store/redis-client.js';
import { createRedisStore } from '../../../src/store/redis-store.js';
import type { Clock, Store } from '../../../src/store/types.js';
import { uniqueTenant } from '../../unit/store/store-contract.js';
import { freePort, type RedisServer, startRedisServer } from '../store/redis-process.js';

const REDIS_URL = 'redis://127.0.0.1:6379';

function manualClock(): Clock & { advance(ms: number): void } {
  let now = 1_700_000_000_000;
  return { now: () => now, advance: (ms) => void (now += ms) };
}

describe('concurrency limiter on the memory store', () => {
  it('holds the limit, refuses with a clear 429, and frees a slot on release (once)', async () => {
    const limiter = createConcurrencyLimiter({ store: createMemoryStore(), fallback: 'refuse' });
    const first = await limiter.acquire('acme', 2);
    const second = await limiter.acquire('acme', 2);
    expect(first).toMatchObject({
      acquired: true,
      inFlight: 1,
      lease: { tenantId: 'acme', source: 'store' },
    });
    expect(second).toMatchObject({ acquired: true, inFlight: 2 });
    const refused = await limiter.acquire('acme', 2);
    expect(refused.acquired).toBe(false);
    if (refused.acquired) return;
    expect(refused.error).toMatchObject({
      code: 'RATE_LIMITED',
      status: 429,
      headers: { 'Retry-After': '1' },
      extensions: { reason: 'CONCURRENCY' },
    });
    expect(refused.error.message).toMatch(/concurrent requests.*limit 2/);
    expect((await limiter.acquire('globex', 2)).acquired).toBe(true);

    if (!first.acquired) return;
    await limiter.release(first.lease);
    await limiter.release(first.lease); // idempotent: must not free a second slot
    expect((await limiter.acquire('acme', 2)).acquired).toBe(true);
    expect((await limiter.acquire('acme', 2)).acquired).toBe(false);
  });

  it('reclaims leases a crashed holder never released, after the lease TTL', async () => {
    const clock = manualClock();
    const limiter = createConcurrencyLimiter({
      store: createMemoryStore({ clock }),
      fallback: 'refuse',
      leaseTtlMs: 1_000,
    });
    expect((await limiter.acquire('acme', 1)).acquired).toBe(true);
    expect((await limiter.acquire('acme', 1)).acquired).toBe(false);
    clock.advance(1_001);
    expect((await limiter.acquire('acme', 1)).acquired).toBe(true);
  });

  it('rejects programming errors with TypeError', async () => {
    const limiter = createConcurrencyLimiter({ store: createMemoryStore(), fallback: 'local' });
    await expect(limiter.acquire('acme', 0)).rejects.toBeInstanceOf(TypeError);
    await expect(limiter.acquire('ACME', 1)).rejects.toBeInstanceOf(TypeError);
    expect(() =>
      createConcurrencyLimiter({ store: createMemoryStore(), fallback: 'local', leaseTtlMs: 0 }),
    ).toThrow(TypeError);
  });
});

describe('concurrency limiter on Redis: replicas share one count', () => {
  const replicas: { client: Redis; store: Store }[] = [];
  const tenants: string[] = [];
  beforeAll(async () => {
    for (let i = 0; i < 2; i += 1) {
      const client = createRedisClient({ url: REDIS_URL }, { commandTimeoutMs: 2_000 }) as Redis;
      await waitForRedis(client, 5_000);
      replicas.push({
        client,
        store: createRedisStore({ client, closeClient: false, timeoutMs: 2_000 }),
      });
    }
  });
  afterAll(async () => {
    for (const tenant of tenants) await replicas[0]?.client.del(concurrencyKey(tenant));
    for (const { client, store } of replicas) {
      await store.close();
      await client.quit();
    }
  });

  it('a slot taken on one replica is taken on the other until released there', async () => {
    const tenant = uniqueTenant('conc');
    tenants.push(tenant);
    const [a, b] = replicas.map(({ store }) =>
      createConcurrencyLimiter({ store, fallback: 'refuse' }),
    );
    const held = await a!.acquire(tenant, 1);
    expect(held).toMatchObject({ acquired: true, lease: { source: 'store' } });
    expect(await b!.acquire(tenant, 1)).toMatchObject({
      acquired: false,
      source: 'store',
      inFlight: 1,
    });
    if (held.acquired) await a!.release(held.lease);
    expect((await b!.acquire(tenant, 1)).acquired).toBe(true);
  });

  it('a replica that dies holding a lease does not leak it past the lease TTL', async () => {
    const tenant = uniqueTenant('crash');
    tenants.push(tenant);
    const crashed = createConcurrencyLimiter({
      store: replicas[0]!.store,
      fallback: 'refuse',
      leaseTtlMs: 300,
    });
    const survivor = createConcurrencyLimiter({
      store: replicas[1]!.store,
      fallback: 'refuse',
      leaseTtlMs: 300,
    });
    expect((await crashed.acquire(tenant, 1)).acquired).toBe(true);
    expect((await survivor.acquire(tenant, 1)).acquired).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect((await survivor.acquire(tenant, 1)).acquired).toBe(true);
    // The set expires with its longest lease: an idle tenant leaves no key behind.
    const pttl = await replicas[0]!.client.pttl(concurrencyKey(tenant));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(300);
  });
});

describe('concurrency limiter on a Redis that stops answering mid-acquire', () => {
  let server: RedisServer | undefined;
  let client: Redis | undefined;
  let store: Store | undefined;
  afterAll(async () => {
    server?.signal('SIGCONT');
    await store?.close();
    client?.disconnect();
    await server?.kill();
  });

  it('gives back a lease whose acquire timed out once the store runs it', async () => {
    // A Redis of this test's own: SIGSTOP freezes it without touching anyone else's.
    server = await startRedisServer(await freePort());
    client = createRedisClient(
      { url: `redis://127.0.0.1:${server.port}` },
      { commandTimeoutMs: 150 },
    ) as Redis;
    await waitForRedis(client, 5_000);
    store = createRedisStore({ client, closeClient: false, timeoutMs: 150 });
    const tenant = uniqueTenant('stall');
    const limiter = createConcurrencyLimiter({ store, fallback: 'local' });

    server.signal('SIGSTOP');
    // The script is sent and the store gives up waiting: the local fallback decides instead.
    const result = await limiter.acquire(tenant, 2);
    expect(result).toMatchObject({ acquired: true, lease: { source: 'local' } });
    server.signal('SIGCONT');
    // Commands on one connection run in order: once a later one answers, the stalled script
    // has run, and so has whatever followed it.
    await store.ping();
    // The take-back is a release, sent within RELEASE_COALESCE_MS.
    for (let waited = 0; waited < 1_000; waited += 10) {
      if ((await client.zcard(concurrencyKey(tenant))) === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await client.zcard(concurrencyKey(tenant))).toBe(0);
  });
});
