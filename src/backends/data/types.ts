import type { DataSettings } from '../../config/schema.js';

/** What the data layer needs to know about a tenant: who, and how its data is isolated. */
export interface TenantDataRef {
  readonly id: string;
  readonly data: DataSettings;
}

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
  /** Churn-model features. */
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
  /** Fraud-model features. */
  itemCount: number;
  isInternational: boolean;
  paymentAttempts: number;
  hourOfDay: number;
}

export interface CustomerPage {
  rows: CustomerRecord[];
  hasNextPage: boolean;
}

export interface ListCustomersArgs {
  first: number;
  /** Exclusive: customers whose id sorts after this one. */
  afterId?: string | undefined;
  segment?: Segment | undefined;
}

export interface CreateOrderInput {
  customerId: string;
  amount: number;
  currency: string;
  channel: Channel;
  itemCount: number;
  isInternational: boolean;
  paymentAttempts: number;
  hourOfDay: number;
}

/** One observed statement, for tests that count round trips and for metrics. */
export interface QueryEvent {
  tenantId: string;
  /** The data statement's purpose, e.g. `customersByIds`. */
  operation: string;
  durationMs: number;
  /** The tenant's isolation strategy. */
  strategy: DataSettings['strategy'];
  /**
   * Every round trip the batch made to the database, the data statement included: BEGIN with
   * the isolation statements, the data statement, COMMIT (or ROLLBACK). 3 on PostgreSQL.
   */
  roundTrips: number;
  /** Rows the data statement returned (0 when it failed). */
  rowCount: number;
  /** False when the data statement or its transaction failed. */
  ok: boolean;
}

/**
 * A tenant's data, behind its isolation strategy. Every method runs its data statement inside
 * the tenant's isolation (search_path, RLS setting or own database) and leaves no session state
 * on a pooled connection. Batch methods take many keys and make one data statement.
 */
export interface DataSource {
  /** Rows for the ids that exist, in any order (callers restore key order). */
  customersByIds(tenant: TenantDataRef, ids: readonly string[]): Promise<CustomerRecord[]>;
  ordersByIds(tenant: TenantDataRef, ids: readonly string[]): Promise<OrderRecord[]>;
  /** Up to `first` most recent orders per customer (newest first), for all ids in one statement. */
  ordersByCustomerIds(
    tenant: TenantDataRef,
    customerIds: readonly string[],
    first: number,
  ): Promise<OrderRecord[]>;
  /** Customers ordered by id, `first` of them after `afterId`. */
  listCustomers(tenant: TenantDataRef, args: ListCustomersArgs): Promise<CustomerPage>;
  /** Throws `BAD_USER_INPUT` GatewayError when the customer does not exist for this tenant. */
  createOrder(tenant: TenantDataRef, input: CreateOrderInput): Promise<OrderRecord>;
  /** Resolves when the backend answers a trivial query (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
