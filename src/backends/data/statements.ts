import type {
  Channel,
  CreateOrderInput,
  CustomerRecord,
  ListCustomersArgs,
  OrderRecord,
  Segment,
} from './types.js';

/**
 * The data statements, one per DataSource method. Table names are unqualified: they resolve in
 * the schema that the transaction's `SET LOCAL search_path` names. For the `row` strategy
 * (`tenantId` given) every statement also filters on `tenant_id = $n`, in addition to RLS.
 */
export interface Statement {
  /** The DataSource method, for events and error messages. */
  operation: string;
  text: string;
  params: unknown[];
  readOnly: boolean;
}

// numeric → float8 in SQL, so both drivers hand back numbers without global type parsers.
const CUSTOMER_COLUMNS = `id, name, email, segment, country, created_at,
  lifetime_value::float8 AS lifetime_value, tenure_months,
  monthly_spend::float8 AS monthly_spend, support_tickets, days_since_last_login`;

const ORDER_COLUMNS = `id, customer_id, amount::float8 AS amount, currency, channel, created_at,
  item_count, is_international, payment_attempts, hour_of_day`;

/** `AND tenant_id = $n` for the row strategy, appending the parameter. */
function tenantFilter(params: unknown[], tenantId: string | undefined, alias = ''): string {
  if (tenantId === undefined) return '';
  params.push(tenantId);
  return ` AND ${alias}tenant_id = $${params.length}`;
}

export function customersByIdsStatement(ids: string[], tenantId?: string): Statement {
  const params: unknown[] = [ids];
  const text = `SELECT ${CUSTOMER_COLUMNS} FROM customers
    WHERE id = ANY($1::text[])${tenantFilter(params, tenantId)}`;
  return { operation: 'customersByIds', text, params, readOnly: true };
}

export function ordersByIdsStatement(ids: string[], tenantId?: string): Statement {
  const params: unknown[] = [ids];
  const text = `SELECT ${ORDER_COLUMNS} FROM orders
    WHERE id = ANY($1::text[])${tenantFilter(params, tenantId)}`;
  return { operation: 'ordersByIds', text, params, readOnly: true };
}

/** The newest `first` orders of each customer, every customer in one statement. */
export function ordersByCustomerIdsStatement(
  customerIds: string[],
  first: number,
  tenantId?: string,
): Statement {
  const params: unknown[] = [customerIds, first];
  const text = `SELECT ${ORDER_COLUMNS} FROM (
      SELECT o.*, row_number() OVER (
        PARTITION BY o.customer_id ORDER BY o.created_at DESC, o.id
      ) AS rn
      FROM orders o
      WHERE o.customer_id = ANY($1::text[])${tenantFilter(params, tenantId, 'o.')}
    ) ranked
    WHERE rn <= $2
    ORDER BY customer_id, created_at DESC, id`;
  return { operation: 'ordersByCustomerIds', text, params, readOnly: true };
}

/** Keyset page by id; asks for one extra row to learn whether another page exists. */
export function listCustomersStatement(args: ListCustomersArgs, tenantId?: string): Statement {
  const params: unknown[] = [args.first + 1];
  const where: string[] = [];
  if (args.afterId !== undefined) {
    params.push(args.afterId);
    where.push(`id > $${params.length}`);
  }
  if (args.segment !== undefined) {
    params.push(args.segment);
    where.push(`segment = $${params.length}`);
  }
  if (tenantId !== undefined) {
    params.push(tenantId);
    where.push(`tenant_id = $${params.length}`);
  }
  const text = `SELECT ${CUSTOMER_COLUMNS} FROM customers
    ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY id LIMIT $1`;
  return { operation: 'listCustomers', text, params, readOnly: true };
}

export function createOrderStatement(
  id: string,
  input: CreateOrderInput,
  tenantId?: string,
): Statement {
  const params: unknown[] = [
    id,
    input.customerId,
    input.amount,
    input.currency,
    input.channel,
    input.itemCount,
    input.isInternational,
    input.paymentAttempts,
    input.hourOfDay,
  ];
  const columns = `id, customer_id, amount, currency, channel, item_count, is_international,
    payment_attempts, hour_of_day`;
  const values = params.map((_, i) => `$${i + 1}`).join(', ');
  const text =
    tenantId === undefined
      ? `INSERT INTO orders (${columns}) VALUES (${values}) RETURNING ${ORDER_COLUMNS}`
      : `INSERT INTO orders (${columns}, tenant_id) VALUES (${values}, $${params.push(tenantId)})
         RETURNING ${ORDER_COLUMNS}`;
  return { operation: 'createOrder', text, params, readOnly: false };
}

/** A customer row as both drivers return it for `CUSTOMER_COLUMNS`. */
export interface CustomerRow {
  id: string;
  name: string;
  email: string;
  segment: string;
  country: string;
  created_at: Date;
  lifetime_value: number;
  tenure_months: number;
  monthly_spend: number;
  support_tickets: number;
  days_since_last_login: number;
}

export interface OrderRow {
  id: string;
  customer_id: string;
  amount: number;
  currency: string;
  channel: string;
  created_at: Date;
  item_count: number;
  is_international: boolean;
  payment_attempts: number;
  hour_of_day: number;
}

export function toCustomer(row: CustomerRow): CustomerRecord {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    // The CHECK constraint guarantees the value set.
    segment: row.segment as Segment,
    country: row.country,
    createdAt: row.created_at,
    lifetimeValue: row.lifetime_value,
    tenureMonths: row.tenure_months,
    monthlySpend: row.monthly_spend,
    supportTickets: row.support_tickets,
    daysSinceLastLogin: row.days_since_last_login,
  };
}

export function toOrder(row: OrderRow): OrderRecord {
  return {
    id: row.id,
    customerId: row.customer_id,
    amount: row.amount,
    currency: row.currency,
    channel: row.channel as Channel,
    createdAt: row.created_at,
    itemCount: row.item_count,
    isInternational: row.is_international,
    paymentAttempts: row.payment_attempts,
    hourOfDay: row.hour_of_day,
  };
}
