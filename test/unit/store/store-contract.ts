import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStoreError } from '../../../src/store/errors.js';
import {
  concurrencyKey,
  persistedQueryKey,
  persistedQueryLedgerKeys,
  predictionKey,
  rateLimitKey,
  tenantKey,
} from '../../../src/store/keys.js';
import type { Store } from '../../../src/store/types.js';
import { eventually } from '../../support/eventually.js';

/**
 * The one behavioural suite of the `Store` contract, run against every implementation: the
 * memory store (with a clock the test moves), the Redis store on a single node and on a
 * Redis Cluster (real time, so the numbers below leave room for a loaded machine).
 *
 * Why real time for Redis rather than a `now` argument to the scripts: the scripts read
 * `TIME` so that replicas cannot disagree; a clock parameter would exist only for tests and
 * would let a caller write state in the future. Small rates (2/s) make the real-time version
 * robust: each assertion tolerates hundreds of milliseconds of scheduling delay.
 */
export interface StoreFixture {
  readonly store: Store;
  /** Lets `ms` pass for the store: moves a manual clock, or sleeps. */
  advance(ms: number): Promise<void>;
  /** Deletes what the suite wrote, closes what it opened. */
  cleanup(tenants: readonly string[]): Promise<void>;
}

export function uniqueTenant(label: string): string {
  return `t-${label}-${randomBytes(4).toString('hex')}`;
}

export { eventually };

export function describeStoreContract(
  name: string,
  createFixture: () => Promise<StoreFixture>,
): void {
  describe(`Store contract: ${name}`, () => {
    let fixture: StoreFixture;
    let store: Store;
    const acme = uniqueTenant('acme');
    const globex = uniqueTenant('globex');
    const initech = uniqueTenant('initech');

    beforeAll(async () => {
      fixture = await createFixture();
      store = fixture.store;
    });
    afterAll(async () => {
      await fixture?.cleanup([acme, globex, initech]);
    });

    it('is available and answers ping', async () => {
      expect(store.isAvailable()).toBe(true);
      expect(store.status().state).toBe('ready');
      await expect(store.ping()).resolves.toBeUndefined();
    });

    it('sets, gets and deletes string values', async () => {
      const key = persistedQueryKey(acme, 'abc');
      expect(await store.get(key)).toBeNull();
      await store.set(key, '{"query":"{ a }"}');
      expect(await store.get(key)).toBe('{"query":"{ a }"}');
      await store.set(key, 'v2');
      expect(await store.get(key)).toBe('v2');
      expect(await store.del(key)).toBe(true);
      expect(await store.del(key)).toBe(false);
      expect(await store.get(key)).toBeNull();
    });

    it('keeps two tenants apart under the same key parts', async () => {
      await store.set(persistedQueryKey(acme, 'same'), 'acme');
      await store.set(persistedQueryKey(globex, 'same'), 'globex');
      expect(await store.get(persistedQueryKey(acme, 'same'))).toBe('acme');
      expect(await store.get(persistedQueryKey(globex, 'same'))).toBe('globex');
    });

    it('mgets in order, with null for missing keys, across tenants', async () => {
      const a = predictionKey(acme, 'churn', '2', 'h1');
      const b = predictionKey(globex, 'churn', '2', 'h1');
      const missing = predictionKey(acme, 'churn', '2', 'nope');
      await store.set(a, '0.1');
      await store.set(b, '0.9');
      expect(await store.mget([a, missing, b, a])).toEqual(['0.1', null, '0.9', '0.1']);
      expect(await store.mget([])).toEqual([]);
    });

    it('writes many entries with one TTL, and every TTL expires', async () => {
      const entries = [
        { key: predictionKey(acme, 'fraud', '1', 'x'), value: 'ax' },
        { key: predictionKey(acme, 'fraud', '1', 'y'), value: 'ay' },
        { key: predictionKey(globex, 'fraud', '1', 'x'), value: 'gx' },
      ];
      await store.msetWithTtl(entries, 1);
      const single = tenantKey(acme, 'ttl-test');
      await store.set(single, 'soon gone', { ttlSeconds: 1 });
      const durable = tenantKey(acme, 'ttl-test', 'durable');
      await store.set(durable, 'stays', { ttlSeconds: 60 });
      expect(await store.mget(entries.map((e) => e.key))).toEqual(['ax', 'ay', 'gx']);
      expect(await store.get(single)).toBe('soon gone');

      await fixture.advance(1_200);
      expect(await store.mget(entries.map((e) => e.key))).toEqual([null, null, null]);
      expect(await store.get(single)).toBeNull();
      expect(await store.get(durable)).toBe('stays');
      await store.msetWithTtl([], 1);
    });

    it('rejects caller mistakes with TypeError before doing anything', async () => {
      const key = tenantKey(acme, 'bad');
      for (const ttlSeconds of [0, -1, 1.5, Number.NaN]) {
        await expect(store.set(key, 'v', { ttlSeconds })).rejects.toBeInstanceOf(TypeError);
      }
      await expect(store.msetWithTtl([{ key, value: 'v' }], 0)).rejects.toBeInstanceOf(TypeError);
      await expect(store.set(key, 42 as unknown as string)).rejects.toBeInstanceOf(TypeError);
      await expect(store.get('')).rejects.toBeInstanceOf(TypeError);
      await expect(store.rateLimit(key, { perSecond: 0, burst: 1 })).rejects.toBeInstanceOf(
        TypeError,
      );
      await expect(
        store.rateLimit(key, { perSecond: 1, burst: 0, cost: 2 }),
      ).rejects.toBeInstanceOf(TypeError);
      await expect(
        store.acquireLease(key, { leaseId: 'a', limit: 0, ttlMs: 1000 }),
      ).rejects.toBeInstanceOf(TypeError);
      expect(await store.get(key)).toBeNull();
    });

    it('GCRA admits the burst, then the steady rate', async () => {
      // 2 per second with a burst of 2: 3 at once, then one per 500 ms.
      const policy = { perSecond: 2, burst: 2 };
      const key = rateLimitKey(acme);
      const first = await store.rateLimit(key, policy);
      const second = await store.rateLimit(key, policy);
      const third = await store.rateLimit(key, policy);
      expect([first.allowed, second.allowed, third.allowed]).toEqual([true, true, true]);
      expect([first.remaining, second.remaining, third.remaining]).toEqual([2, 1, 0]);
      expect(first.limit).toBe(3);
      expect(first.retryAfterSeconds).toBe(0);
      // Full again 1.5 s after the first request.
      expect(third.resetSeconds).toBeGreaterThan(1.0);
      expect(third.resetSeconds).toBeLessThanOrEqual(1.5);

      const refused = await store.rateLimit(key, policy);
      expect(refused.allowed).toBe(false);
      expect(refused.remaining).toBe(0);
      expect(refused.limit).toBe(3);
      expect(refused.retryAfterSeconds).toBeGreaterThan(0);
      expect(refused.retryAfterSeconds).toBeLessThanOrEqual(0.5);

      // A refused request is not charged: after one interval exactly one more is admitted.
      await fixture.advance(600);
      const steady = await store.rateLimit(key, policy);
      expect(steady.allowed).toBe(true);
      expect(steady.remaining).toBe(0);
      expect((await store.rateLimit(key, policy)).allowed).toBe(false);

      // Other buckets are untouched: another tenant, and a subject within the tenant.
      expect((await store.rateLimit(rateLimitKey(globex), policy)).remaining).toBe(2);
      expect((await store.rateLimit(rateLimitKey(acme, 'alice'), policy)).remaining).toBe(2);
    });

    it('GCRA charges the cost of a request', async () => {
      const policy = { perSecond: 2, burst: 3, cost: 2 };
      const key = rateLimitKey(acme, 'costly');
      expect(await store.rateLimit(key, policy)).toMatchObject({
        allowed: true,
        limit: 4,
        remaining: 2,
      });
      expect(await store.rateLimit(key, policy)).toMatchObject({ allowed: true, remaining: 0 });
      expect((await store.rateLimit(key, policy)).allowed).toBe(false);
    });

    it('GCRA with no burst paces strictly', async () => {
      const policy = { perSecond: 2, burst: 0 };
      const key = rateLimitKey(acme, 'paced');
      const first = await store.rateLimit(key, policy);
      expect(first).toMatchObject({ allowed: true, limit: 1, remaining: 0 });
      expect((await store.rateLimit(key, policy)).allowed).toBe(false);
    });

    it('leases hold the limit, free on release, and expire when not released', async () => {
      const key = concurrencyKey(acme);
      const lease = (leaseId: string, ttlMs = 60_000) =>
        store.acquireLease(key, { leaseId, limit: 2, ttlMs });
      expect(await lease('a')).toEqual({ acquired: true, inFlight: 1 });
      expect(await lease('b')).toEqual({ acquired: true, inFlight: 2 });
      expect(await lease('c')).toEqual({ acquired: false, inFlight: 2 });
      // Another tenant has its own slots.
      expect(
        await store.acquireLease(concurrencyKey(globex), { leaseId: 'a', limit: 1, ttlMs: 60_000 }),
      ).toEqual({
        acquired: true,
        inFlight: 1,
      });

      await store.releaseLease(key, 'a');
      await store.releaseLease(key, 'a');
      await store.releaseLease(key, 'never-held');
      expect(await lease('c')).toEqual({ acquired: true, inFlight: 2 });
      await store.releaseLease(key, 'b');
      await store.releaseLease(key, 'c');

      // A crashed holder: leases that are never released are reclaimed after their TTL.
      expect((await lease('crash-1', 300)).acquired).toBe(true);
      expect((await lease('crash-2', 300)).acquired).toBe(true);
      expect((await lease('d')).acquired).toBe(false);
      await fixture.advance(450);
      expect(await lease('d')).toEqual({ acquired: true, inFlight: 1 });
    });

    it('admits in one step: the rate first, the lease only when the rate allows', async () => {
      const rate = { key: rateLimitKey(initech), policy: { perSecond: 2, burst: 1 } };
      const lease = (leaseId: string) => ({
        key: concurrencyKey(initech),
        leaseId,
        limit: 1,
        ttlMs: 60_000,
      });
      // Allowed, and the slot taken.
      const first = await store.admit({ rate, lease: lease('a') });
      expect(first.rate).toMatchObject({ allowed: true, limit: 2, remaining: 1 });
      expect(first.lease).toEqual({ acquired: true, inFlight: 1 });
      // Allowed by the rate (charged), refused a slot: the limit is 1.
      const second = await store.admit({ rate, lease: lease('b') });
      expect(second.rate).toMatchObject({ allowed: true, remaining: 0 });
      expect(second.lease).toEqual({ acquired: false, inFlight: 1 });
      // Refused by the rate: no slot asked for, none taken even once one is free.
      await store.releaseLease(concurrencyKey(initech), 'a');
      const third = await store.admit({ rate, lease: lease('c') });
      expect(third.rate.allowed).toBe(false);
      expect(third.rate.retryAfterSeconds).toBeGreaterThan(0);
      expect(third.lease).toBeUndefined();
      expect(
        await store.acquireLease(concurrencyKey(initech), {
          leaseId: 'd',
          limit: 1,
          ttlMs: 60_000,
        }),
      ).toEqual({ acquired: true, inFlight: 1 });
      // One tenant per call: keys of two tenants (two hash tags) are a caller mistake.
      await expect(
        store.admit({ rate: { ...rate, key: rateLimitKey(globex) }, lease: lease('e') }),
      ).rejects.toBeInstanceOf(TypeError);
    });

    it('writes within a quota atomically, renews what it holds and frees what expired', async () => {
      const ledger = persistedQueryLedgerKeys(acme);
      const quota = { ledger, ttlSeconds: 1, maxEntries: 2, maxBytes: 10_000 };
      const key = (part: string) => persistedQueryKey(acme, part);
      const size = (part: string, value: string) => Buffer.byteLength(key(part)) + value.length;
      const a = 'x'.repeat(100);
      expect(await store.putWithQuota(key('a'), a, quota)).toEqual({
        accepted: true,
        entries: 1,
        bytes: size('a', a),
      });
      // A dry run decides and writes nothing.
      expect(await store.putWithQuota(key('b'), 'b', { ...quota, dryRun: true })).toMatchObject({
        accepted: true,
        entries: 2,
      });
      expect(await store.get(key('b'))).toBeNull();
      expect((await store.putWithQuota(key('b'), 'b', quota)).accepted).toBe(true);
      expect(await store.putWithQuota(key('c'), 'c', quota)).toEqual({
        accepted: false,
        exceeded: 'entries',
        entries: 3,
        bytes: size('a', a) + size('b', 'b') + size('c', 'c'),
      });
      expect(await store.get(key('c'))).toBeNull();
      // Writing a held entry again renews it: no new entry, its size replaced.
      expect(await store.putWithQuota(key('a'), a, quota)).toMatchObject({
        accepted: true,
        entries: 2,
        bytes: size('a', a) + size('b', 'b'),
      });
      expect(await store.get(key('a'))).toBe(a);
      // Bytes bound too; another tenant's ledger is its own.
      const other = { ...quota, ledger: persistedQueryLedgerKeys(globex), maxBytes: 150 };
      const big = 'y'.repeat(100);
      expect((await store.putWithQuota(persistedQueryKey(globex, 'a'), big, other)).accepted).toBe(
        true,
      );
      expect(await store.putWithQuota(persistedQueryKey(globex, 'b'), big, other)).toMatchObject({
        accepted: false,
        exceeded: 'bytes',
        entries: 2,
      });

      // Expired entries leave the ledger.
      await fixture.advance(1_200);
      expect(await store.get(key('a'))).toBeNull();
      expect(await store.putWithQuota(key('c'), 'c', quota)).toEqual({
        accepted: true,
        entries: 1,
        bytes: size('c', 'c'),
      });
      await expect(
        store.putWithQuota(key('d'), 'd', { ...quota, maxEntries: 0 }),
      ).rejects.toBeInstanceOf(TypeError);
    });

    it('adds, lists and removes set members', async () => {
      const key = tenantKey(acme, 'set-test');
      expect(await store.smembers(key)).toEqual([]);
      expect(await store.sadd(key, ['a', 'b'])).toBe(2);
      expect(await store.sadd(key, ['b', 'c'])).toBe(1);
      expect(await store.sadd(key, [])).toBe(0);
      expect((await store.smembers(key)).sort()).toEqual(['a', 'b', 'c']);
      expect(await store.smembers(tenantKey(globex, 'set-test'))).toEqual([]);
      expect(await store.srem(key, ['a', 'missing'])).toBe(1);
      expect((await store.smembers(key)).sort()).toEqual(['b', 'c']);
      expect(await store.srem(key, ['b', 'c'])).toBe(2);
      // An emptied set is gone, as in Redis.
      expect(await store.del(key)).toBe(false);
      await expect(store.sadd(key, [''])).rejects.toBeInstanceOf(TypeError);
      await expect(store.sadd(key, 'a' as unknown as string[])).rejects.toBeInstanceOf(TypeError);
      // A string key is not a set.
      const text = tenantKey(acme, 'set-test', 'text');
      await store.set(text, 'v');
      const error: unknown = await store.smembers(text).catch((e: unknown) => e);
      expect(isStoreError(error) && error.code).toBe('STORE_FAILED');
    });

    it('delivers published messages to every subscriber of the channel only', async () => {
      const channel = `test:${randomBytes(6).toString('hex')}`;
      const other = `${channel}:other`;
      const seenA: string[] = [];
      const seenB: string[] = [];
      const seenOther: string[] = [];
      const offA = await store.subscribe(channel, (m) => seenA.push(m));
      const offB = await store.subscribe(channel, (m) => seenB.push(m));
      const offOther = await store.subscribe(other, (m) => seenOther.push(m));

      await store.publish(channel, 'acme');
      await eventually(() => {
        expect(seenA).toEqual(['acme']);
        expect(seenB).toEqual(['acme']);
      });

      await offA();
      await store.publish(channel, 'globex');
      await store.publish(other, 'marker');
      // The marker arrives after 'globex' on the same connection: once it is seen, B has had
      // its message and A, unsubscribed, would have had its own.
      await eventually(() => expect(seenOther).toEqual(['marker']));
      await eventually(() => expect(seenB).toEqual(['acme', 'globex']));
      expect(seenA).toEqual(['acme']);
      await offB();
      await offOther();
    });

    it('reports StoreError STORE_UNAVAILABLE once closed', async () => {
      const own = await createFixture();
      await own.store.close();
      expect(own.store.isAvailable()).toBe(false);
      expect(own.store.status().state).toBe('closed');
      const error: unknown = await own.store.get(tenantKey(acme, 'x')).catch((e: unknown) => e);
      expect(isStoreError(error) && error.code).toBe('STORE_UNAVAILABLE');
      await own.cleanup([]);
    });
  });
}
