import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import type {
  CreateOrderInput,
  CustomerRecord,
  OrderRecord,
  QueryEvent,
  TenantDataRef,
} from '../../../src/backends/data/types.js';
import { expectCode } from './support.js';

/** Small enough to seed quickly, big enough for 50-id batches and multi-page listings. */
export const BEHAVIOUR_SEED = { customers: 60, ordersPerCustomer: { min: 2, max: 8 } };

export interface BehaviourFixture {
  source: SqlDataSource;
  /** What the source's `onQuery` reported, in order. */
  events: QueryEvent[];
  /** Migrated and seeded with BEHAVIOUR_SEED; all strategies, two `row` tenants at least. */
  tenants: TenantDataRef[];
  /**
   * Tenants whose batches all run on ONE session (a pool of size 1, or the PGlite instance):
   * `withSession` on any of them inspects the very connection their batches used.
   */
  sharedSessionTenants: TenantDataRef[];
}

interface Snapshot {
  customers: CustomerRecord[];
  orders: OrderRecord[];
}

const order = (
  customerId: string,
  overrides: Partial<CreateOrderInput> = {},
): CreateOrderInput => ({
  customerId,
  amount: 42.5,
  currency: 'EUR',
  channel: 'WEB',
  itemCount: 2,
  isInternational: false,
  paymentAttempts: 1,
  hourOfDay: 13,
  ...overrides,
});

/**
 * The behaviour every SqlDataSource must show, whatever the engine: isolation per method,
 * batching (one statement, 3 round trips), pagination, validation, and clean sessions.
 * `setup` runs once; `teardown` must close the source and drop what setup created.
 */
export function describeDataSourceBehaviour(
  name: string,
  setup: () => Promise<BehaviourFixture>,
  teardown: (fixture: BehaviourFixture | undefined) => Promise<void>,
): void {
  describe(name, () => {
    let fx: BehaviourFixture;
    let ready: BehaviourFixture | undefined;

    beforeAll(async () => {
      ready = await setup();
      fx = ready;
    });
    afterAll(async () => {
      await teardown(ready);
    });

    async function snapshot(tenant: TenantDataRef): Promise<Snapshot> {
      const page = await fx.source.listCustomers(tenant, { first: 1000 });
      expect(page.hasNextPage).toBe(false);
      const orders = await fx.source.ordersByCustomerIds(
        tenant,
        page.rows.map((c) => c.id),
        1000,
      );
      return { customers: page.rows, orders };
    }

    /** Events recorded while `fn` runs. */
    async function eventsDuring(fn: () => Promise<unknown>): Promise<QueryEvent[]> {
      const before = fx.events.length;
      await fn();
      return fx.events.slice(before);
    }

    it('gives each tenant its own rows, and never another tenant’s, through every method', async () => {
      const snaps = new Map<string, Snapshot>();
      for (const tenant of fx.tenants) {
        const snap = await snapshot(tenant);
        expect(snap.customers).toHaveLength(BEHAVIOUR_SEED.customers);
        expect(snap.orders.length).toBeGreaterThanOrEqual(2 * BEHAVIOUR_SEED.customers);
        snaps.set(tenant.id, snap);
      }
      // Ids are globally unique: no two tenants share a customer or an order id.
      const allCustomerIds = [...snaps.values()].flatMap((s) => s.customers.map((c) => c.id));
      const allOrderIds = [...snaps.values()].flatMap((s) => s.orders.map((o) => o.id));
      expect(new Set(allCustomerIds).size).toBe(allCustomerIds.length);
      expect(new Set(allOrderIds).size).toBe(allOrderIds.length);

      for (const tenant of fx.tenants) {
        const own = snaps.get(tenant.id)!;
        const ownCustomerIds = own.customers.map((c) => c.id);
        for (const other of fx.tenants) {
          if (other.id === tenant.id) continue;
          const theirs = snaps.get(other.id)!;
          const theirCustomerIds = theirs.customers.map((c) => c.id);
          const theirOrderIds = theirs.orders.map((o) => o.id);
          expect(await fx.source.customersByIds(tenant, theirCustomerIds)).toEqual([]);
          expect(await fx.source.ordersByIds(tenant, theirOrderIds)).toEqual([]);
          expect(await fx.source.ordersByCustomerIds(tenant, theirCustomerIds, 100)).toEqual([]);
          // Mixed batches return exactly the asking tenant's part.
          const mixed = await fx.source.customersByIds(tenant, [
            ...ownCustomerIds.slice(0, 5),
            ...theirCustomerIds.slice(0, 5),
          ]);
          expect(mixed.map((c) => c.id).sort()).toEqual(ownCustomerIds.slice(0, 5).sort());
          // Writing against another tenant's customer is the same as an unknown customer.
          await expectCode(
            fx.source.createOrder(tenant, order(theirCustomerIds[0]!)),
            'BAD_USER_INPUT',
          );
        }
        // Listing with a filter and from a cursor stays inside the tenant too.
        for (const segment of ['SMB', 'MID_MARKET', 'ENTERPRISE'] as const) {
          const page = await fx.source.listCustomers(tenant, { first: 1000, segment });
          for (const c of page.rows) expect(ownCustomerIds).toContain(c.id);
        }
      }
    });

    it('answers customersByIds for 50 ids with one statement of 3 round trips', async () => {
      const tenant = fx.tenants[0]!;
      const ids = (await fx.source.listCustomers(tenant, { first: 50 })).rows.map((c) => c.id);
      expect(ids).toHaveLength(50);
      let rows: CustomerRecord[] = [];
      const events = await eventsDuring(async () => {
        rows = await fx.source.customersByIds(tenant, [...ids, 'cus_missing']);
      });
      expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort());
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        tenantId: tenant.id,
        operation: 'customersByIds',
        strategy: tenant.data.strategy,
        roundTrips: 3,
        rowCount: 50,
        ok: true,
      });
      const c = rows[0]!;
      expect(typeof c.lifetimeValue).toBe('number');
      expect(typeof c.monthlySpend).toBe('number');
      expect(c.createdAt).toBeInstanceOf(Date);
      expect(c.country).toMatch(/^[A-Z]{2}$/);
    });

    it('answers ordersByCustomerIds for 50 customers with one statement, newest first, at most `first` each', async () => {
      for (const tenant of fx.tenants) {
        const ids = (await fx.source.listCustomers(tenant, { first: 50 })).rows.map((c) => c.id);
        const all = await fx.source.ordersByCustomerIds(tenant, ids, 1000);
        let limited: OrderRecord[] = [];
        const events = await eventsDuring(async () => {
          limited = await fx.source.ordersByCustomerIds(tenant, ids, 3);
        });
        expect(events).toHaveLength(1);
        expect(events[0]).toMatchObject({ operation: 'ordersByCustomerIds', roundTrips: 3 });
        for (const id of ids) {
          const expected = all
            .filter((o) => o.customerId === id)
            .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? -1 : 1))
            .slice(0, 3)
            .map((o) => o.id);
          const got = limited.filter((o) => o.customerId === id).map((o) => o.id);
          expect(got).toEqual(expected);
        }
        // The seed gives every customer at least 2 orders, many more than 3.
        expect(limited.length).toBeGreaterThan(100);
        expect(limited.length).toBeLessThanOrEqual(150);
      }
    });

    it('answers ordersByIds in one statement', async () => {
      const tenant = fx.tenants[fx.tenants.length - 1]!;
      const { orders } = await snapshot(tenant);
      const ids = orders.slice(0, 50).map((o) => o.id);
      let rows: OrderRecord[] = [];
      const events = await eventsDuring(async () => {
        rows = await fx.source.ordersByIds(tenant, ids);
      });
      expect(rows.map((o) => o.id).sort()).toEqual([...ids].sort());
      expect(events).toHaveLength(1);
      expect(typeof rows[0]!.amount).toBe('number');
    });

    it('pages customers by id with a keyset cursor, and filters by segment', async () => {
      for (const tenant of fx.tenants) {
        const all = (await fx.source.listCustomers(tenant, { first: 1000 })).rows.map((c) => c.id);
        expect(all).toEqual([...all].sort());
        const seen: string[] = [];
        let after: string | undefined;
        let pages = 0;
        for (;;) {
          const page = await fx.source.listCustomers(tenant, { first: 7, afterId: after });
          pages += 1;
          seen.push(...page.rows.map((c) => c.id));
          if (!page.hasNextPage) break;
          expect(page.rows).toHaveLength(7);
          after = page.rows[page.rows.length - 1]!.id;
        }
        expect(seen).toEqual(all);
        expect(pages).toBe(Math.ceil(all.length / 7));

        const smb = await fx.source.listCustomers(tenant, { first: 1000, segment: 'SMB' });
        expect(smb.rows.length).toBeGreaterThan(0);
        expect(smb.rows.every((c) => c.segment === 'SMB')).toBe(true);
        const everyone = await fx.source.customersByIds(tenant, all);
        expect(smb.rows.length).toBe(everyone.filter((c) => c.segment === 'SMB').length);
      }
    });

    it('creates an order that becomes its customer’s newest, visible to its tenant only', async () => {
      for (const tenant of fx.tenants) {
        const customer = (await fx.source.listCustomers(tenant, { first: 1 })).rows[0]!;
        let created: OrderRecord | undefined;
        const events = await eventsDuring(async () => {
          created = await fx.source.createOrder(
            tenant,
            order(customer.id, { amount: 1234.56, currency: 'USD', isInternational: true }),
          );
        });
        expect(events).toHaveLength(1);
        expect(events[0]).toMatchObject({ operation: 'createOrder', roundTrips: 3, ok: true });
        expect(created).toMatchObject({
          customerId: customer.id,
          amount: 1234.56,
          currency: 'USD',
          channel: 'WEB',
          itemCount: 2,
          isInternational: true,
          paymentAttempts: 1,
          hourOfDay: 13,
        });
        expect(created!.id).toMatch(/^ord_[0-9a-f]{32}$/);
        const newest = await fx.source.ordersByCustomerIds(tenant, [customer.id], 1);
        expect(newest.map((o) => o.id)).toEqual([created!.id]);
        for (const other of fx.tenants) {
          if (other.id === tenant.id) continue;
          expect(await fx.source.ordersByIds(other, [created!.id])).toEqual([]);
        }
      }
    });

    it('rejects out-of-range order input before any SQL runs', async () => {
      const tenant = fx.tenants[0]!;
      const customer = (await fx.source.listCustomers(tenant, { first: 1 })).rows[0]!;
      const bad: Partial<CreateOrderInput>[] = [
        { amount: 0 },
        { amount: -1 },
        { amount: 1e9 + 1 },
        { amount: Number.NaN },
        { currency: 'usd' },
        { currency: 'EURO' },
        { itemCount: 0 },
        { itemCount: 1001 },
        { itemCount: 1.5 },
        { hourOfDay: 24 },
        { hourOfDay: -1 },
        { paymentAttempts: 0 },
        { paymentAttempts: 101 },
        { channel: 'FAX' as never },
        { customerId: '' },
      ];
      const events = await eventsDuring(async () => {
        for (const overrides of bad) {
          await expectCode(
            fx.source.createOrder(tenant, order(customer.id, overrides)),
            'BAD_USER_INPUT',
          );
        }
        await expectCode(fx.source.listCustomers(tenant, { first: -1 }), 'BAD_USER_INPUT');
        await expectCode(fx.source.listCustomers(tenant, { first: 1001 }), 'BAD_USER_INPUT');
        await expectCode(
          fx.source.listCustomers(tenant, { first: 5, segment: 'HUGE' as never }),
          'BAD_USER_INPUT',
        );
        await expectCode(
          fx.source.ordersByCustomerIds(tenant, [customer.id], 2.5),
          'BAD_USER_INPUT',
        );
        await expectCode(fx.source.customersByIds(tenant, [42 as never]), 'BAD_USER_INPUT');
      });
      expect(events).toEqual([]);
      // The boundaries themselves are accepted.
      const edge = await fx.source.createOrder(
        tenant,
        order(customer.id, { amount: 1e9, itemCount: 1000, hourOfDay: 0, paymentAttempts: 100 }),
      );
      expect(edge.amount).toBe(1e9);
    });

    it('reports an unknown customer on createOrder as BAD_USER_INPUT, in every strategy', async () => {
      for (const tenant of fx.tenants) {
        const events = await eventsDuring(() =>
          expectCode(fx.source.createOrder(tenant, order('cus_doesnotexist')), 'BAD_USER_INPUT'),
        );
        expect(events).toHaveLength(1);
        // BEGIN+isolation, the failed INSERT, ROLLBACK.
        expect(events[0]).toMatchObject({ ok: false, rowCount: 0, roundTrips: 3 });
      }
    });

    it('makes no statement for empty batches or `first: 0`', async () => {
      const tenant = fx.tenants[0]!;
      const events = await eventsDuring(async () => {
        expect(await fx.source.customersByIds(tenant, [])).toEqual([]);
        expect(await fx.source.ordersByIds(tenant, [])).toEqual([]);
        expect(await fx.source.ordersByCustomerIds(tenant, [], 5)).toEqual([]);
        expect(await fx.source.ordersByCustomerIds(tenant, ['cus_x'], 0)).toEqual([]);
        expect(await fx.source.listCustomers(tenant, { first: 0 })).toEqual({
          rows: [],
          hasNextPage: false,
        });
      });
      expect(events).toEqual([]);
    });

    it('leaves no search_path, tenant setting, role or open transaction on the shared session', async () => {
      const inspect = async () =>
        fx.source.withSession(fx.sharedSessionTenants[0]!, async (session) => {
          const { rows } = await session.query<{
            search_path: string;
            search_path_default: string;
            tenant_setting: string | null;
            current_user: string;
            session_user: string;
            statement_timeout: string;
            statement_timeout_default: string;
            read_only: string;
          }>(
            `SELECT current_setting('search_path') AS search_path,
                    (SELECT reset_val FROM pg_settings WHERE name = 'search_path') AS search_path_default,
                    current_setting('atrium.tenant_id', true) AS tenant_setting,
                    current_user::text AS current_user, session_user::text AS session_user,
                    current_setting('statement_timeout') AS statement_timeout,
                    (SELECT reset_val FROM pg_settings WHERE name = 'statement_timeout')
                      AS statement_timeout_default,
                    current_setting('transaction_read_only') AS read_only`,
          );
          // SAVEPOINT fails outside a transaction block: it succeeds only if one was left open.
          const savepoint = await session.exec('SAVEPOINT leak_probe').then(
            () => 'succeeded',
            (e: { code?: string }) => e.code,
          );
          return { ...rows[0]!, savepoint };
        });
      const expectClean = async () => {
        const state = await inspect();
        expect(state.search_path).toBe(state.search_path_default);
        expect(state.search_path).not.toMatch(/tenant_|atrium_shared/);
        expect(['', null]).toContain(state.tenant_setting);
        expect(state.current_user).toBe(state.session_user);
        expect(state.statement_timeout).toBe(state.statement_timeout_default);
        expect(state.read_only).toBe('off');
        expect(state.savepoint).toBe('25P01');
      };

      await expectClean();
      for (let round = 0; round < 2; round += 1) {
        for (const tenant of fx.sharedSessionTenants) {
          const ids = (await fx.source.listCustomers(tenant, { first: 3 })).rows.map((c) => c.id);
          await expectClean();
          expect(await fx.source.customersByIds(tenant, ids)).toHaveLength(3);
          await expectClean();
          // A failing statement (FK violation → ROLLBACK) leaves nothing either.
          await expectCode(fx.source.createOrder(tenant, order('cus_nobody')), 'BAD_USER_INPUT');
          await expectClean();
          await fx.source.createOrder(tenant, order(ids[0]!));
          await expectClean();
        }
      }
    });

    it('keeps tenants apart under concurrent batches', async () => {
      const owned = new Map<string, Set<string>>();
      for (const tenant of fx.tenants) {
        const page = await fx.source.listCustomers(tenant, { first: 1000 });
        owned.set(tenant.id, new Set(page.rows.map((c) => c.id)));
      }
      const everyId = [...owned.values()].flatMap((s) => [...s]);
      const calls = Array.from({ length: 40 }, async (_, i) => {
        const tenant = fx.tenants[i % fx.tenants.length]!;
        const rows =
          i % 2 === 0
            ? await fx.source.customersByIds(tenant, everyId)
            : await fx.source.ordersByCustomerIds(tenant, everyId, 2);
        return { tenant, ids: rows.map((r) => ('customerId' in r ? r.customerId : r.id)) };
      });
      for (const { tenant, ids } of await Promise.all(calls)) {
        expect(ids.length).toBeGreaterThan(0);
        for (const id of ids) expect(owned.get(tenant.id)!.has(id)).toBe(true);
      }
    });
  });
}
