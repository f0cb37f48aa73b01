/**
 * The demo's seed (`data.seed` in examples/demo/atrium.yaml): deterministic customers and
 * orders per tenant, the same on every run and every machine, inserted idempotently.
 */
import pg from 'pg';
import type { SeedReport, SeedTarget } from '../../src/backends/data/seeding.js';
import type { SqlExecutor } from '../../src/backends/data/sql-executor.js';
import { createPrng, type Prng } from './prng.js';

const { escapeIdentifier } = pg;

export type Segment = 'SMB' | 'MID_MARKET' | 'ENTERPRISE';
export type Channel = 'WEB' | 'MOBILE' | 'STORE' | 'PHONE';

export interface CustomerRecord {
  id: string;
  name: string;
  email: string;
  segment: Segment;
  country: string;
  createdAt: Date;
  lifetimeValue: number;
  tenureMonths: number;
  monthlySpend: number;
  supportTickets: number;
  daysSinceLastLogin: number;
}

export interface OrderRecord {
  id: string;
  customerId: string;
  amount: number;
  currency: string;
  channel: Channel;
  createdAt: Date;
  itemCount: number;
  isInternational: boolean;
  paymentAttempts: number;
  hourOfDay: number;
}

export interface SeedOptions {
  /** Customers per tenant; default 200. */
  size?: number | undefined;
  /** Orders per customer, drawn uniformly in [min, max]; default 0..12. */
  ordersPerCustomer?: { min: number; max: number } | undefined;
}

export const DEFAULT_SEED_CUSTOMERS = 200;
export const DEFAULT_ORDERS_PER_CUSTOMER = { min: 0, max: 12 } as const;
/** Seeded timestamps count back from this instant, so a seed is identical on every run. */
export const SEED_EPOCH = Date.UTC(2025, 0, 1);

const DAY_MS = 86_400_000;

const FIRST_NAMES: readonly string[] = (
  'Ada Alan Amara Ana Arjun Bea Carlos Chen Dara Elena Emeka Farah Grace Hana Ines ' +
  'Ivan Jonas Kai Lena Luis Maya Mei Nadia Noah Olga Omar Priya Rui Sara Tariq ' +
  'Yuki Zoe'
).split(' ');
const LAST_NAMES: readonly string[] = (
  'Abara Berg Costa Dubois Eriksen Fischer Garcia Haddad Ito Jansen Kowalski Lopez ' +
  'Müller Nakamura Novak Okafor Patel Quinn Rossi Santos Schmidt Tanaka Umar Varga ' +
  'Wang Yilmaz Zhang'
).split(' ');
/** Country → the currency its domestic orders are paid in. */
const COUNTRIES: ReadonlyArray<readonly [string, string]> = (
  'US:USD US:USD US:USD GB:GBP GB:GBP DE:EUR DE:EUR FR:EUR NL:EUR ES:EUR IT:EUR ' +
  'IE:EUR SE:SEK PL:PLN CA:CAD AU:AUD JP:JPY BR:BRL IN:INR SG:SGD'
)
  .split(' ')
  .map((pair) => [pair.slice(0, 2), pair.slice(3)] as const);
const CURRENCIES = ['USD', 'EUR', 'GBP', 'JPY', 'CAD', 'AUD'] as const;
const SEGMENT_WEIGHTS: ReadonlyArray<readonly [Segment, number]> = [
  ['SMB', 0.6],
  ['MID_MARKET', 0.3],
  ['ENTERPRISE', 0.1],
];
const CHANNEL_WEIGHTS: ReadonlyArray<readonly [Channel, number]> = [
  ['WEB', 0.5],
  ['MOBILE', 0.3],
  ['STORE', 0.12],
  ['PHONE', 0.08],
];
/** Monthly spend range by segment, within 0..5000 overall. */
const SPEND: Readonly<Record<Segment, readonly [number, number]>> = {
  SMB: [0, 500],
  MID_MARKET: [200, 2000],
  ENTERPRISE: [1000, 5000],
};

function weighted<T>(rng: Prng, table: ReadonlyArray<readonly [T, number]>): T {
  let roll = rng.next();
  for (const [value, weight] of table) {
    roll -= weight;
    if (roll < 0) return value;
  }
  const last = table[table.length - 1];
  if (last === undefined) throw new RangeError('empty weight table');
  return last[0];
}

function checkSeedOptions(options: SeedOptions): { customers: number; min: number; max: number } {
  const customers = options.size ?? DEFAULT_SEED_CUSTOMERS;
  const { min, max } = options.ordersPerCustomer ?? DEFAULT_ORDERS_PER_CUSTOMER;
  if (!Number.isInteger(customers) || customers < 0 || customers > 100_000) {
    throw new TypeError(`size (customers) must be an integer from 0 to 100000; found ${customers}`);
  }
  if (!Number.isInteger(min) || !Number.isInteger(max) || min < 0 || max > 1000 || min > max) {
    throw new TypeError(
      `ordersPerCustomer must be integers with 0 ≤ min ≤ max ≤ 1000; found ${min}..${max}`,
    );
  }
  return { customers, min, max };
}

export interface TenantSeedData {
  customers: CustomerRecord[];
  orders: OrderRecord[];
}

/**
 * The demo rows of one tenant — a pure function of the tenant id and the options. Customer `i`
 * depends only on (tenant, i), so seeding more customers later keeps the first ones identical,
 * and ids (`cus_`/`ord_` + 12 base-36 characters) come from a generator keyed by the tenant,
 * so different tenants do not share ids.
 */
export function generateTenantData(tenantId: string, options: SeedOptions = {}): TenantSeedData {
  const { customers: count, min, max } = checkSeedOptions(options);
  const customers: CustomerRecord[] = [];
  const orders: OrderRecord[] = [];
  const ids = new Set<string>();
  const uniqueId = (rng: Prng, prefix: string): string => {
    for (;;) {
      const id = `${prefix}_${rng.token(12)}`;
      if (!ids.has(id)) {
        ids.add(id);
        return id;
      }
    }
  };
  for (let i = 0; i < count; i += 1) {
    const rng = createPrng(`atrium-seed/${tenantId}/customer/${i}`);
    const id = uniqueId(rng, 'cus');
    const first = rng.pick(FIRST_NAMES);
    const last = rng.pick(LAST_NAMES);
    const segment = weighted(rng, SEGMENT_WEIGHTS);
    const [country, homeCurrency] = rng.pick(COUNTRIES);
    const tenureMonths = rng.int(0, 120);
    const [spendMin, spendMax] = SPEND[segment];
    const monthlySpend = rng.money(spendMin, spendMax);
    // 0 = engaged, 1 = drifting away: disengaged customers log in rarely and complain more,
    // which gives the churn model something real to find.
    const disengagement = rng.next();
    const supportTickets = rng.int(0, Math.round(30 * disengagement));
    const daysSinceLastLogin = rng.int(0, Math.round(365 * disengagement * disengagement));
    const lifetimeValue = Math.min(
      200_000,
      Math.round(monthlySpend * tenureMonths * (0.6 + 0.4 * rng.next()) * 100) / 100,
    );
    const createdAt = new Date(
      SEED_EPOCH - (tenureMonths * 30 + rng.int(1, 29)) * DAY_MS - rng.int(0, 86_399) * 1000,
    );
    const emailName = `${first}.${last}`
      .toLowerCase()
      .normalize('NFD')
      .replace(/[^a-z.]/g, '');
    customers.push({
      id,
      name: `${first} ${last}`,
      email: `${emailName}.${i + 1}@${tenantId}.example`,
      segment,
      country,
      createdAt,
      lifetimeValue,
      tenureMonths,
      monthlySpend,
      supportTickets,
      daysSinceLastLogin,
    });
    const orderCount = rng.int(min, max);
    for (let j = 0; j < orderCount; j += 1) {
      const span = SEED_EPOCH - createdAt.getTime();
      const day = Math.floor((createdAt.getTime() + rng.next() * span) / DAY_MS) * DAY_MS;
      const hourOfDay = rng.int(0, 23);
      const isInternational = rng.chance(0.12);
      orders.push({
        id: uniqueId(rng, 'ord'),
        customerId: id,
        // Mostly small baskets, a long tail of large ones: 1..5000.
        amount: Math.max(1, Math.round((1 + 4999 * rng.next() ** 3) * 100) / 100),
        currency: isInternational ? rng.pick(CURRENCIES) : homeCurrency,
        channel: weighted(rng, CHANNEL_WEIGHTS),
        createdAt: new Date(day + hourOfDay * 3_600_000 + rng.int(0, 3599) * 1000),
        itemCount: Math.min(20, 1 + Math.floor(20 * rng.next() ** 2)),
        isInternational,
        paymentAttempts: rng.chance(0.85) ? 1 : rng.int(2, 5),
        hourOfDay,
      });
    }
  }
  return { customers, orders };
}

/** `INSERT … SELECT FROM unnest(…)`: one statement and a fixed number of parameters per table. */
function insertSql(table: string, columns: readonly string[], types: readonly string[]): string {
  const arrays = types.map((type, i) => `$${i + 2}::${type}[]`).join(', ');
  return `WITH inserted AS (
      INSERT INTO ${table} (tenant_id, ${columns.join(', ')})
      SELECT $1::text, u.* FROM unnest(${arrays}) AS u
      ON CONFLICT DO NOTHING
      RETURNING 1
    ) SELECT count(*)::int AS n FROM inserted`;
}

const CUSTOMER_COLUMNS = [
  ['id', 'text'],
  ['name', 'text'],
  ['email', 'text'],
  ['segment', 'text'],
  ['country', 'text'],
  ['created_at', 'timestamptz'],
  ['lifetime_value', 'numeric'],
  ['tenure_months', 'int'],
  ['monthly_spend', 'numeric'],
  ['support_tickets', 'int'],
  ['days_since_last_login', 'int'],
] as const;

const ORDER_COLUMNS = [
  ['id', 'text'],
  ['customer_id', 'text'],
  ['amount', 'numeric'],
  ['currency', 'text'],
  ['channel', 'text'],
  ['created_at', 'timestamptz'],
  ['item_count', 'int'],
  ['is_international', 'boolean'],
  ['payment_attempts', 'int'],
  ['hour_of_day', 'int'],
] as const;

function insertFor(
  schema: string,
  table: string,
  columns: ReadonlyArray<readonly [string, string]>,
) {
  return insertSql(
    `${escapeIdentifier(schema)}.${escapeIdentifier(table)}`,
    columns.map(([name]) => name),
    columns.map(([, type]) => type),
  );
}

/**
 * Inserts the demo rows of `target.tenantId` into `target.schema` (rows already there are
 * kept). Runs inside the transaction and isolation the caller (`seedTenant`) set up.
 */
export async function seed(
  session: SqlExecutor,
  target: SeedTarget,
  options: SeedOptions = {},
): Promise<SeedReport> {
  const { customers: c, orders: o } = generateTenantData(target.tenantId, options);
  const customers = await session.query<{ n: number }>(
    insertFor(target.schema, 'customers', CUSTOMER_COLUMNS),
    [
      target.tenantId,
      c.map((r) => r.id),
      c.map((r) => r.name),
      c.map((r) => r.email),
      c.map((r) => r.segment),
      c.map((r) => r.country),
      c.map((r) => r.createdAt.toISOString()),
      c.map((r) => r.lifetimeValue),
      c.map((r) => r.tenureMonths),
      c.map((r) => r.monthlySpend),
      c.map((r) => r.supportTickets),
      c.map((r) => r.daysSinceLastLogin),
    ],
  );
  const orders = await session.query<{ n: number }>(
    insertFor(target.schema, 'orders', ORDER_COLUMNS),
    [
      target.tenantId,
      o.map((r) => r.id),
      o.map((r) => r.customerId),
      o.map((r) => r.amount),
      o.map((r) => r.currency),
      o.map((r) => r.channel),
      o.map((r) => r.createdAt.toISOString()),
      o.map((r) => r.itemCount),
      o.map((r) => r.isInternational),
      o.map((r) => r.paymentAttempts),
      o.map((r) => r.hourOfDay),
    ],
  );
  const customersInserted = customers.rows[0]?.n ?? 0;
  const ordersInserted = orders.rows[0]?.n ?? 0;
  return {
    rows: c.length + o.length,
    inserted: customersInserted + ordersInserted,
    tables: {
      customers: { rows: c.length, inserted: customersInserted },
      orders: { rows: o.length, inserted: ordersInserted },
    },
  };
}
