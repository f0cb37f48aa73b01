import { afterEach, describe, expect, it } from 'vitest';
import {
  createFairPool,
  type FairPoolEvent,
  type FairPoolLease,
  type FairPoolOptions,
} from '../../../../src/backends/data/fair-pool.js';

const pools: { close(): void }[] = [];
afterEach(() => pools.splice(0).forEach((p) => p.close()));

/** A fair pool over numbered connections; `connects` counts calls to the underlying pool. */
function setup(options: Partial<FairPoolOptions<number>> = {}) {
  const events: FairPoolEvent[] = [];
  let connects = 0;
  const pool = createFairPool<number>({
    size: 4,
    tenantShareMax: 2,
    acquireTimeoutMs: 5_000,
    connect: () => Promise.resolve(++connects),
    onEvent: (event) => events.push(event),
    ...options,
  });
  pools.push(pool);
  return { pool, events, connects: () => connects };
}

/** Resolves which of `promises` have settled by now (after pending callbacks ran). */
async function settled<T>(promises: Promise<T>[]): Promise<boolean[]> {
  const flags = promises.map(() => false);
  promises.forEach((p, i) => void p.then(() => (flags[i] = true)).catch(() => (flags[i] = true)));
  await new Promise((resolve) => setImmediate(resolve));
  return flags;
}

describe('createFairPool', () => {
  it('lets one tenant hold at most its share; others still get the rest', async () => {
    const { pool, connects } = setup();
    const a = [pool.acquire('a'), pool.acquire('a'), pool.acquire('a')];
    expect(await settled(a)).toEqual([true, true, false]);
    const b = [pool.acquire('b'), pool.acquire('b')];
    expect(await settled(b)).toEqual([true, true]);
    expect(connects()).toBe(4);
    // a's third waits for one of a's own, not for the pool.
    (await a[0]!).release();
    expect(await settled([a[2]!])).toEqual([true]);
  });

  it('serves waiting tenants in turn when the pool is full', async () => {
    const { pool } = setup({ size: 2, tenantShareMax: 2 });
    const first = await Promise.all([pool.acquire('a'), pool.acquire('a')]);
    const order: string[] = [];
    const waits = ['a', 'a', 'a', 'b', 'c'].map((t) =>
      pool.acquire(t).then((lease) => {
        order.push(t);
        return lease;
      }),
    );
    for (const lease of first) lease.release();
    await settled(waits);
    // Two slots freed: a (first in line), then b, though a has two more waiting.
    expect(order).toEqual(['a', 'b']);
    const next = (await Promise.all(waits.slice(0, 1).concat(waits.slice(3, 4)))) as [
      FairPoolLease<number>,
      FairPoolLease<number>,
    ];
    next[0].release();
    next[1].release();
    await settled(waits);
    expect(order).toEqual(['a', 'b', 'c', 'a']);
  });

  it('does not let a newcomer overtake tenants already waiting', async () => {
    const { pool } = setup({ size: 1, tenantShareMax: 1 });
    const held = await pool.acquire('a');
    const waiting = pool.acquire('b');
    held.release();
    const late = pool.acquire('c');
    expect(await settled([waiting, late])).toEqual([true, false]);
  });

  it('fails an acquisition that waits too long with BACKEND_TIMEOUT, and forgets it', async () => {
    const { pool, events } = setup({ size: 1, tenantShareMax: 1, acquireTimeoutMs: 20 });
    const held = await pool.acquire('a');
    await expect(pool.acquire('b')).rejects.toMatchObject({ code: 'BACKEND_TIMEOUT' });
    expect(events.at(-1)).toMatchObject({ type: 'timed-out', tenantId: 'b', waitingTotal: 0 });
    held.release();
    expect((await pool.acquire('b')).client).toBe(2);
  });

  it('frees the slot of a failed connect and passes the error on', async () => {
    let fail = true;
    const { pool } = setup({
      size: 1,
      tenantShareMax: 1,
      connect: () => (fail ? Promise.reject(new Error('refused')) : Promise.resolve(7)),
    });
    await expect(pool.acquire('a')).rejects.toThrow('refused');
    fail = false;
    expect((await pool.acquire('a')).client).toBe(7);
  });

  it('counts a release once, and reports holdings and queues', async () => {
    const { pool, events } = setup({ size: 2, tenantShareMax: 1 });
    const lease = await pool.acquire('a');
    const queued = pool.acquire('a');
    lease.release();
    lease.release();
    await queued;
    expect(events.map((e) => [e.type, e.held, e.waiting, e.waitingTotal])).toEqual([
      ['acquired', 1, 0, 0],
      ['queued', 1, 1, 1],
      ['released', 0, 1, 1],
      ['acquired', 1, 0, 0],
    ]);
    expect(await settled([pool.acquire('b')])).toEqual([true]);
  });

  it('fails waiting acquisitions when closed, and new ones after', async () => {
    const { pool } = setup({ size: 1, tenantShareMax: 1 });
    await pool.acquire('a');
    const waiting = pool.acquire('b');
    pool.close();
    await expect(waiting).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    await expect(pool.acquire('c')).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
  });

  it('rejects invalid options naming the field', () => {
    const connect = () => Promise.resolve(1);
    expect(() =>
      createFairPool({ size: 0, tenantShareMax: 1, acquireTimeoutMs: 1, connect }),
    ).toThrow(/size/);
    expect(() =>
      createFairPool({ size: 2, tenantShareMax: 3, acquireTimeoutMs: 1, connect }),
    ).toThrow(/tenantShareMax \(3\)/);
  });
});
