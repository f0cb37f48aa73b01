import { graphql } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTenantData, type TenantSeedData } from '../../../examples/demo/seed.js';
import type { Principal } from '../../../src/auth/principal.js';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import type { QueryEvent, TenantDataRef } from '../../../src/backends/data/types.js';
import { GatewayError } from '../../../src/errors.js';
import type { GatewayContext } from '../../../src/graphql/context.js';
import { createLoaderRegistry } from '../../../src/loaders/registry.js';
import type {
  ConnectionBinding,
  InsertBinding,
  LookupBinding,
  RelationBinding,
  SqlFieldBinding,
} from '../../../src/sources/bindings.js';
import { readCatalog, type TenantCatalog } from '../../../src/sources/sql/catalog.js';
import { checkTenantBindings } from '../../../src/sources/sql/check.js';
import {
  createSharedLookups,
  type SharedLookups,
} from '../../../src/sources/sql/shared-lookups.js';
import {
  createTenantData,
  type DataRecord,
  encodeCursor,
  MAX_KEY_LENGTH,
  ROW,
  type TenantData,
} from '../../../src/sources/sql/tenant-data.js';
import { demoSchema } from '../../support/demo.js';
import { expectCode } from './support.js';

/** Small enough to seed quickly, big enough for 50-key batches and multi-page listings. */
export const BEHAVIOUR_SEED = { size: 60 } as const;
/** The plan's largest `first` in this battery (the demo's `Customer.orders` says 50 itself). */
export const BEHAVIOUR_MAX_PAGE_SIZE = 100;

export interface BehaviourFixture {
  source: SqlDataSource;
  /** What the source's `onQuery` reported, in order. */
  events: QueryEvent[];
  /**
   * Migrated with the demo migrations and seeded with BEHAVIOUR_SEED; every strategy, two
   * `row` tenants at least.
   */
  tenants: TenantDataRef[];
  /**
   * Tenants whose batches all run on ONE session (a pool of size 1, or the PGlite instance):
   * `withSession` on any of them inspects the very connection their batches used.
   */
  sharedSessionTenants: TenantDataRef[];
}

function sqlBinding<K extends SqlFieldBinding['kind']>(
  kind: K,
  at: string,
): Extract<SqlFieldBinding, { kind: K }> {
  const found = demoSchema().bindings.fields.find(
    (b) => b.kind === kind && `${b.parent}.${b.field}` === at,
  );
  if (found === undefined) throw new Error(`the demo schema has no ${kind} binding ${at}`);
  return found as Extract<SqlFieldBinding, { kind: K }>;
}

/** The demo schema's bindings, as the generated resolvers use them. */
export const DEMO_BINDINGS = {
  customer: sqlBinding('lookup', 'Query.customer') as LookupBinding,
  order: sqlBinding('lookup', 'Query.order') as LookupBinding,
  customers: sqlBinding('connection', 'Query.customers') as ConnectionBinding,
  customerOrders: sqlBinding('relation', 'Customer.orders') as RelationBinding,
  orderCustomer: sqlBinding('relation', 'Order.customer') as RelationBinding,
  createOrder: sqlBinding('insert', 'Mutation.createOrder') as InsertBinding,
};
const B = DEMO_BINDINGS;

/**
 * One request's SQL side for `tenant`, as the gateway builds it: a fresh loader registry bound
 * to the tenant, the demo bindings, and the tenant's catalog (undefined: the engine then works
 * without column facts, as it does when the catalog cannot be read).
 */
export function requestData(
  source: SqlDataSource,
  tenant: TenantDataRef,
  catalog?: TenantCatalog,
  lookups?: SharedLookups,
): TenantData {
  return createTenantData({
    tenant,
    dataSource: source,
    lookups,
    loaders: createLoaderRegistry(tenant.id),
    bindings: demoSchema().bindings,
    catalog: () => Promise.resolve(catalog),
    maxPageSize: BEHAVIOUR_MAX_PAGE_SIZE,
  });
}

/** A `createOrder` input as GraphQL hands it to the resolver (defaults applied). */
export function orderInput(
  customerId: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    customerId,
    amount: 42.5,
    currency: 'EUR',
    channel: 'WEB',
    itemCount: 2,
    isInternational: false,
    paymentAttempts: 1,
    hourOfDay: 13,
    ...overrides,
  };
}

/** A parent record that carries only the column a relation joins on (e.g. another tenant's key). */
function parentWith(binding: RelationBinding, value: unknown): DataRecord {
  return { [ROW]: { [binding.parentColumn]: value } } as DataRecord;
}

const idOf = (record: DataRecord | null): string | undefined =>
  record === null ? undefined : (record[ROW]['id'] as string);
const customerIdOf = (order: DataRecord): string => order[ROW]['customer_id'] as string;
const sorted = (values: Iterable<string>) => [...values].sort();

/** Newest first, then by key: the order `Customer.orders` declares. */
function newestFirst(a: DataRecord, b: DataRecord): number {
  const at = (r: DataRecord) => (r['createdAt'] as Date).getTime();
  const ia = idOf(a) ?? '';
  const ib = idOf(b) ?? '';
  return at(b) - at(a) || (ia < ib ? -1 : ia > ib ? 1 : 0);
}

/** The error `promise` rejects with: BAD_USER_INPUT naming the input field `field`. */
async function expectFieldError(promise: Promise<unknown>, field: string): Promise<void> {
  const error = await expectCode(promise, 'BAD_USER_INPUT');
  expect(error.extensions).toMatchObject({ field, argument: 'input' });
  expect(error.message).toContain(field);
}

/**
 * The behaviour the SQL engine must show on any SqlDataSource, for the demo schema's bindings:
 * isolation through every binding and strategy, batching (one statement per batch; 1 round trip
 * for schema and database tenants, 3 for row tenants), keyset pagination, inserts and their
 * constraint errors naming the field, per-key errors, and clean shared sessions.
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
    const catalogs = new Map<string, TenantCatalog>();
    const seeded = new Map<string, TenantSeedData>();
    /** Orders this battery created, per tenant: the only rows beyond the seed's. */
    const created = new Map<string, Set<string>>();

    beforeAll(async () => {
      ready = await setup();
      fx = ready;
      expect(fx.tenants.filter((t) => t.data.strategy === 'row').length).toBeGreaterThanOrEqual(2);
      for (const strategy of ['schema', 'database', 'row'] as const) {
        expect(fx.tenants.some((t) => t.data.strategy === strategy)).toBe(true);
      }
      // Read once here, as the gateway's tenant checks do, so no test counts these statements.
      for (const tenant of fx.tenants) {
        catalogs.set(tenant.id, await readCatalog(fx.source, tenant));
        seeded.set(tenant.id, generateTenantData(tenant.id, BEHAVIOUR_SEED));
        created.set(tenant.id, new Set());
      }
    });
    afterAll(async () => {
      await teardown(ready);
    });

    const data = (tenant: TenantDataRef) => requestData(fx.source, tenant, catalogs.get(tenant.id));
    const seedOf = (tenant: TenantDataRef) => seeded.get(tenant.id)!;
    const trips = (tenant: TenantDataRef) => (tenant.data.strategy === 'row' ? 3 : 1);

    /** Events recorded while `fn` runs. */
    async function eventsDuring(fn: () => Promise<unknown>): Promise<QueryEvent[]> {
      const before = fx.events.length;
      await fn();
      return fx.events.slice(before);
    }

    /** Every customer of `tenant`, through the connection, page after page. */
    async function allCustomers(tenant: TenantDataRef): Promise<DataRecord[]> {
      const rows: DataRecord[] = [];
      const request = data(tenant);
      let after: string | null = null;
      for (;;) {
        const page = await request.page(B.customers, { first: BEHAVIOUR_MAX_PAGE_SIZE, after });
        rows.push(...page.rows);
        if (!page.hasNextPage) return rows;
        after = encodeCursor(idOf(page.rows.at(-1)!));
      }
    }

    /** `first` orders of each parent, in one request (so one batch). */
    function ordersOf(
      tenant: TenantDataRef,
      parents: readonly DataRecord[],
      first: number,
      request: TenantData = data(tenant),
    ): Promise<DataRecord[][]> {
      return Promise.all(
        parents.map(
          (p) => request.related(B.customerOrders, p, { first }) as Promise<DataRecord[]>,
        ),
      );
    }

    function lookups(request: TenantData, binding: LookupBinding, keys: readonly unknown[]) {
      return Promise.all(keys.map((key) => request.lookup(binding, key)));
    }

    async function insert(tenant: TenantDataRef, input: Record<string, unknown>) {
      const order = await data(tenant).insert(B.createOrder, input);
      created.get(tenant.id)!.add(idOf(order)!);
      return order;
    }

    it('finds every binding of the demo schema in every tenant’s catalog', () => {
      for (const tenant of fx.tenants) {
        const mismatches = checkTenantBindings({
          tenant: { id: tenant.id, strategy: tenant.data.strategy, models: {} },
          bindings: demoSchema().bindings,
          catalog: catalogs.get(tenant.id)!,
        });
        expect(mismatches).toEqual([]);
        expect(catalogs.get(tenant.id)!.schema).toBe(fx.source.schemaOf(tenant));
      }
    });

    it('gives each tenant exactly its own seeded rows through the connection and the one-to-many relation', async () => {
      const everyCustomer: string[] = [];
      const everyOrder: string[] = [];
      for (const tenant of fx.tenants) {
        const seed = seedOf(tenant);
        const customers = await allCustomers(tenant);
        expect(customers.map(idOf)).toEqual(sorted(seed.customers.map((c) => c.id)));
        const byId = new Map(customers.map((c) => [idOf(c)!, c]));
        for (const expected of seed.customers) {
          const { id, createdAt, ...fields } = expected;
          const record = byId.get(id)!;
          expect(record).toMatchObject({ id, ...fields });
          expect((record['createdAt'] as Date).getTime()).toBe(createdAt.getTime());
        }
        // Every order of every customer: the seed's, plus any this battery created.
        const orders = (await ordersOf(tenant, customers, 50)).flat();
        const ids = new Set(orders.map((o) => idOf(o)!));
        const seededIds = new Set(seed.orders.map((o) => o.id));
        for (const id of seededIds) expect(ids.has(id)).toBe(true);
        const extra = [...ids].filter((id) => !seededIds.has(id));
        for (const id of extra) expect(created.get(tenant.id)!.has(id)).toBe(true);
        const ordersById = new Map(orders.map((o) => [idOf(o)!, o]));
        for (const expected of seed.orders) {
          const { id, customerId, createdAt, ...fields } = expected;
          const record = ordersById.get(id)!;
          expect(record).toMatchObject({ id, ...fields });
          expect(customerIdOf(record)).toBe(customerId);
          expect((record['createdAt'] as Date).getTime()).toBe(createdAt.getTime());
        }
        everyCustomer.push(...byId.keys());
        everyOrder.push(...ids);
      }
      // No two tenants share a customer or an order id (so a leak could not hide behind one).
      expect(new Set(everyCustomer).size).toBe(everyCustomer.length);
      expect(new Set(everyOrder).size).toBe(everyOrder.length);
    });

    it('never answers another tenant’s rows through any binding: lookup, page, one-to-many, many-to-one, insert', async () => {
      for (const tenant of fx.tenants) {
        const own = seedOf(tenant);
        const ownCustomers = own.customers.map((c) => c.id);
        for (const other of fx.tenants) {
          if (other.id === tenant.id) continue;
          const theirs = seedOf(other);
          const theirCustomers = theirs.customers.map((c) => c.id);
          const theirOrders = theirs.orders.map((o) => o.id);
          const request = data(tenant);
          // Lookups by another tenant's keys find nothing; a mixed batch finds exactly ours.
          expect(await lookups(request, B.customer, theirCustomers)).toEqual(
            theirCustomers.map(() => null),
          );
          expect(await lookups(request, B.order, theirOrders.slice(0, 50))).toEqual(
            theirOrders.slice(0, 50).map(() => null),
          );
          const mixed = await lookups(data(tenant), B.customer, [
            ...ownCustomers.slice(0, 5),
            ...theirCustomers.slice(0, 5),
          ]);
          expect(mixed.map(idOf)).toEqual([
            ...ownCustomers.slice(0, 5),
            ...Array(5).fill(undefined),
          ]);
          // Relations joined on another tenant's keys: no children, no parent.
          const children = await ordersOf(
            tenant,
            theirCustomers.map((id) => parentWith(B.customerOrders, id)),
            50,
          );
          expect(children.flat()).toEqual([]);
          const parents = await Promise.all(
            theirCustomers
              .slice(0, 10)
              .map((id) => request.related(B.orderCustomer, parentWith(B.orderCustomer, id), {})),
          );
          expect(parents).toEqual(theirCustomers.slice(0, 10).map(() => null));
          // A page from another tenant's key (a cursor the client built) stays in ours.
          const from = sorted(theirCustomers)[0]!;
          const page = await data(tenant).page(B.customers, {
            first: BEHAVIOUR_MAX_PAGE_SIZE,
            after: encodeCursor(from),
          });
          for (const row of page.rows) expect(ownCustomers).toContain(idOf(row));
          expect(page.rows.map(idOf)).toEqual(sorted(ownCustomers).filter((id) => id > from));
          // Writing against another tenant's customer is the same as an unknown customer.
          await expectFieldError(
            data(tenant).insert(B.createOrder, orderInput(theirCustomers[0]!)),
            'customerId',
          );
        }
        // Filtered pages stay inside the tenant too.
        for (const segment of ['SMB', 'MID_MARKET', 'ENTERPRISE']) {
          const page = await data(tenant).page(B.customers, { first: 100, segment });
          for (const row of page.rows) expect(ownCustomers).toContain(idOf(row));
        }
      }
    });

    it('answers 50 lookups with one statement: 1 round trip for schema and database tenants, 3 for row', async () => {
      for (const tenant of fx.tenants) {
        const seed = seedOf(tenant);
        const ids = seed.customers.slice(0, 50).map((c) => c.id);
        let rows: (DataRecord | null)[] = [];
        const events = await eventsDuring(async () => {
          rows = await lookups(data(tenant), B.customer, [...ids, 'cus_missing']);
        });
        expect(rows.map(idOf)).toEqual([...ids, undefined]);
        expect(events).toEqual([
          expect.objectContaining({
            tenantId: tenant.id,
            operation: 'Customer.by(id)',
            strategy: tenant.data.strategy,
            roundTrips: trips(tenant),
            rowCount: 50,
            ok: true,
          }),
        ]);
        const c = rows[0]!;
        expect(typeof c['lifetimeValue']).toBe('number');
        expect(typeof c['monthlySpend']).toBe('number');
        expect(typeof c['tenureMonths']).toBe('number');
        expect(c['createdAt']).toBeInstanceOf(Date);
        expect(c['country']).toMatch(/^[A-Z]{2}$/);

        const orderIds = seed.orders.slice(0, 50).map((o) => o.id);
        let orders: (DataRecord | null)[] = [];
        const orderEvents = await eventsDuring(async () => {
          orders = await lookups(data(tenant), B.order, orderIds);
        });
        expect(orders.map(idOf)).toEqual(orderIds);
        expect(orderEvents).toEqual([
          expect.objectContaining({
            operation: 'Order.by(id)',
            roundTrips: trips(tenant),
            rowCount: 50,
          }),
        ]);
        expect(typeof orders[0]!['amount']).toBe('number');
        expect(typeof orders[0]!['isInternational']).toBe('boolean');
      }
    });

    it('loads a one-to-many for 50 parents with one statement, newest first, at most `first` each', async () => {
      for (const tenant of fx.tenants) {
        const parents = (await data(tenant).page(B.customers, { first: 50 })).rows;
        expect(parents).toHaveLength(50);
        const all = await ordersOf(tenant, parents, 50);
        let limited: DataRecord[][] = [];
        const events = await eventsDuring(async () => {
          limited = await ordersOf(tenant, parents, 3);
        });
        expect(events).toEqual([
          expect.objectContaining({
            tenantId: tenant.id,
            operation: 'Customer.orders',
            roundTrips: trips(tenant),
            ok: true,
          }),
        ]);
        const seed = seedOf(tenant);
        parents.forEach((parent, i) => {
          const everyOne = all[i]!;
          for (const order of everyOne) expect(customerIdOf(order)).toBe(idOf(parent));
          expect(everyOne.map(idOf)).toEqual([...everyOne].sort(newestFirst).map(idOf));
          const seededCount = seed.orders.filter((o) => o.customerId === idOf(parent)).length;
          expect(everyOne.length).toBeGreaterThanOrEqual(seededCount);
          expect(limited[i]!.map(idOf)).toEqual(everyOne.slice(0, 3).map(idOf));
        });
        const expected = all.reduce((n, orders) => n + Math.min(orders.length, 3), 0);
        expect(limited.flat()).toHaveLength(expected);
        expect(events[0]!.rowCount).toBe(expected);
        // The demo seed gives customers 0..12 orders: the limit really cut.
        expect(all.some((orders) => orders.length > 3)).toBe(true);
      }
    });

    it('loads a many-to-one for 50 children with one statement, and with none once the parents were read', async () => {
      for (const tenant of fx.tenants) {
        const seed = seedOf(tenant);
        const orders = (await lookups(
          data(tenant),
          B.order,
          seed.orders.slice(0, 50).map((o) => o.id),
        )) as DataRecord[];
        const request = data(tenant);
        let parents: (DataRecord | null)[] = [];
        const events = await eventsDuring(async () => {
          parents = (await Promise.all(
            orders.map((o) => request.related(B.orderCustomer, o, {})),
          )) as (DataRecord | null)[];
        });
        expect(parents.map(idOf)).toEqual(orders.map(customerIdOf));
        const distinct = new Set(orders.map(customerIdOf)).size;
        expect(events).toEqual([
          expect.objectContaining({
            operation: 'Customer.by(id)',
            roundTrips: trips(tenant),
            rowCount: distinct,
          }),
        ]);
        // The same request again: its loaders already hold those customers.
        const again = await eventsDuring(() =>
          Promise.all(orders.map((o) => request.related(B.orderCustomer, o, {}))),
        );
        expect(again).toEqual([]);
      }
    });

    it('pages by key with an opaque keyset cursor, alone and with a filter', async () => {
      for (const tenant of fx.tenants) {
        const seed = seedOf(tenant);
        for (const segment of [undefined, 'SMB'] as const) {
          const expected = sorted(
            seed.customers
              .filter((c) => segment === undefined || c.segment === segment)
              .map((c) => c.id),
          );
          expect(expected.length).toBeGreaterThan(7);
          const seen: string[] = [];
          let after: string | null = null;
          let pages = 0;
          const events = await eventsDuring(async () => {
            for (;;) {
              const page = await data(tenant).page(B.customers, { first: 7, after, segment });
              pages += 1;
              seen.push(...page.rows.map((r) => idOf(r)!));
              if (segment) expect(page.rows.every((r) => r['segment'] === segment)).toBe(true);
              if (!page.hasNextPage) break;
              expect(page.rows).toHaveLength(7);
              after = encodeCursor(idOf(page.rows.at(-1)!));
            }
          });
          expect(seen).toEqual(expected);
          expect(pages).toBe(Math.ceil(expected.length / 7));
          // One statement per page, each for this tenant.
          expect(events.map((e) => [e.tenantId, e.operation, e.roundTrips])).toEqual(
            Array(pages).fill([tenant.id, 'Query.customers', trips(tenant)]),
          );
        }
      }
    });

    it('inserts an order that becomes its customer’s newest, visible to its tenant only', async () => {
      for (const tenant of fx.tenants) {
        const customer = seedOf(tenant).customers[0]!;
        let order: DataRecord | undefined;
        const events = await eventsDuring(async () => {
          order = await insert(
            tenant,
            orderInput(customer.id, { amount: 1234.56, currency: 'USD', isInternational: true }),
          );
        });
        expect(events).toEqual([
          expect.objectContaining({
            tenantId: tenant.id,
            operation: 'Mutation.createOrder',
            roundTrips: trips(tenant),
            rowCount: 1,
            ok: true,
          }),
        ]);
        expect(order).toMatchObject({
          amount: 1234.56,
          currency: 'USD',
          channel: 'WEB',
          itemCount: 2,
          isInternational: true,
          paymentAttempts: 1,
          hourOfDay: 13,
        });
        expect(customerIdOf(order!)).toBe(customer.id);
        expect(idOf(order!)).toMatch(/^ord_[0-9a-f]{32}$/);
        const [newest] = await ordersOf(tenant, [parentWith(B.customerOrders, customer.id)], 1);
        expect(newest!.map(idOf)).toEqual([idOf(order!)]);
        expect(idOf(await data(tenant).lookup(B.order, idOf(order!)))).toBe(idOf(order!));
        for (const other of fx.tenants) {
          if (other.id === tenant.id) continue;
          expect(await data(other).lookup(B.order, idOf(order!))).toBeNull();
        }
      }
    });

    it('answers an unknown parent key on insert with BAD_USER_INPUT naming customerId', async () => {
      for (const tenant of fx.tenants) {
        const events = await eventsDuring(() =>
          expectFieldError(
            data(tenant).insert(B.createOrder, orderInput('cus_doesnotexist')),
            'customerId',
          ),
        );
        // Schema and database: the failed INSERT alone. Row: BEGIN, the INSERT, ROLLBACK.
        expect(events).toEqual([
          expect.objectContaining({
            operation: 'Mutation.createOrder',
            ok: false,
            rowCount: 0,
            roundTrips: trips(tenant),
          }),
        ]);
      }
    });

    it('answers a broken CHECK constraint with BAD_USER_INPUT naming the field, and accepts the boundaries', async () => {
      const broken: [Record<string, unknown>, string][] = [
        [{ amount: 0 }, 'amount'],
        [{ amount: -1 }, 'amount'],
        [{ itemCount: 0 }, 'itemCount'],
        [{ itemCount: 1001 }, 'itemCount'],
        [{ hourOfDay: 24 }, 'hourOfDay'],
        [{ paymentAttempts: 0 }, 'paymentAttempts'],
      ];
      for (const tenant of fx.tenants) {
        const customer = seedOf(tenant).customers[1]!;
        for (const [overrides, field] of broken) {
          await expectFieldError(
            data(tenant).insert(B.createOrder, orderInput(customer.id, overrides)),
            field,
          );
        }
        const edge = await insert(
          tenant,
          orderInput(customer.id, {
            amount: 0.01,
            itemCount: 1000,
            hourOfDay: 0,
            paymentAttempts: 100,
          }),
        );
        expect(edge).toMatchObject({ amount: 0.01, itemCount: 1000, hourOfDay: 0 });
      }
    });

    it('refuses a too-long currency with BAD_USER_INPUT naming currency, before any statement', async () => {
      for (const tenant of fx.tenants) {
        const customer = seedOf(tenant).customers[1]!;
        const events = await eventsDuring(() =>
          expectFieldError(
            data(tenant).insert(B.createOrder, orderInput(customer.id, { currency: 'EURO' })),
            'currency',
          ),
        );
        expect(events).toEqual([]);
      }
    });

    it('answers invalid keys with per-key BAD_USER_INPUT errors, without failing their neighbours or running a statement for them', async () => {
      const invalid = ['', 'x'.repeat(200), 'y'.repeat(MAX_KEY_LENGTH + 1)];
      for (const tenant of fx.tenants) {
        const seed = seedOf(tenant);
        const valid = seed.customers.slice(0, 3).map((c) => c.id);
        const request = data(tenant);
        let settled: PromiseSettledResult<DataRecord | null>[] = [];
        const events = await eventsDuring(async () => {
          settled = await Promise.allSettled(
            [valid[0], invalid[0], valid[1], invalid[1], 'cus_missing', invalid[2], valid[2]].map(
              (key) => request.lookup(B.customer, key),
            ),
          );
        });
        const outcome = settled.map((s) =>
          s.status === 'fulfilled' ? (idOf(s.value) ?? null) : (s.reason as GatewayError).code,
        );
        expect(outcome).toEqual([
          valid[0],
          'BAD_USER_INPUT',
          valid[1],
          'BAD_USER_INPUT',
          null,
          'BAD_USER_INPUT',
          valid[2],
        ]);
        for (const s of settled) {
          if (s.status === 'rejected') expect(s.reason).toBeInstanceOf(GatewayError);
        }
        // One statement, for the valid keys only.
        expect(events).toEqual([
          expect.objectContaining({ operation: 'Customer.by(id)', rowCount: 3 }),
        ]);
        // A batch of invalid keys alone makes no statement at all; so does a relation on one.
        const none = await eventsDuring(async () => {
          const only = data(tenant);
          for (const key of invalid) await expectCode(only.lookup(B.order, key), 'BAD_USER_INPUT');
          await expectCode(
            only.related(B.orderCustomer, parentWith(B.orderCustomer, ''), {}),
            'BAD_USER_INPUT',
          );
        });
        expect(none).toEqual([]);
      }
    });

    it('refuses out-of-range page sizes and forged cursors with BAD_USER_INPUT naming the argument, before any statement', async () => {
      const tenant = fx.tenants[0]!;
      const parent = parentWith(B.customerOrders, seedOf(tenant).customers[0]!.id);
      const events = await eventsDuring(async () => {
        for (const first of [0, -1, 2.5, BEHAVIOUR_MAX_PAGE_SIZE + 1]) {
          const error = await expectCode(
            data(tenant).page(B.customers, { first }),
            'BAD_USER_INPUT',
          );
          expect(error.extensions['argument']).toBe('first');
        }
        // Customer.orders says max: 50 itself.
        for (const first of [0, 2.5, 51]) {
          await expectCode(
            data(tenant).related(B.customerOrders, parent, { first }),
            'BAD_USER_INPUT',
          );
        }
        for (const after of ['forged', encodeCursor('z'.repeat(200)), 'x'.repeat(300)]) {
          const error = await expectCode(
            data(tenant).page(B.customers, { first: 5, after }),
            'BAD_USER_INPUT',
          );
          expect(error.extensions['argument']).toBe('after');
        }
      });
      expect(events).toEqual([]);
    });

    it('serves GraphQL through the bindings: one statement per level, and nothing for what the types refuse', async () => {
      const { schema } = demoSchema();
      for (const tenant of fx.tenants) {
        const principal: Principal = {
          tenantId: tenant.id,
          subject: 'battery',
          scopes: ['read', 'write'],
          claims: {},
          expiresAt: Number.MAX_SAFE_INTEGER,
        };
        const context = () => {
          const registry = createLoaderRegistry(tenant.id);
          return {
            requestId: 'battery',
            principal,
            tenant,
            loaders: registry,
            data: createTenantData({
              tenant,
              dataSource: fx.source,
              loaders: registry,
              bindings: demoSchema().bindings,
              catalog: () => Promise.resolve(catalogs.get(tenant.id)),
              maxPageSize: BEHAVIOUR_MAX_PAGE_SIZE,
            }),
          } as unknown as GatewayContext;
        };
        let result: Awaited<ReturnType<typeof graphql>> | undefined;
        const events = await eventsDuring(async () => {
          result = await graphql({
            schema,
            source: `{ customers(first: 50) { edges { node { id orders(first: 3) { id customer { id } } } } } }`,
            contextValue: context(),
          });
        });
        expect(result?.errors).toBeUndefined();
        const nodes = (
          result!.data as {
            customers: {
              edges: { node: { id: string; orders: { customer: { id: string } }[] } }[];
            };
          }
        ).customers.edges.map((e) => e.node);
        expect(nodes).toHaveLength(50);
        for (const node of nodes) {
          expect(node.orders.length).toBeLessThanOrEqual(3);
          for (const order of node.orders) expect(order.customer.id).toBe(node.id);
        }
        // The page, then the orders of all 50; their customers were read by the page already.
        expect(events.map((e) => [e.tenantId, e.operation, e.roundTrips])).toEqual([
          [tenant.id, 'Query.customers', trips(tenant)],
          [tenant.id, 'Customer.orders', trips(tenant)],
        ]);

        const customerId = seedOf(tenant).customers[2]!.id;
        const refused = await eventsDuring(async () => {
          for (const [source, variables] of [
            [
              `mutation { createOrder(input: { customerId: "${customerId}", amount: 5, currency: "USD", channel: FAX }) { id } }`,
              {},
            ],
            [
              `mutation ($n: Int!) { createOrder(input: { customerId: "${customerId}", amount: 5, currency: "USD", channel: WEB, itemCount: $n }) { id } }`,
              { n: 1.5 },
            ],
            [
              `mutation { createOrder(input: { customerId: "${customerId}", currency: "USD", channel: WEB }) { id } }`,
              {},
            ],
            ['{ customers(first: 5, segment: HUGE) { edges { node { id } } } }', {}],
            ['query ($f: Int) { customers(first: $f) { edges { node { id } } } }', { f: 2.5 }],
          ] as const) {
            const answer = await graphql({
              schema,
              source,
              variableValues: variables,
              contextValue: context(),
            });
            expect(answer.data, source).toBeUndefined();
            expect(answer.errors?.length, source).toBeGreaterThan(0);
          }
        });
        expect(refused).toEqual([]);
      }
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
                    (SELECT setting FROM pg_settings WHERE name = 'statement_timeout')
                      AS statement_timeout,
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
        expect(state.search_path).not.toMatch(/tenant_|atrium_shared|custom_/);
        expect(['', null]).toContain(state.tenant_setting);
        expect(state.current_user).toBe(state.session_user);
        // The session's own value (a pool may start its connections with one), not a batch's.
        expect(state.statement_timeout).toBe(state.statement_timeout_default);
        expect(state.read_only).toBe('off');
        expect(state.savepoint).toBe('25P01');
      };

      await expectClean();
      for (let round = 0; round < 2; round += 1) {
        for (const tenant of fx.sharedSessionTenants) {
          const seed = seedOf(tenant);
          const page = await data(tenant).page(B.customers, { first: 3 });
          expect(page.rows).toHaveLength(3);
          await expectClean();
          const ids = page.rows.map((r) => idOf(r)!);
          expect((await lookups(data(tenant), B.customer, ids)).map(idOf)).toEqual(ids);
          await expectClean();
          expect((await ordersOf(tenant, page.rows, 2)).length).toBe(3);
          await expectClean();
          // A failing statement (FK violation; for row tenants → ROLLBACK) leaves nothing either.
          await expectFieldError(
            data(tenant).insert(B.createOrder, orderInput('cus_nobody')),
            'customerId',
          );
          await expectClean();
          await insert(tenant, orderInput(seed.customers[0]!.id));
          await expectClean();
        }
      }
    });

    /** Holds `tenant`'s one session until `release()`; `blocker` settles when it is given back. */
    async function holdSession(tenant: TenantDataRef) {
      let release!: () => void;
      let holding!: () => void;
      const held = new Promise<void>((resolve) => (holding = resolve));
      const blocker = fx.source.withSession(tenant, () => {
        holding();
        return new Promise<void>((resolve) => (release = resolve));
      });
      await held;
      return { release, blocker };
    }

    it('joins concurrent requests of one tenant into one statement while they wait for a session, never two tenants', async () => {
      const [tenant, other] = fx.sharedSessionTenants as [TenantDataRef, TenantDataRef];
      const shared = createSharedLookups(fx.source);
      const request = (t: TenantDataRef) => requestData(fx.source, t, catalogs.get(t.id), shared);
      const customers = seedOf(tenant).customers.slice(0, 3);
      const ids = customers.map((c) => c.id);
      // Hold the one session, so the requests' batches queue for it as under load.
      const { release, blocker } = await holdSession(tenant);
      const events = await eventsDuring(async () => {
        const requests = ids.map(() => request(tenant));
        const found = Promise.all([
          ...ids.map((id, i) => requests[i]!.lookup(B.customer, id)),
          // Another tenant asking for the same keys: its own statement, none of these rows.
          request(other).lookup(B.customer, ids[0]!),
        ]);
        const orders = Promise.all(
          requests.map(async (r, i) => {
            const parent = await r.lookup(B.customer, ids[i]!);
            return (await r.related(B.customerOrders, parent!, { first: 2 })) as DataRecord[];
          }),
        );
        await new Promise((resolve) => setTimeout(resolve, 20));
        release();
        await blocker;
        const answers = await found;
        expect(answers.slice(0, 3).map(idOf)).toEqual(ids);
        expect(answers[3]).toBeNull();
        // Each request reads its own parent's orders only, from one statement for all three.
        for (const [i, list] of (await orders).entries()) {
          expect(list.length).toBeGreaterThan(0);
          for (const order of list) expect(customerIdOf(order)).toBe(ids[i]);
        }
      });
      const lookupsOf = (t: TenantDataRef) =>
        events.filter((e) => e.tenantId === t.id && e.operation === 'Customer.by(id)');
      expect(lookupsOf(tenant).map((e) => e.rowCount)).toEqual([3]);
      expect(lookupsOf(other).map((e) => e.rowCount)).toEqual([0]);
      expect(
        events.filter((e) => e.tenantId === tenant.id && e.operation === 'Customer.orders'),
      ).toHaveLength(1);
    });

    it('answers concurrent requests of one tenant asking the same page from one statement, never two tenants or two pages', async () => {
      const [tenant, other] = fx.sharedSessionTenants as [TenantDataRef, TenantDataRef];
      const shared = createSharedLookups(fx.source);
      const request = (t: TenantDataRef) => requestData(fx.source, t, catalogs.get(t.id), shared);
      const { release, blocker } = await holdSession(tenant);
      const events = await eventsDuring(async () => {
        const same = Promise.all(
          [1, 2, 3].map(() => request(tenant).page(B.customers, { first: 2 })),
        );
        // Another page size, and another tenant's same page: statements of their own.
        const larger = request(tenant).page(B.customers, { first: 3 });
        const theirs = request(other).page(B.customers, { first: 2 });
        await new Promise((resolve) => setTimeout(resolve, 20));
        release();
        await blocker;
        const pages = await same;
        const ids = pages.map((p) => p.rows.map(idOf));
        expect(ids[0]).toHaveLength(2);
        expect(ids[1]).toEqual(ids[0]);
        expect(ids[2]).toEqual(ids[0]);
        expect((await larger).rows.map(idOf).slice(0, 2)).toEqual(ids[0]);
        const own = new Set(seedOf(other).customers.map((c) => c.id));
        for (const row of (await theirs).rows) expect(own.has(idOf(row)!)).toBe(true);
      });
      const pagesOf = (t: TenantDataRef) =>
        events.filter((e) => e.tenantId === t.id && e.operation === 'Query.customers');
      expect(
        pagesOf(tenant)
          .map((e) => e.rowCount)
          .sort(),
      ).toEqual([3, 4]);
      expect(pagesOf(other)).toHaveLength(1);
    });

    it('never fails a request for another request’s key that broke their joined statement', async () => {
      const [tenant] = fx.sharedSessionTenants as [TenantDataRef, TenantDataRef];
      const shared = createSharedLookups(fx.source);
      const request = () => requestData(fx.source, tenant, catalogs.get(tenant.id), shared);
      const ids = seedOf(tenant)
        .customers.slice(0, 2)
        .map((c) => c.id);
      // A text key no column can hold (U+0000): the database refuses the statement that carries it.
      const hostile = 'cus_\u0000x';
      const { release, blocker } = await holdSession(tenant);
      let settled: PromiseSettledResult<DataRecord | null>[] = [];
      const events = await eventsDuring(async () => {
        const pending = Promise.allSettled(
          [ids[0]!, hostile, ids[1]!].map((key) => request().lookup(B.customer, key)),
        );
        await new Promise((resolve) => setTimeout(resolve, 20));
        release();
        await blocker;
        settled = await pending;
      });
      const outcome = settled.map((s) =>
        s.status === 'fulfilled' ? (idOf(s.value) ?? null) : (s.reason as GatewayError).code,
      );
      expect(outcome).toEqual([ids[0], 'BAD_USER_INPUT', ids[1]]);
      // The joined statement (three keys) failed; then each request read its own keys alone.
      const lookups = events.filter(
        (e) => e.tenantId === tenant.id && e.operation === 'Customer.by(id)',
      );
      expect(lookups.length).toBe(4);
    });

    it('keeps tenants apart under concurrent batches', async () => {
      const owned = new Map<string, Set<string>>();
      for (const tenant of fx.tenants) {
        owned.set(tenant.id, new Set(seedOf(tenant).customers.map((c) => c.id)));
      }
      const everyId = [...owned.values()].flatMap((s) => [...s]);
      const calls = Array.from({ length: 40 }, async (_, i) => {
        const tenant = fx.tenants[i % fx.tenants.length]!;
        const request = data(tenant);
        if (i % 2 === 0) {
          const found = await lookups(request, B.customer, everyId);
          return { tenant, ids: found.filter((r) => r !== null).map((r) => idOf(r)!) };
        }
        const children = await ordersOf(
          tenant,
          everyId.map((id) => parentWith(B.customerOrders, id)),
          2,
          request,
        );
        return { tenant, ids: children.flat().map(customerIdOf) };
      });
      for (const { tenant, ids } of await Promise.all(calls)) {
        expect(ids.length).toBeGreaterThan(0);
        for (const id of ids) expect(owned.get(tenant.id)!.has(id)).toBe(true);
      }
    });
  });
}
