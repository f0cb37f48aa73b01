import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../../src/store/memory-store.js';
import type { Clock } from '../../../src/store/types.js';
import { describeStoreContract } from './store-contract.js';

/** A clock that moves only when told. */
function manualClock(start = 1_700_000_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => now, advance: (ms) => void (now += ms) };
}

describeStoreContract('memory', async () => {
  const clock = manualClock();
  return {
    store: createMemoryStore({ clock }),
    advance: async (ms) => clock.advance(ms),
    cleanup: async () => undefined,
  };
});

describe('memory store', () => {
  it('evicts the least recently used keys beyond maxEntries', async () => {
    const store = createMemoryStore({ maxEntries: 3 });
    for (const key of ['a', 'b', 'c']) await store.set(key, key);
    await store.get('a'); // a is now the most recent
    await store.set('d', 'd');
    expect(await store.mget(['a', 'b', 'c', 'd'])).toEqual(['a', null, 'c', 'd']);
  });

  it('bounds its memory by bytes, not only by count: 300 values of 100 KB do not all stay', async () => {
    const store = createMemoryStore({ maxBytes: 4 * 1024 * 1024 });
    const value = 'v'.repeat(100 * 1024);
    for (let i = 0; i < 300; i++) await store.set(`k${i}`, value);
    const kept = (await store.mget(Array.from({ length: 300 }, (_, i) => `k${i}`))).filter(
      (v) => v !== null,
    ).length;
    // 100 KB characters are 200 KB of UTF-16: at most 20 fit in 4 MiB, the most recent ones.
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(20);
    expect(await store.get('k299')).toBe(value);
    expect(await store.get('k0')).toBeNull();
    expect(() => createMemoryStore({ maxBytes: 0 })).toThrow(/maxBytes/);
  });

  it('keeps delivering to other subscribers when one handler throws', async () => {
    const failures: unknown[] = [];
    const store = createMemoryStore({ onHandlerError: (error) => failures.push(error) });
    const seen: string[] = [];
    await store.subscribe('ch', () => {
      throw new Error('handler bug');
    });
    await store.subscribe('ch', (m) => seen.push(m));
    await store.publish('ch', 'hello');
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual(['hello']);
    expect(failures).toHaveLength(1);
  });

  it('rejects a lease on a string key and a string read of a lease key as STORE_FAILED', async () => {
    const store = createMemoryStore();
    await store.set('s', 'v');
    await expect(
      store.acquireLease('s', { leaseId: 'x', limit: 1, ttlMs: 10 }),
    ).rejects.toMatchObject({
      code: 'STORE_FAILED',
    });
    await store.acquireLease('l', { leaseId: 'x', limit: 1, ttlMs: 1000 });
    await expect(store.get('l')).rejects.toMatchObject({ code: 'STORE_FAILED' });
    expect(await store.mget(['l'])).toEqual([null]);
  });

  it('rejects a bad maxEntries at construction', () => {
    expect(() => createMemoryStore({ maxEntries: 0 })).toThrow(TypeError);
  });
});
