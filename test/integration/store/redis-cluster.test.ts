import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../../src/limits/rate-limit.js';
import {
  concurrencyKey,
  persistedQueryKey,
  predictionKey,
  rateLimitKey,
  tenantConfigKey,
  tenantKey,
} from '../../../src/store/keys.js';
import { createRedisClient, waitForRedis } from '../../../src/store/redis-client.js';
import { createRedisStore } from '../../../src/store/redis-store.js';
import type { Store } from '../../../src/store/types.js';
import { startRedisCluster, type RedisClusterProcesses } from '../../support/redis-cluster.js';
import { describeStoreContract, uniqueTenant } from '../../unit/store/store-contract.js';

/** A throwaway 3-master Redis Cluster on free loopback ports (test/support/redis-cluster.ts). */
let cluster: RedisClusterProcesses;

async function startCluster(): Promise<void> {
  cluster = await startRedisCluster(3);
}

async function stopCluster(): Promise<void> {
  await cluster?.stop();
}

describe('Redis Cluster (3 masters, own processes)', () => {
  beforeAll(startCluster, 40_000);
  afterAll(stopCluster);

  async function connect(): Promise<Cluster> {
    const client = createRedisClient(
      { clusterNodes: [...cluster.nodes] },
      { commandTimeoutMs: 2_000 },
    ) as Cluster;
    await waitForRedis(client, 10_000);
    return client;
  }

  // The whole Store contract again, through the Cluster client: multi-key calls across
  // tenants (different slots), scripts, leases and pub/sub.
  describeStoreContract('redis cluster', async () => {
    const client = await connect();
    const store = createRedisStore({ client, timeoutMs: 2_000 });
    return {
      store,
      advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      cleanup: () => store.close(),
    };
  });

  describe('rate limiting and slots', () => {
    let client: Cluster;
    let store: Store;
    beforeAll(async () => {
      client = await connect();
      store = createRedisStore({ client, closeClient: false, timeoutMs: 2_000 });
    });
    afterAll(async () => {
      await store.close();
      await client.quit();
    });

    it('runs the GCRA limiter through the Cluster client', async () => {
      const limiter = createRateLimiter({ store, fallback: 'refuse' });
      const tenant = uniqueTenant('cluster');
      const policy = { perSecond: 1, burst: 2 };
      const results = [];
      for (let i = 0; i < 4; i += 1) results.push(await limiter.check(tenant, policy));
      expect(results.map((r) => [r.allowed, r.remaining, r.source])).toEqual([
        [true, 2, 'store'],
        [true, 1, 'store'],
        [true, 0, 'store'],
        [false, 0, 'store'],
      ]);
      expect(results[3]?.error?.code).toBe('RATE_LIMITED');
      expect(results[3]?.headers).toMatchObject({
        'Retry-After': '1',
        RateLimit: 'tenant;r=0;t=1',
      });
      // The state is where the key says, on the node that owns the tenant's slot.
      expect(await client.get(rateLimitKey(tenant))).toMatch(/^\d+$/);
    });

    it("puts all of one tenant's keys in one slot", async () => {
      for (const tenant of ['acme', 'globex', uniqueTenant('slot')]) {
        const keys = [
          rateLimitKey(tenant),
          rateLimitKey(tenant, 'alice'),
          rateLimitKey(tenant, '}{evil'),
          concurrencyKey(tenant),
          predictionKey(tenant, 'churn', '2', 'ab12'),
          persistedQueryKey(tenant, 'f00d'),
          tenantConfigKey(tenant),
          tenantKey(tenant, 'anything', 'a:b', '{c}'),
        ];
        const slots = new Set<number>();
        for (const key of keys) slots.add(Number(await client.cluster('KEYSLOT', key)));
        const tagSlot = Number(await client.cluster('KEYSLOT', `{${tenant}}`));
        expect([...slots]).toEqual([tagSlot]);
      }
    });
  });
});
