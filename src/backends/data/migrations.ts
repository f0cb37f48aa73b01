import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { Umzug, type RunnableMigration, type UmzugStorage } from 'umzug';
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

/** The table, in each tenant's schema, that records which migration files were applied. */
export const MIGRATIONS_TABLE = 'atrium_migrations';
/** The column every table of the `row` strategy's shared schema must have. */
export const TENANT_COLUMN = 'tenant_id';
/** The policy Atrium puts on every shared table. */
export const ROW_POLICY = 'tenant_isolation';
/**
 * First half of the advisory-lock key that serialises migrators of one schema (the second is
 * `hashtext(schema)`); advisory locks are per database, so this is per (database, schema).
 */
const LOCK_CLASS = 0x61747269; // 'atri'

export type MigrationErrorCode =
  /** The migrations directory cannot be read. */
  | 'MIGRATIONS_UNREADABLE'
  /** A migration file failed; it was rolled back and not recorded. */
  | 'MIGRATION_FAILED'
  /** A table of the row strategy's shared schema has no `tenant_id` column. */
  | 'ROW_TABLE_WITHOUT_TENANT_ID'
  /** The row role or its policies and grants could not be set up. */
  | 'ROW_SECURITY_FAILED';

/** A migration problem an operator must fix; `code` is stable, the message names the culprit. */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';
  readonly code: MigrationErrorCode;
  /** The migration file concerned, if any. */
  readonly migration: string | undefined;
  /** The table concerned, if any. */
  readonly table: string | undefined;

  constructor(
    code: MigrationErrorCode,
    message: string,
    details: { migration?: string; table?: string; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.migration = details.migration;
    this.table = details.table;
  }
}

export interface MigrationOptions {
  /** Absolute path of a directory of `.sql` files, applied in name order (`config.data.migrations`). */
  dir: string;
  /** NOLOGIN role without BYPASSRLS for the `row` strategy; default `atrium_tenant`. */
  rowRole?: string | undefined;
  /** Schema of the `row` strategy's shared tables; default `atrium_shared`. */
  rowSchema?: string | undefined;
}

export interface MigrationResult {
  tenantId: string;
  strategy: TenantDataRef['data']['strategy'];
  /** Schema the tenant's tables are in (in the tenant's own database for `database`). */
  schema: string;
  /** Files applied by this run, in order; empty when the schema was up to date. */
  applied: string[];
  /** `row` only: the role statements run as, and the tables now under its forced policy. */
  rowSecurity?: { role: string; tables: string[] } | undefined;
}

interface Resolved {
  schema: string;
  row: boolean;
  role: string;
}

function resolve(tenant: TenantDataRef, options: MigrationOptions): Resolved {
  const isolation: IsolationOptions = checkIsolationOptions({
    ...DEFAULT_ISOLATION_OPTIONS,
    ...(options.rowRole === undefined ? {} : { rowRole: options.rowRole }),
    ...(options.rowSchema === undefined ? {} : { rowSchema: options.rowSchema }),
  });
  return {
    schema: tenantSchema(tenant, isolation),
    row: tenant.data.strategy === 'row',
    role: isolation.rowRole,
  };
}

/** The `.sql` files of `dir`, in code-point order of their names (so `0002_` follows `0001_`). */
async function migrationFiles(dir: string): Promise<string[]> {
  if (typeof dir !== 'string' || dir === '') {
    throw new TypeError(`dir must be the path of a migrations directory; found ${String(dir)}`);
  }
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw new MigrationError(
      'MIGRATIONS_UNREADABLE',
      `cannot read the migrations directory ${dir}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  return names.filter((name) => name.endsWith('.sql')).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function rollback(executor: SqlExecutor): Promise<void> {
  try {
    await executor.exec('ROLLBACK');
  } catch {
    // The session is broken; the caller's error says why, and the session will be discarded.
  }
}

async function inTransaction<T>(executor: SqlExecutor, work: () => Promise<T>): Promise<T> {
  await executor.exec('BEGIN');
  try {
    const value = await work();
    await executor.exec('COMMIT');
    return value;
  } catch (error) {
    await rollback(executor);
    throw error;
  }
}

/**
 * umzug's record of applied files, kept in `<schema>.atrium_migrations`. Each migration
 * inserts its own row inside its transaction (so a crash can never leave a file applied but
 * unrecorded); `logMigration`, which umzug calls afterwards, is then a no-op insert.
 */
function tableStorage(executor: SqlExecutor, schema: string): UmzugStorage {
  const table = `${escapeIdentifier(schema)}.${MIGRATIONS_TABLE}`;
  return {
    async logMigration({ name }) {
      await executor.query(`INSERT INTO ${table} (name) VALUES ($1) ON CONFLICT DO NOTHING`, [
        name,
      ]);
    },
    async unlogMigration({ name }) {
      await executor.query(`DELETE FROM ${table} WHERE name = $1`, [name]);
    },
    async executed() {
      const exists = await executor.query<{ present: boolean }>(
        'SELECT to_regclass($1) IS NOT NULL AS present',
        [table],
      );
      if (exists.rows[0]?.present !== true) return [];
      const result = await executor.query<{ name: string }>(
        `SELECT name FROM ${table} ORDER BY name`,
      );
      return result.rows.map((r) => r.name);
    },
  };
}

function sqlMigrations(
  executor: SqlExecutor,
  dir: string,
  names: readonly string[],
  target: Resolved,
): RunnableMigration<unknown>[] {
  const s = escapeIdentifier(target.schema);
  return names.map((name) => ({
    name,
    path: join(dir, name),
    up: async () => {
      const sql = await readFile(join(dir, name), 'utf8');
      try {
        await inTransaction(executor, async () => {
          // Unqualified names in the operator's SQL land in the tenant's schema, whatever the
          // isolation: the same file serves schema, database and row tenants.
          await executor.exec(`SET LOCAL search_path TO ${s}`);
          await executor.exec(sql);
          // A file that adds a shared table without tenant_id fails here and is rolled back,
          // so it can be fixed and rerun instead of needing a corrective migration.
          if (target.row) await secureRowSchema(executor, target);
          await executor.query(
            `INSERT INTO ${s}.${MIGRATIONS_TABLE} (name) VALUES ($1) ON CONFLICT DO NOTHING`,
            [name],
          );
        });
      } catch (error) {
        if (error instanceof MigrationError) throw error;
        throw new MigrationError(
          'MIGRATION_FAILED',
          `migration ${name} failed in schema "${target.schema}": ${(error as Error).message}`,
          { migration: name, cause: error },
        );
      }
    },
  }));
}

/** umzug wraps what a migration threw; the operator needs ours (or the database's) back. */
function unwrap(error: unknown): unknown {
  let current = error;
  while (
    current instanceof Error &&
    current.name === 'MigrationError' &&
    !(current instanceof MigrationError) &&
    current.cause !== undefined
  ) {
    current = current.cause;
  }
  return current;
}

function createMigrator(executor: SqlExecutor, dir: string, names: string[], target: Resolved) {
  return new Umzug({
    migrations: sqlMigrations(executor, dir, names, target),
    storage: tableStorage(executor, target.schema),
    logger: undefined,
  });
}

/**
 * The row role (NOLOGIN, refused if it is a superuser or has BYPASSRLS, since either ignores
 * every policy), and for each shared table: forced RLS with one policy comparing `tenant_id`
 * with the transaction's `atrium.tenant_id` setting, and the grants requests need. The policy
 * has no `TO` clause, so it binds every role; FORCE makes it bind the table owner too.
 * Idempotent; runs inside the caller's transaction. Returns the tables it secured.
 */
async function secureRowSchema(executor: SqlExecutor, target: Resolved): Promise<string[]> {
  const s = escapeIdentifier(target.schema);
  const r = escapeIdentifier(target.role);
  const roleLiteral = escapeLiteral(target.role);
  try {
    await executor.exec(`
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = ${roleLiteral}) THEN
    BEGIN
      CREATE ROLE ${r} NOLOGIN NOSUPERUSER NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL; -- created concurrently by a migrator of another database: fine
    END;
  END IF;
  IF EXISTS (
    SELECT 1 FROM pg_catalog.pg_roles
    WHERE rolname = ${roleLiteral} AND (rolsuper OR rolbypassrls)
  ) THEN
    RAISE EXCEPTION 'role % bypasses row-level security; the row strategy needs a role that does not', ${roleLiteral};
  END IF;
END
$$;
GRANT ${r} TO CURRENT_USER;
GRANT USAGE ON SCHEMA ${s} TO ${r};`);
  } catch (error) {
    throw new MigrationError(
      'ROW_SECURITY_FAILED',
      `row role "${target.role}" for schema "${target.schema}": ${(error as Error).message}`,
      { cause: error },
    );
  }
  const tables = await executor.query<{ name: string; has_tenant: boolean }>(
    `SELECT c.relname AS name,
            EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attname = $3 AND a.attnum > 0
                      AND NOT a.attisdropped) AS has_tenant
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> $2
      ORDER BY c.relname`,
    [target.schema, MIGRATIONS_TABLE, TENANT_COLUMN],
  );
  const missing = tables.rows.find((t) => !t.has_tenant);
  if (missing !== undefined) {
    throw new MigrationError(
      'ROW_TABLE_WITHOUT_TENANT_ID',
      `table "${target.schema}"."${missing.name}" has no ${TENANT_COLUMN} column: every table ` +
        `of the row strategy's shared schema needs "${TENANT_COLUMN} text NOT NULL"`,
      { table: missing.name },
    );
  }
  const check = `${TENANT_COLUMN} = current_setting(${escapeLiteral(TENANT_SETTING)}, true)`;
  const statements: string[] = [];
  for (const { name } of tables.rows) {
    const t = `${s}.${escapeIdentifier(name)}`;
    statements.push(
      `ALTER TABLE ${t} ENABLE ROW LEVEL SECURITY`,
      `ALTER TABLE ${t} FORCE ROW LEVEL SECURITY`,
      `DROP POLICY IF EXISTS ${ROW_POLICY} ON ${t}`,
      `CREATE POLICY ${ROW_POLICY} ON ${t} USING (${check}) WITH CHECK (${check})`,
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ${t} TO ${r}`,
    );
  }
  // Sequences behind serial and identity columns: USAGE for inserts; SELECT and UPDATE because
  // a seed (which runs as the row role) moves them past its explicit ids with setval. Keys
  // include tenant_id, so a shared sequence cannot make one tenant's id collide with another's.
  const sequences = await executor.query<{ name: string }>(
    `SELECT DISTINCT s.relname AS name
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_catalog.pg_depend d ON d.refobjid = c.oid AND d.deptype IN ('a', 'i')
       JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
       JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
      WHERE n.nspname = $1 AND sn.nspname = $1 AND c.relname <> $2
      ORDER BY 1`,
    [target.schema, MIGRATIONS_TABLE],
  );
  for (const { name } of sequences.rows) {
    statements.push(
      `GRANT USAGE, SELECT, UPDATE ON SEQUENCE ${s}.${escapeIdentifier(name)} TO ${r}`,
    );
  }
  if (statements.length > 0) await executor.exec(statements.join(';\n'));
  return tables.rows.map((t) => t.name);
}

/**
 * Applies the files of `options.dir` not yet applied to `tenant`'s schema, each in its own
 * transaction with `search_path` set to that schema, recording each in
 * `<schema>.atrium_migrations`; a file applied once is never applied again. For the `row`
 * strategy every tenant shares one schema, so the first tenant migrates it and the others find
 * nothing to apply; Atrium then creates the row role and forces RLS on every shared table.
 * Migrators of one schema are serialised by an advisory lock, so concurrent runs (replicas,
 * parallel scripts) apply each file once. `executor` is one session of the database holding
 * the tenant's data, outside any transaction.
 */
export async function migrateTenant(
  executor: SqlExecutor,
  tenant: TenantDataRef,
  options: MigrationOptions,
): Promise<MigrationResult> {
  const target = resolve(tenant, options);
  const names = await migrationFiles(options.dir);
  const s = escapeIdentifier(target.schema);
  const lockKey = [LOCK_CLASS, target.schema] as const;
  await executor.query('SELECT pg_advisory_lock($1::int, hashtext($2))', lockKey);
  try {
    await executor.exec(
      `CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.${MIGRATIONS_TABLE} (
  name text PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
)`,
    );
    let applied: string[];
    try {
      applied = (await createMigrator(executor, options.dir, names, target).up()).map(
        (m) => m.name,
      );
    } catch (error) {
      throw unwrap(error);
    }
    let rowSecurity: MigrationResult['rowSecurity'];
    if (target.row) {
      // Again when nothing was applied: the configured role may have changed since.
      const tables = await inTransaction(executor, () => secureRowSchema(executor, target));
      rowSecurity = { role: target.role, tables };
    }
    return {
      tenantId: tenant.id,
      strategy: tenant.data.strategy,
      schema: target.schema,
      applied,
      ...(rowSecurity === undefined ? {} : { rowSecurity }),
    };
  } finally {
    try {
      await executor.query('SELECT pg_advisory_unlock($1::int, hashtext($2))', lockKey);
    } catch {
      // A broken session releases its locks when it closes.
    }
  }
}

/**
 * The files of `options.dir` not yet applied to `tenant`'s schema, in the order
 * `migrateTenant` would apply them. Reads only; creates nothing.
 */
export async function pendingMigrations(
  executor: SqlExecutor,
  tenant: TenantDataRef,
  options: MigrationOptions,
): Promise<string[]> {
  const target = resolve(tenant, options);
  const names = await migrationFiles(options.dir);
  const pending = await createMigrator(executor, options.dir, names, target).pending();
  return pending.map((m) => m.name);
}
