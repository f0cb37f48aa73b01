import type { DataSettings } from '../../config/schema.js';

/**
 * Where a statement runs: the tenant's schema (statements are schema-qualified, so they need
 * no search_path) and, for the `row` strategy, the tenant every row must carry.
 */
export interface StatementTarget {
  schema: string;
  tenantId: string;
  /** `row` strategy: every statement also filters on (and writes) `tenant_id`. */
  row: boolean;
}

/** One statement for one tenant: identifiers quoted, every value a parameter. */
export interface Statement {
  /** What it serves (a binding, `Query.items`), for events and error messages. */
  operation: string;
  text: string;
  params: unknown[];
  /** Reads only: a `row` tenant's transaction is then READ ONLY. */
  readOnly: boolean;
}

/** What the data layer needs to know about a tenant: who, and how its data is isolated. */
export interface TenantDataRef {
  readonly id: string;
  readonly data: DataSettings;
}

/** One observed statement, for tests that count round trips and for metrics. */
export interface QueryEvent {
  tenantId: string;
  /** The binding the statement serves, e.g. `Query.items`. */
  operation: string;
  durationMs: number;
  /** The tenant's isolation strategy. */
  strategy: DataSettings['strategy'];
  /**
   * Every round trip the batch made to the database, the data statement included: 1 for the
   * schema and database strategies; 3 for `row` (BEGIN with the isolation, the statement,
   * COMMIT or ROLLBACK).
   */
  roundTrips: number;
  /** Rows the data statement returned (0 when it failed). */
  rowCount: number;
  /** False when the data statement or its transaction failed. */
  ok: boolean;
}

/**
 * A tenant's data, behind its isolation strategy. `query` runs one generated statement for one
 * tenant: `build` receives where the tenant's tables are (schema-qualified names; the `row`
 * strategy's tenant filter) and returns the statement. It is called once a session for the
 * statement is held (never, if none comes), so what it builds may grow while it waits. Nothing of it survives on a pooled
 * connection: schema and database tenants run it alone (one round trip), row tenants inside a
 * transaction that sets the row role and the tenant for row-level security.
 */
export interface DataSource {
  query<R = Record<string, unknown>>(
    tenant: TenantDataRef,
    build: (target: StatementTarget) => Statement,
  ): Promise<R[]>;
  /** Where `tenant`'s tables are: its schema (in its own database for `database`). */
  schemaOf(tenant: TenantDataRef): string;
  /** Resolves when the backend answers a trivial query (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
