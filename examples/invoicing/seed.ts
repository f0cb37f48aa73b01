/**
 * The invoicing example's seed (`data.seed` in examples/invoicing/atrium.yaml): `size` accounts
 * per tenant (default 100) with 0..8 invoices each, the same on every run, inserted
 * idempotently with explicit integer ids 1..N per tenant.
 */
import pg from 'pg';
import type { SeedReport, SeedTarget } from '../../src/backends/data/seeding.js';
import type { SqlExecutor } from '../../src/backends/data/sql-executor.js';
import { createPrng, type Prng } from '../demo/prng.js';

const { escapeIdentifier } = pg;

export type InvoiceStatus = 'OPEN' | 'PAID' | 'OVERDUE';

export interface AccountRecord {
  id: number;
  name: string;
  country: string;
  creditLimit: number;
  overdueInvoices: number;
  averageDaysLate: number;
  openedAt: Date;
}

export interface InvoiceRecord {
  id: number;
  accountId: number;
  number: string;
  amount: number;
  currency: string;
  status: InvoiceStatus;
  issuedAt: Date;
  dueAt: Date;
  paidAt: Date | null;
}

export interface InvoicingSeedOptions {
  /** Accounts per tenant; default 100. */
  size?: number | undefined;
}

export const DEFAULT_SEED_ACCOUNTS = 100;
export const MAX_INVOICES_PER_ACCOUNT = 8;
/** Seeded timestamps count back from this instant, so a seed is identical on every run. */
export const SEED_EPOCH = Date.UTC(2025, 0, 1);
const DAY_MS = 86_400_000;

const NAME_PARTS: readonly string[] = (
  'Acorn Birch Cedar Delta Ember Fjord Granite Harbor Iris Juniper Kestrel Linden Meridian ' +
  'Nimbus Orchid Pinnacle Quarry Redwood Summit Tidal Umber Vale Willow Zephyr'
).split(' ');
const SUFFIXES: readonly string[] =
  'Labs Logistics Foods Systems Studio Works Partners Trading'.split(' ');
/** Country → the currency its invoices are issued in. */
const COUNTRIES: ReadonlyArray<readonly [string, string]> =
  'US:USD US:USD US:USD GB:GBP DE:EUR FR:EUR NL:EUR ES:EUR SE:SEK PL:PLN CA:CAD AU:AUD JP:JPY'
    .split(' ')
    .map((pair) => [pair.slice(0, 2), pair.slice(3)] as const);

function checkSize(options: InvoicingSeedOptions): number {
  const size = options.size ?? DEFAULT_SEED_ACCOUNTS;
  if (!Number.isInteger(size) || size < 0 || size > 100_000) {
    throw new TypeError(`size (accounts) must be an integer from 0 to 100000; found ${size}`);
  }
  return size;
}

function companyName(rng: Prng, i: number): string {
  return `${rng.pick(NAME_PARTS)} ${rng.pick(SUFFIXES)} ${i}`;
}

/**
 * The rows of one tenant, a pure function of the tenant id and the size. Account `i` and its
 * invoices depend only on (tenant, i), and invoice ids are numbered in account order, so a
 * larger size keeps the rows of a smaller one identical.
 */
export function generateInvoicingData(
  tenantId: string,
  options: InvoicingSeedOptions = {},
): { accounts: AccountRecord[]; invoices: InvoiceRecord[] } {
  const size = checkSize(options);
  const accounts: AccountRecord[] = [];
  const invoices: InvoiceRecord[] = [];
  for (let id = 1; id <= size; id += 1) {
    const rng = createPrng(`atrium-invoicing/${tenantId}/account/${id}`);
    const [country, currency] = rng.pick(COUNTRIES);
    // Within the credit model's ranges: limit 1000..100000 (log-uniform), overdue 0..20,
    // days late 0..90, late payers being late more often.
    const creditLimit = Math.round(Math.exp(Math.log(1000) + rng.next() * Math.log(100)));
    const overdueInvoices = rng.chance(0.6) ? 0 : rng.int(1, 20);
    const averageDaysLate =
      overdueInvoices === 0 ? rng.int(0, 5) : Math.min(90, rng.int(5, 30) + overdueInvoices * 3);
    const openedAt = new Date(SEED_EPOCH - rng.int(30, 3650) * DAY_MS - rng.int(0, 86_399) * 1000);
    accounts.push({
      id,
      name: companyName(rng, id),
      country,
      creditLimit: Math.min(100_000, Math.max(1000, creditLimit)),
      overdueInvoices,
      averageDaysLate,
      openedAt,
    });
    const count = rng.int(0, MAX_INVOICES_PER_ACCOUNT);
    for (let j = 1; j <= count; j += 1) {
      const span = SEED_EPOCH - openedAt.getTime();
      const issuedAt = new Date(openedAt.getTime() + Math.floor(rng.next() * span));
      const dueAt = new Date(issuedAt.getTime() + rng.pick([14, 30, 30, 60]) * DAY_MS);
      const roll = rng.next();
      const status: InvoiceStatus =
        dueAt.getTime() >= SEED_EPOCH ? 'OPEN' : roll < 0.8 ? 'PAID' : 'OVERDUE';
      const paidAt =
        status === 'PAID'
          ? new Date(Math.min(SEED_EPOCH - 1000, dueAt.getTime() + (rng.int(0, 40) - 20) * DAY_MS))
          : null;
      invoices.push({
        id: invoices.length + 1,
        accountId: id,
        number: `INV-${String(id).padStart(5, '0')}-${String(j).padStart(2, '0')}`,
        amount: rng.money(50, 20_000),
        currency,
        status,
        issuedAt,
        dueAt,
        paidAt: paidAt !== null && paidAt.getTime() < issuedAt.getTime() ? issuedAt : paidAt,
      });
    }
  }
  return { accounts, invoices };
}

function table(schema: string, name: string): string {
  return `${escapeIdentifier(schema)}.${escapeIdentifier(name)}`;
}

/**
 * Moves the identity sequence of `name`.id past the explicit ids. In the `row` strategy the
 * table and its sequence are shared while this transaction sees only its tenant's rows, so the
 * sequence never moves backwards (GREATEST with its current value).
 */
async function advanceIdentity(session: SqlExecutor, schema: string, name: string): Promise<void> {
  const t = table(schema, name);
  await session.query(
    `WITH s AS (SELECT pg_get_serial_sequence($1, 'id')::regclass AS seq)
     SELECT setval(s.seq, GREATEST((SELECT max(id) FROM ${t}), coalesce(pg_sequence_last_value(s.seq), 1)))
       FROM s`,
    [t],
  );
}

async function count(session: SqlExecutor, sql: string, params: unknown[]): Promise<number> {
  const result = await session.query<{ n: number }>(sql, params);
  return result.rows[0]?.n ?? 0;
}

/** Inserts the rows of `target.tenantId` into `target.schema`; rows already there are kept. */
export async function seed(
  session: SqlExecutor,
  target: SeedTarget,
  options: InvoicingSeedOptions = {},
): Promise<SeedReport> {
  const { accounts: a, invoices: i } = generateInvoicingData(target.tenantId, options);
  const accountsInserted = await count(
    session,
    `WITH inserted AS (
       INSERT INTO ${table(target.schema, 'accounts')}
         (tenant_id, id, name, country, credit_limit, overdue_invoices, average_days_late, opened_at)
       SELECT $1::text, u.* FROM unnest($2::int[], $3::text[], $4::text[], $5::numeric[],
                                      $6::int[], $7::int[], $8::timestamptz[]) AS u
       ON CONFLICT DO NOTHING
       RETURNING 1
     ) SELECT count(*)::int AS n FROM inserted`,
    [
      target.tenantId,
      a.map((r) => r.id),
      a.map((r) => r.name),
      a.map((r) => r.country),
      a.map((r) => r.creditLimit),
      a.map((r) => r.overdueInvoices),
      a.map((r) => r.averageDaysLate),
      a.map((r) => r.openedAt.toISOString()),
    ],
  );
  const invoicesInserted = await count(
    session,
    `WITH inserted AS (
       INSERT INTO ${table(target.schema, 'invoices')}
         (tenant_id, id, account_id, number, amount, currency, status, issued_at, due_at, paid_at)
       SELECT $1::text, u.* FROM unnest($2::bigint[], $3::int[], $4::text[], $5::numeric[],
                                      $6::text[], $7::text[], $8::timestamptz[],
                                      $9::timestamptz[], $10::timestamptz[]) AS u
       ON CONFLICT DO NOTHING
       RETURNING 1
     ) SELECT count(*)::int AS n FROM inserted`,
    [
      target.tenantId,
      i.map((r) => r.id),
      i.map((r) => r.accountId),
      i.map((r) => r.number),
      i.map((r) => r.amount),
      i.map((r) => r.currency),
      i.map((r) => r.status),
      i.map((r) => r.issuedAt.toISOString()),
      i.map((r) => r.dueAt.toISOString()),
      i.map((r) => r.paidAt?.toISOString() ?? null),
    ],
  );
  if (a.length > 0) await advanceIdentity(session, target.schema, 'accounts');
  if (i.length > 0) await advanceIdentity(session, target.schema, 'invoices');
  return {
    rows: a.length + i.length,
    inserted: accountsInserted + invoicesInserted,
    tables: {
      accounts: { rows: a.length, inserted: accountsInserted },
      invoices: { rows: i.length, inserted: invoicesInserted },
    },
  };
}
