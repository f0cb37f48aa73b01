import { ConfigError } from '../../config/load.js';
import type { ConfigFile } from '../../config/schema.js';
import { DEFAULT_ROW_SCHEMA } from '../../config/isolation-targets.js';
import { createPostgresDataSource } from './postgres.js';
import type { SqlExecutor } from './sql-executor.js';
import type { TenantDataRef } from './types.js';

const ADMIN_STATEMENT_TIMEOUT_MS = 10 * 60_000;

/** Shows where a URL points without its password. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

export interface TenantTaskOutcome {
  tenantId: string;
  /** Where the task ran (a redacted URL). */
  target: string;
  /** What the task reported, or the error message. */
  message: string;
  ok: boolean;
}

export interface ForEachTenantOptions {
  /** The validated config (with DATABASE_URL applied as `data.url`). */
  config: Pick<ConfigFile, 'data' | 'tenants'>;
  /** Runs on one session of the tenant's database; returns a line describing what it did. */
  task(session: SqlExecutor, tenant: TenantDataRef): Promise<string>;
  /** Schema of the row strategy's tables; default `atrium_shared`. */
  rowSchema?: string | undefined;
}

/**
 * Runs an administrative task (migrate, seed) for every configured tenant on PostgreSQL, one
 * tenant at a time, through the same pools and URLs the gateway uses. A failing tenant does not
 * stop the others; the outcomes say which failed.
 */
export async function forEachTenant(options: ForEachTenantOptions): Promise<TenantTaskOutcome[]> {
  const { config } = options;
  const sharedUrl = config.data.url;
  const needsShared = config.tenants.some((t) => t.data.strategy !== 'database');
  if (needsShared && (sharedUrl === undefined || sharedUrl === '')) {
    throw new ConfigError(
      'schema and row tenants need a shared database: set DATABASE_URL or data.url in the config',
    );
  }
  const source = createPostgresDataSource({
    // Only connected to when a schema/row tenant exists, and then it is set (checked above).
    url: sharedUrl ?? '',
    poolMax: 1,
    tenantPoolMax: 1,
    maxTenantPools: 1,
    tenantPoolIdleMs: config.data.tenantPoolIdleMs,
    // Migrating or seeding a large tenant may legitimately take longer than a request may.
    statementTimeoutMs: ADMIN_STATEMENT_TIMEOUT_MS,
    rowRole: config.data.rowRole,
    rowSchema: options.rowSchema ?? DEFAULT_ROW_SCHEMA,
  });
  const outcomes: TenantTaskOutcome[] = [];
  try {
    for (const tenant of config.tenants) {
      const url = tenant.data.strategy === 'database' ? tenant.data.url : (sharedUrl ?? '');
      const target = redactUrl(url);
      try {
        const message = await source.withSession(tenant, (session) =>
          options.task(session, tenant),
        );
        outcomes.push({ tenantId: tenant.id, target, message, ok: true });
      } catch (error) {
        // Admin output, not a client response: the underlying cause is what an operator needs.
        const cause = (error as { originalError?: unknown }).originalError ?? error;
        const message = cause instanceof Error ? cause.message : String(cause);
        outcomes.push({ tenantId: tenant.id, target, message, ok: false });
      }
    }
  } finally {
    await source.close();
  }
  return outcomes;
}
