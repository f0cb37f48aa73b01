import pg from 'pg';
import {
  DEFAULT_ROW_SCHEMA,
  defaultTenantSchema,
  isReservedSchema,
} from '../../config/isolation-targets.js';
import {
  DEFAULT_ROW_ROLE,
  DEFAULT_STATEMENT_TIMEOUT_MS,
  TENANT_ID_PATTERN,
} from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import type { TenantDataRef } from './types.js';

const { escapeIdentifier, escapeLiteral } = pg;

/** The custom setting the row-level-security policies compare `tenant_id` with. */
export const TENANT_SETTING = 'atrium.tenant_id';
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** Names the isolation strategies need beyond the tenant's own settings. */
export interface IsolationOptions {
  /** NOLOGIN role without BYPASSRLS that `row` tenants' statements run as. */
  rowRole: string;
  /** Schema with the shared tables of the `row` strategy. */
  rowSchema: string;
  /** `SET LOCAL statement_timeout` for every transaction. */
  statementTimeoutMs: number;
}

export const DEFAULT_ISOLATION_OPTIONS: Readonly<IsolationOptions> = {
  rowRole: DEFAULT_ROW_ROLE,
  rowSchema: DEFAULT_ROW_SCHEMA,
  statementTimeoutMs: DEFAULT_STATEMENT_TIMEOUT_MS,
};

/** Validates isolation options; a caller mistake, so a TypeError naming the field. */
export function checkIsolationOptions(options: IsolationOptions): IsolationOptions {
  for (const field of ['rowRole', 'rowSchema'] as const) {
    if (!IDENTIFIER.test(options[field])) {
      throw new TypeError(
        `${field} must be a lowercase SQL identifier; found ${JSON.stringify(options[field])}`,
      );
    }
  }
  const ms = options.statementTimeoutMs;
  if (!Number.isInteger(ms) || ms < 1) {
    throw new TypeError(`statementTimeoutMs must be a positive integer; found ${String(ms)}`);
  }
  return options;
}

/**
 * Where a tenant's tables live and what must be set for its statements to reach them.
 * `tenantColumn` is true for the `row` strategy: statements also filter on `tenant_id`.
 */
export interface Isolation {
  schema: string;
  tenantColumn: boolean;
  /**
   * Statements to run right after BEGIN in the same simple-protocol message. They contain no
   * client-supplied text: identifiers come from validated configuration and are quoted, and the
   * only literal (the tenant id) matches TENANT_ID_PATTERN and is escaped as well.
   */
  prelude: string;
}

function misconfigured(tenant: TenantDataRef, why: string): GatewayError {
  // The message is shown to clients: it names no schema, role or URL.
  return new GatewayError('INTERNAL_SERVER_ERROR', 'Tenant data is misconfigured', {
    cause: new Error(`tenant ${tenant.id}: ${why}`),
  });
}

/** Where the tenant's tables are, refusing names that would reach shared or system tables. */
export function tenantSchema(tenant: TenantDataRef, options: IsolationOptions): string {
  const { data } = tenant;
  switch (data.strategy) {
    case 'row':
      return options.rowSchema;
    case 'database':
      return 'public';
    case 'schema': {
      const schema = data.schema ?? defaultTenantSchema(tenant.id);
      // The row schema holds every row tenant's data, and a schema tenant runs as the connecting
      // user (often a superuser, to whom RLS does not apply): pointing one at it would leak.
      if (isReservedSchema(schema, [options.rowSchema]) || !IDENTIFIER.test(schema)) {
        throw misconfigured(tenant, `schema ${JSON.stringify(schema)} is reserved or invalid`);
      }
      return schema;
    }
  }
}

/**
 * The isolation of one transaction for `tenant`. Everything is `SET LOCAL` or
 * `set_config(…, true)`, so it ends with the transaction and nothing survives on a pooled
 * connection.
 */
export function isolationFor(
  tenant: TenantDataRef,
  options: IsolationOptions,
  readOnly: boolean,
): Isolation {
  // Checked again here (the registry validates too) because the id is written into SQL below.
  if (!TENANT_ID_PATTERN.test(tenant.id)) {
    throw misconfigured(tenant, 'tenant id does not match TENANT_ID_PATTERN');
  }
  const schema = tenantSchema(tenant, options);
  const statements: string[] = [];
  // Must come before any query in the transaction; SET statements do not count as queries.
  if (readOnly) statements.push('SET TRANSACTION READ ONLY');
  statements.push(`SET LOCAL statement_timeout = ${options.statementTimeoutMs}`);
  statements.push(`SET LOCAL search_path TO ${escapeIdentifier(schema)}`);
  const tenantColumn = tenant.data.strategy === 'row';
  if (tenantColumn) {
    // The connecting user may be a superuser (who bypasses RLS even when it is FORCED);
    // switching to the row role is what makes the policies apply.
    statements.push(`SET LOCAL ROLE ${escapeIdentifier(options.rowRole)}`);
    statements.push(
      `SELECT set_config(${escapeLiteral(TENANT_SETTING)}, ${escapeLiteral(tenant.id)}, true)`,
    );
  }
  return { schema, tenantColumn, prelude: statements.join('; ') };
}
