import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/errors.js';
import { createRateLimiter, rateLimitHeaders } from '../../../src/limits/rate-limit.js';
import { rateLimitKey } from '../../../src/store/keys.js';
import { createMemoryStore } from '../../../src/store/memory-store.js';
import { createRedisClient, waitForRedis } from '../../../src/store/redis-client.js';
import { createRedisStore } from '../../../src/store/redis-store.js';
import type { Clock, Store } from '../../../src/store/types.js';
import { uniqueTenant } from '../../unit/store/store-contract.js';

const REDIS_URL = 'redis://127.0.0.1:6379';

function manualClock(): Clock & { advance(ms: number): void } {
  let now = 1_700_000_000_000;
  return { now: () => now, advance: (ms) => void (now += ms) };
}

describe('rate limiter on the memory store (demo mode)', () => {
  it('admits burst + 1, then refuses with 429, Retry-After and the RateLimit fields', async () => {
    const clock = manualClock();
    const limiter = createRateLimiter({ store: createMemoryStore({ clock }), fallback: 'refuse' });
    const policy = { perSecond: 20, burst: 40 };
    const first = await limiter.check('acme', policy);
    expect(first).toMatchObject({ allowed: true, limit: 41, remaining: 40, source: 'store' });
    expect(first.headers).toEqual({
      'RateLimit-Policy': 'tenant;q=41;w=3',
      RateLimit: 'tenant;r=40;t=1',
    });
    expect(first.error).toBeUndefined();
    for (let i = 0; i < 40; i += 1)
      expect((await limiter.check('acme', policy)).allowed).toBe(true);

    const refused = await limiter.check('acme', policy);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterSeconds).toBeCloseTo(0.05, 6);
    expect(refused.headers).toEqual({
      'RateLimit-Policy': 'tenant;q=41;w=3',
      RateLimit: 'tenant;r=0;t=1',
      'Retry-After': '1',
    });
    expect(refused.error).toBeInstanceOf(GatewayError);
    expect(refused.error).toMatchObject({
      code: 'RATE_LIMITED',
      status: 429,
      headers: refused.headers,
      extensions: { code: 'RATE_LIMITED', reason: 'RATE', retryAfterSeconds: 1 },
    });

    // 50 ms later one more fits; other tenants and subjects were never charged.
    clock.advance(50);
    expect((await limiter.check('acme', policy)).allowed).toBe(true);
    expect((await limiter.check('globex', policy)).remaining).toBe(40);
    const subject = await limiter.check('acme', policy, { subject: 'alice' });
    expect(subject).toMatchObject({ allowed: true, remaining: 40 });
    expect(subject.headers.RateLimit).toBe('subject;r=40;t=1');
  });

  it('rounds Retry-After up to whole seconds', () => {
    const headers = rateLimitHeaders(
      { allowed: false, limit: 1, remaining: 0, resetSeconds: 2.2, retryAfterSeconds: 2.2 },
      { perSecond: 0.25, burst: 0 },
    );
    expect(headers).toEqual({
      'RateLimit-Policy': 'tenant;q=1;w=4',
      RateLimit: 'tenant;r=0;t=3',
      'Retry-After': '3',
    });
  });

  it('rejects programming errors with TypeError instead of degrading', async () => {
    const limiter = createRateLimiter({ store: createMemoryStore(), fallback: 'allow' });
    await expect(limiter.check('Not A Tenant', { perSecond: 1, burst: 1 })).rejects.toBeInstanceOf(
      TypeError,
    );
    await expect(limiter.check('acme', { perSecond: -1, burst: 1 })).rejects.toBeInstanceOf(
      TypeError,
    );
    expect(() =>
      createRateLimiter({ store: createMemoryStore(), fallback: 'maybe' as 'allow' }),
    ).toThrow(TypeError);
  });

  it('falls back when the store is unavailable (closed)', async () => {
    const store = createMemoryStore();
    await store.close();
    const policy = { perSecond: 1, burst: 0 };
    const local = createRateLimiter({ store, fallback: 'local' });
    expect(await local.check('acme', policy)).toMatchObject({ allowed: true, source: 'local' });
    expect(await local.check('acme', policy)).toMatchObject({ allowed: false, source: 'local' });
    const refuse = createRateLimiter({ store, fallback: 'refuse' });
    expect((await refuse.check('acme', policy)).error).toMatchObject({
      code: 'RATE_LIMITED',
      status: 503,
    });
    const allow = createRateLimiter({ store, fallback: 'allow' });
    expect(await allow.check('acme', policy)).toMatchObject({ allowed: true, source: 'none' });
  });
});

describe('rate limiter on Redis: replicas share one limit', () => {
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
    const admin = replicas[0]?.client;
    for (const tenant of tenants) {
      await admin?.del(rateLimitKey(tenant), rateLimitKey(tenant, 'alice'));
    }
    for (const { client, store } of replicas) {
      await store.close();
      await client.quit();
    }
  });

  it('a burst spent on one replica is spent on the other', async () => {
    const tenant = uniqueTenant('replicas');
    tenants.push(tenant);
    const [a, b] = replicas.map(({ store }) => createRateLimiter({ store, fallback: 'refuse' }));
    const policy = { perSecond: 1, burst: 3 };
    for (let i = 0; i < 4; i += 1) expect((await a!.check(tenant, policy)).allowed).toBe(true);
    const refused = await b!.check(tenant, policy);
    expect(refused).toMatchObject({ allowed: false, remaining: 0, source: 'store' });
    expect(refused.error?.code).toBe('RATE_LIMITED');
    expect(Number(refused.headers['Retry-After'])).toBeGreaterThanOrEqual(1);
    // A subject's bucket is separate from the tenant's.
    expect((await b!.check(tenant, policy, { subject: 'alice' })).allowed).toBe(true);
  });
});
