import pg from 'pg';
import {
  checkIsolationOptions,
  DEFAULT_ISOLATION_OPTIONS,
  TENANT_SETTING,
  tenantSchema,
  type IsolationOptions,
} from './isolation.js';
import type { SqlExecutor } from './sql-executor.js';
import type { TenantDataRef } from './types.js';

const { escapeIdentifier, escapeLiteral } = pg;

export type MigrationOptions = Pick<IsolationOptions, 'rowRole' | 'rowSchema'>;

export interface MigrationResult {
  tenantId: string;
  strategy: TenantDataRef['data']['strategy'];
  /** Schema the tenant's tables are in (in the tenant's own database for `database`). */
  schema: string;
}

/**
 * The tables of one schema. With `tenantColumn` (the `row` strategy) every table has
 * `tenant_id`, and keys and foreign keys include it, so a row can only ever reference a row of
 * the same tenant.
 */
function tablesSql(schema: string, tenantColumn: boolean): string {
  const s = escapeIdentifier(schema);
  const tenant = tenantColumn ? 'tenant_id text NOT NULL,' : '';
  const key = (column: string) => (tenantColumn ? `tenant_id, ${column}` : column);
  return `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.customers (
  ${tenant}
  id text NOT NULL,
  name text NOT NULL,
  email text NOT NULL,
  segment text NOT NULL CHECK (segment IN ('SMB', 'MID_MARKET', 'ENTERPRISE')),
  country char(2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  lifetime_value numeric(14,2) NOT NULL DEFAULT 0 CHECK (lifetime_value >= 0),
  tenure_months int NOT NULL DEFAULT 0 CHECK (tenure_months >= 0),
  monthly_spend numeric(12,2) NOT NULL DEFAULT 0 CHECK (monthly_spend >= 0),
  support_tickets int NOT NULL DEFAULT 0 CHECK (support_tickets >= 0),
  days_since_last_login int NOT NULL DEFAULT 0 CHECK (days_since_last_login >= 0),
  PRIMARY KEY (${key('id')})
);
CREATE TABLE IF NOT EXISTS ${s}.orders (
  ${tenant}
  id text NOT NULL,
  customer_id text NOT NULL,
  amount numeric(12,2) NOT NULL CHECK (amount > 0),
  currency char(3) NOT NULL,
  channel text NOT NULL CHECK (channel IN ('WEB', 'MOBILE', 'STORE', 'PHONE')),
  created_at timestamptz NOT NULL DEFAULT now(),
  item_count int NOT NULL CHECK (item_count BETWEEN 1 AND 1000),
  is_international boolean NOT NULL DEFAULT false,
  payment_attempts int NOT NULL DEFAULT 1 CHECK (payment_attempts BETWEEN 1 AND 100),
  hour_of_day int NOT NULL CHECK (hour_of_day BETWEEN 0 AND 23),
  PRIMARY KEY (${key('id')}),
  FOREIGN KEY (${key('customer_id')}) REFERENCES ${s}.customers (${key('id')})
);
CREATE INDEX IF NOT EXISTS orders_customer_created_idx
  ON ${s}.orders (${key('customer_id')}, created_at DESC);
`;
}

/**
 * Row-level security for the shared tables, and the role statements run as. The policy has no
 * `TO` clause, so it binds every role; FORCE makes it bind the table owner too. Superusers and
 * BYPASSRLS roles are exempt whatever the policy says, hence a role that is neither.
 */
function rowSecuritySql(schema: string, role: string): string {
  const s = escapeIdentifier(schema);
  const r = escapeIdentifier(role);
  const check = `tenant_id = current_setting(${escapeLiteral(TENANT_SETTING)}, true)`;
  const perTable = (table: string) => `
ALTER TABLE ${s}.${table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE ${s}.${table} FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON ${s}.${table};
CREATE POLICY tenant_isolation ON ${s}.${table} USING (${check}) WITH CHECK (${check});
GRANT SELECT, INSERT ON ${s}.${table} TO ${r};`;
  return `
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = ${escapeLiteral(role)}) THEN
    BEGIN
      CREATE ROLE ${r} NOLOGIN NOSUPERUSER NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL; -- created concurrently by another migration: fine
    END;
  END IF;
  IF EXISTS (
    SELECT 1 FROM pg_catalog.pg_roles
    WHERE rolname = ${escapeLiteral(role)} AND (rolsuper OR rolbypassrls)
  ) THEN
    RAISE EXCEPTION 'role % bypasses row-level security; the row strategy needs a role that does not', ${escapeLiteral(role)};
  END IF;
END
$$;
GRANT ${r} TO CURRENT_USER;
GRANT USAGE ON SCHEMA ${s} TO ${r};
${perTable('customers')}
${perTable('orders')}
`;
}

/**
 * Creates (idempotently) what `tenant`'s data needs, on a session of the database holding it:
 * its schema and tables (`schema`), the tables in `public` (`database`), or the shared tables,
 * policies, role and grants (`row`). One `exec`, so one implicit transaction: all or nothing.
 */
export async function migrateTenant(
  executor: SqlExecutor,
  tenant: TenantDataRef,
  options: Partial<MigrationOptions> = {},
): Promise<MigrationResult> {
  const isolation = checkIsolationOptions({ ...DEFAULT_ISOLATION_OPTIONS, ...options });
  const schema = tenantSchema(tenant, isolation);
  const row = tenant.data.strategy === 'row';
  const sql = tablesSql(schema, row) + (row ? rowSecuritySql(schema, isolation.rowRole) : '');
  await executor.exec(sql);
  return { tenantId: tenant.id, strategy: tenant.data.strategy, schema };
}
