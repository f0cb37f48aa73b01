import { createHash } from 'node:crypto';
import { parse as parseConnectionString } from 'pg-connection-string';
import type { TenantConfig } from './schema.js';

/**
 * Where each tenant's data lives, and the rule that no two tenants share it. A tenant of the
 * `schema` strategy owns one PostgreSQL schema of the shared database, a `database` tenant one
 * database, a `row` tenant the rows whose `tenant_id` is its id. Two tenants pointed at the same
 * schema or database read each other's rows, so every set of tenants the gateway may serve
 * (the config file at start, the file plus run-time records on every change) is checked with
 * {@link findIsolationConflicts}.
 */

/** PostgreSQL truncates identifiers to 63 bytes; two long names could collide silently. */
const MAX_IDENTIFIER_LENGTH = 63;

/** Shared schema holding the `row` strategy's tables. */
export const DEFAULT_ROW_SCHEMA = 'atrium_shared';
/** Schema of the durable copy of operator decisions (tenant records, trusted documents). */
export const DEFAULT_CONTROL_SCHEMA = 'atrium_control';

/**
 * Schemas no `schema` tenant may be pointed at: the row strategy's shared tables (every row
 * tenant's data), the operator's control schema, and PostgreSQL's own.
 */
export function isReservedSchema(schema: string, extra: readonly string[] = []): boolean {
  return (
    schema === 'public' ||
    schema === 'information_schema' ||
    schema.startsWith('pg_') ||
    schema === DEFAULT_ROW_SCHEMA ||
    schema === DEFAULT_CONTROL_SCHEMA ||
    extra.includes(schema)
  );
}

/**
 * Default schema of a `schema` tenant: `tenant_<id>` with `-` → `_`, which is injective because
 * tenant ids contain no `_`. Ids too long for a 63-byte identifier keep a prefix plus a hash of
 * the whole id, so truncation can never make two tenants share a schema.
 */
export function defaultTenantSchema(tenantId: string): string {
  const name = `tenant_${tenantId.replaceAll('-', '_')}`;
  if (name.length <= MAX_IDENTIFIER_LENGTH) return name;
  const hash = createHash('sha256').update(tenantId).digest('hex').slice(0, 8);
  return `${name.slice(0, MAX_IDENTIFIER_LENGTH - 9)}_${hash}`;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/**
 * The database a connection string reaches, as `host:port/database`, so that two spellings of
 * one database (another user, password, parameter order, `postgres://` vs `postgresql://`,
 * `localhost` vs `127.0.0.1`) compare equal. Without a database name libpq connects to the
 * database named like the user, so the user stands in. `undefined` for anything but a
 * `postgres://`, `postgresql://` or `socket:` connection string.
 */
export function databaseIdentity(url: string): string | undefined {
  if (!/^(?:postgres(?:ql)?:\/\/|socket:)/i.test(url)) return undefined;
  let parsed: ReturnType<typeof parseConnectionString>;
  try {
    parsed = parseConnectionString(url);
  } catch {
    return undefined;
  }
  const rawHost = (parsed.host || 'localhost').toLowerCase();
  const host = LOOPBACK_HOSTS.has(rawHost) ? 'loopback' : rawHost;
  const port = parsed.port || '5432';
  const database = parsed.database || parsed.user || '';
  return `${host}:${port}/${database}`;
}

/** What a tenant's data isolation points at; two tenants with the same target share data. */
export function isolationTarget(config: Pick<TenantConfig, 'id' | 'data'>): string {
  const { data } = config;
  switch (data.strategy) {
    case 'schema':
      return `schema ${data.schema ?? defaultTenantSchema(config.id)}`;
    case 'database':
      return `database ${databaseIdentity(data.url) ?? data.url}`;
    case 'row':
      // The row id is the tenant id; ids are unique, so this only collides with a duplicate id.
      return `row ${config.id}`;
  }
}

/** One problem found by {@link findIsolationConflicts}. */
export interface IsolationConflict {
  /** Index of the offending claim in the list checked. */
  readonly index: number;
  /** The field at fault, relative to the tenant (`data.schema`, `data.url`, `id`). */
  readonly field: 'id' | 'data.schema' | 'data.url';
  readonly message: string;
}

export interface IsolationCheckOptions {
  /** Schemas reserved beyond the built-in ones (e.g. a configured `liveConfig.controlSchema`). */
  reservedSchemas?: readonly string[] | undefined;
}

/**
 * Every reserved schema and shared isolation target among `claims`: what the gateway could
 * serve together (the config file's tenants, or the file's plus run-time records), where one
 * id may appear more than once (a tenant still owns the schema its file entry names after a
 * run-time record moved it: its rows are there). A target claimed by two different ids is
 * reported at the later claim, naming the earlier one. Duplicate ids are not this function's
 * concern (the config file checks them; records are one per id).
 */
export function findIsolationConflicts(
  claims: readonly Pick<TenantConfig, 'id' | 'data'>[],
  options: IsolationCheckOptions = {},
): IsolationConflict[] {
  const conflicts: IsolationConflict[] = [];
  const owners = new Map<string, string>();
  claims.forEach((tenant, index) => {
    const { data } = tenant;
    if (data.strategy === 'schema') {
      const schema = data.schema ?? defaultTenantSchema(tenant.id);
      if (isReservedSchema(schema, options.reservedSchemas)) {
        conflicts.push({
          index,
          field: 'data.schema',
          message: `schema ${schema} is reserved (shared, control or system tables)`,
        });
        return;
      }
      // `tenant_<id>` is the default of tenant <id>, served now or not (a deleted tenant's rows
      // stay in its schema): only that tenant may name it.
      if (schema.startsWith('tenant_') && schema !== defaultTenantSchema(tenant.id)) {
        conflicts.push({
          index,
          field: 'data.schema',
          message: `schema ${schema} is the default schema of another tenant id`,
        });
        return;
      }
    }
    if (data.strategy === 'database' && databaseIdentity(data.url) === undefined) {
      conflicts.push({ index, field: 'data.url', message: 'not a PostgreSQL connection URL' });
      return;
    }
    const target = isolationTarget(tenant);
    const owner = owners.get(target);
    if (owner !== undefined && owner !== tenant.id) {
      conflicts.push({
        index,
        field:
          data.strategy === 'database'
            ? 'data.url'
            : data.strategy === 'schema'
              ? 'data.schema'
              : 'id',
        message: `${target} already belongs to tenant ${owner}`,
      });
      return;
    }
    owners.set(target, tenant.id);
  });
  return conflicts;
}
