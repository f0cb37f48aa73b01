import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createTenantPools,
  type TenantPoolSpec,
} from '../../../../src/backends/data/tenant-pools.js';

/** An in-memory stand-in for pg.Pool: this suite tests the cache's bookkeeping only. */
function fakePools() {
  const created: { spec: TenantPoolSpec; ended: boolean; released: (boolean | undefined)[] }[] = [];
  return {
    created,
    createPool(spec: TenantPoolSpec) {
      const record = { spec, ended: false, released: [] as (boolean | undefined)[] };
      created.push(record);
      return {
        connect: async () => {
          if (record.ended) throw new Error('Cannot use a pool after calling end on the pool');
          return { release: (destroy?: boolean | Error) => record.released.push(destroy === true) };
        },
        end: async () => {
          record.ended = true;
        },
      };
    },
  };
}

const spec = (tenantId: string, url = `postgres://db/${tenantId}`): TenantPoolSpec => ({
  tenantId,
  url,
  poolMax: 2,
});

afterEach(() => {
  vi.useRealTimers();
});

describe('createTenantPools', () => {
  it('evicts the least recently used idle pool when full', async () => {
    const fake = fakePools();
    const pools = createTenantPools({ maxPools: 2, idleMs: 60_000, createPool: fake.createPool });
    (await pools.acquire(spec('a'))).release(false);
    (await pools.acquire(spec('b'))).release(false);
    (await pools.acquire(spec('a'))).release(false); // a is now the most recent
    (await pools.acquire(spec('c'))).release(false);
    expect(pools.openTenants()).toEqual(['a', 'c']);
    expect(fake.created.map((p) => [p.spec.tenantId, p.ended])).toEqual([
      ['a', false],
      ['b', true],
      ['c', false],
    ]);
    await pools.close();
    expect(fake.created.every((p) => p.ended)).toBe(true);
  });

  it('never closes a busy pool; it trims back once the pool is released', async () => {
    const fake = fakePools();
    const pools = createTenantPools({ maxPools: 1, idleMs: 60_000, createPool: fake.createPool });
    const busy = await pools.acquire(spec('a'));
    const other = await pools.acquire(spec('b'));
    expect(pools.openTenants()).toEqual(['a', 'b']);
    expect(fake.created[0]!.ended).toBe(false);
    busy.release(false);
    // a went idle and is the least recently used: it goes.
    expect(pools.openTenants()).toEqual(['b']);
    expect(fake.created[0]!.ended).toBe(true);
    other.release(true);
    expect(fake.created[1]!.released).toEqual([true]);
    await pools.close();
  });

  it('closes a pool idle for idleMs, counting from the last release', async () => {
    vi.useFakeTimers();
    const fake = fakePools();
    const pools = createTenantPools({ maxPools: 5, idleMs: 1_000, createPool: fake.createPool });
    const lease = await pools.acquire(spec('a'));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fake.created[0]!.ended).toBe(false); // in use all along
    lease.release(false);
    await vi.advanceTimersByTimeAsync(999);
    expect(fake.created[0]!.ended).toBe(false);
    await vi.advanceTimersByTimeAsync(2);
    expect(fake.created[0]!.ended).toBe(true);
    expect(pools.openTenants()).toEqual([]);
    await pools.close();
  });

  it('replaces a pool whose URL changed, closing the old one when it is idle', async () => {
    const fake = fakePools();
    const pools = createTenantPools({ maxPools: 5, idleMs: 60_000, createPool: fake.createPool });
    const old = await pools.acquire(spec('a', 'postgres://old/a'));
    (await pools.acquire(spec('a', 'postgres://new/a'))).release(false);
    expect(fake.created.map((p) => p.spec.url)).toEqual(['postgres://old/a', 'postgres://new/a']);
    expect(fake.created[0]!.ended).toBe(false);
    old.release(false);
    expect(fake.created[0]!.ended).toBe(true);
    await pools.close();
  });

  it('does not count a failed connect as a lease, and refuses work after close', async () => {
    const pools = createTenantPools({
      maxPools: 1,
      idleMs: 60_000,
      createPool: () => ({
        connect: () => Promise.reject(new Error('ECONNREFUSED')),
        end: async () => {},
      }),
    });
    await expect(pools.acquire(spec('a'))).rejects.toThrow('ECONNREFUSED');
    await expect(pools.acquire(spec('b'))).rejects.toThrow('ECONNREFUSED');
    // a was idle (its failed connect released it), so b could evict it.
    expect(pools.openTenants()).toEqual(['b']);
    await pools.close();
    await expect(pools.acquire(spec('a'))).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
  });

  it('validates its limits', () => {
    const { createPool } = fakePools();
    expect(() => createTenantPools({ maxPools: 0, idleMs: 1, createPool })).toThrow(TypeError);
    expect(() => createTenantPools({ maxPools: 1, idleMs: 0, createPool })).toThrow(TypeError);
  });
});
