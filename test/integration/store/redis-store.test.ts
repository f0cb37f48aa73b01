import type { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedisClient, waitForRedis } from '../../../src/store/redis-client.js';
import { concurrencyKey, rateLimitKey } from '../../../src/store/keys.js';
import { createRedisStore, RELEASE_COALESCE_MS } from '../../../src/store/redis-store.js';
import { describeStoreContract, type StoreFixture } from '../../unit/store/store-contract.js';

const REDIS_URL = 'redis://127.0.0.1:6379';

/** Deletes every key of the given tenants (the suite's namespace: unique tenant ids). */
export async function deleteTenantKeys(client: Redis, tenants: readonly string[]): Promise<void> {
  for (const tenant of tenants) {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(
        cursor,
        'MATCH',
        `atrium:{${tenant}}:*`,
        'COUNT',
        1000,
      );
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
}

async function singleNodeFixture(): Promise<StoreFixture> {
  // Generous timeouts: this machine runs other suites in parallel, and this suite is about
  // behaviour, not failure (see redis-outage.test.ts for that).
  const client = createRedisClient({ url: REDIS_URL }, { commandTimeoutMs: 2_000 });
  await waitForRedis(client, 5_000);
  const store = createRedisStore({ client, timeoutMs: 2_000 });
  return {
    store,
    advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    cleanup: async (tenants) => {
      const admin = createRedisClient({ url: REDIS_URL }, { commandTimeoutMs: 2_000 }) as Redis;
      await waitForRedis(admin, 5_000);
      await deleteTenantKeys(admin, tenants);
      await admin.quit();
      await store.close();
    },
  };
}

describeStoreContract('redis (single node)', singleNodeFixture);

describe('redis store', () => {
  it('does not close a client it was told not to own', async () => {
    const client: Redis | Cluster = createRedisClient(
      { url: REDIS_URL },
      { commandTimeoutMs: 2_000 },
    );
    await waitForRedis(client, 5_000);
    const store = createRedisStore({ client, closeClient: false });
    await store.close();
    expect(await client.ping()).toBe('PONG');
    await client.quit();
  });

  it('rejects bad options with TypeError', () => {
    const client = createRedisClient({ url: REDIS_URL });
    expect(() => createRedisStore({ client, timeoutMs: 0 })).toThrow(TypeError);
    expect(() => createRedisStore({ client, breakerThreshold: 0 })).toThrow(TypeError);
    expect(() => createRedisClient({ clusterNodes: [] })).toThrow(TypeError);
    expect(() => createRedisClient({ clusterNodes: ['no-port'] })).toThrow(TypeError);
    client.disconnect();
  });

  it('sends a lease release with the next admission of its key, alone after a moment, and before closing', async () => {
    const tenant = `carry-${process.pid}-${Date.now()}`;
    const other = `${tenant}-other`;
    const client = createRedisClient({ url: REDIS_URL }, { commandTimeoutMs: 2_000 });
    await waitForRedis(client, 5_000);
    const store = createRedisStore({ client, timeoutMs: 2_000 });
    const monitor = await (client as Redis).duplicate().monitor();
    // What this store sent (not what the scripts ran inside Redis, source `lua`).
    const sent: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((arg) => arg.includes(tenant))) sent.push(args);
    });
    const admitting = (id: string, of = tenant) =>
      store.admit({
        rate: { key: rateLimitKey(of), policy: { perSecond: 1_000, burst: 1_000 } },
        lease: { key: concurrencyKey(of), leaseId: id, limit: 2, ttlMs: 30_000 },
      });
    const lastSent = () => sent.at(-1)?.map((arg) => arg.toLowerCase());
    try {
      // The first script call may load it (EVAL after NOSCRIPT): done before counting.
      expect((await admitting('a')).lease).toEqual({ acquired: true, inFlight: 1 });
      expect((await admitting('b')).lease).toEqual({ acquired: true, inFlight: 2 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      // MONITOR reports a little after the reply: let it catch up before counting anew.
      await new Promise((resolve) => setTimeout(resolve, 100));
      sent.length = 0;

      // Released, then at once another admission on the key: one script call gives both back
      // before it counts, so the limit of 2 admits the new lease.
      const releasedA = store.releaseLease(concurrencyKey(tenant), 'a');
      const releasedB = store.releaseLease(concurrencyKey(tenant), 'b');
      // Another tenant's admission, in the same moment, carries none of them.
      const [x, c] = await Promise.all([admitting('x', other), admitting('c')]);
      expect(x.lease).toEqual({ acquired: true, inFlight: 1 });
      expect(c.lease).toEqual({ acquired: true, inFlight: 1 });
      await Promise.all([releasedA, releasedB]);
      await eventuallySent(sent, 2);
      expect(sent.map((args) => args[0]!.toLowerCase())).toEqual(['evalsha', 'evalsha']);
      expect(sent[0]!.slice(-1)).toEqual(['x']);
      expect(sent[1]!.slice(-3)).toEqual(['c', 'a', 'b']);
      expect(await (client as Redis).zrange(concurrencyKey(tenant), 0, -1)).toEqual(['c']);

      // With no admission to carry it, a release goes alone, soon.
      // MONITOR reports a little after the reply: let it catch up before counting anew.
      await new Promise((resolve) => setTimeout(resolve, 100));
      sent.length = 0;
      await store.releaseLease(concurrencyKey(tenant), 'c');
      await eventuallySent(sent, 1);
      expect(lastSent()).toEqual(['zrem', concurrencyKey(tenant), 'c']);
      expect(await (client as Redis).zcard(concurrencyKey(tenant))).toBe(0);

      // Closing sends what still waits.
      expect((await admitting('d')).lease).toEqual({ acquired: true, inFlight: 1 });
      // MONITOR reports a little after the reply: let it catch up before counting anew.
      await new Promise((resolve) => setTimeout(resolve, 100));
      sent.length = 0;
      const releasedD = store.releaseLease(concurrencyKey(tenant), 'd');
      await store.close();
      await releasedD;
      await eventuallySent(sent, 1);
      expect(lastSent()).toEqual(['zrem', concurrencyKey(tenant), 'd']);
      await expect(store.releaseLease(concurrencyKey(tenant), 'e')).rejects.toMatchObject({
        code: 'STORE_UNAVAILABLE',
      });
    } finally {
      monitor.disconnect();
      const admin = createRedisClient({ url: REDIS_URL }, { commandTimeoutMs: 2_000 }) as Redis;
      await waitForRedis(admin, 5_000);
      await deleteTenantKeys(admin, [tenant, other]);
      await admin.quit();
      await store.close();
    }
  });
});

/** MONITOR reports a little after the reply: wait until `count` commands were seen. */
async function eventuallySent(sent: readonly unknown[], count: number): Promise<void> {
  for (let waited = 0; sent.length < count && waited < 2_000; waited += 10) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(sent).toHaveLength(count);
  // Nothing more arrives after the coalescing window.
  await new Promise((resolve) => setTimeout(resolve, RELEASE_COALESCE_MS * 20));
  expect(sent).toHaveLength(count);
}
