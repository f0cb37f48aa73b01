import type { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedisClient, waitForRedis } from '../../../src/store/redis-client.js';
import { createRedisStore } from '../../../src/store/redis-store.js';
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
});
