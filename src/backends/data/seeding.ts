import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkIsolationOptions, DEFAULT_ISOLATION_OPTIONS, isolationFor } from './isolation.js';
import type { SqlExecutor } from './sql-executor.js';
import { runInTransaction } from './tenant-data-source.js';
import type { TenantDataRef } from './types.js';
import { importableModuleFile } from '../../util/module-file.js';

/** Where a seed writes: the tenant (its `tenant_id` value) and the schema its tables are in. */
export interface SeedTarget {
  tenantId: string;
  schema: string;
}

export interface SeedSizeOptions {
  /** How many top-level rows to generate (the seed module says of which table). */
  size?: number | undefined;
}

/** What a seed reports: rows it describes, rows this run inserted, optionally per table. */
export interface SeedReport {
  rows: number;
  inserted: number;
  tables?: Record<string, { rows: number; inserted: number }> | undefined;
}

/**
 * The contract of `config.data.seed`: a module exporting `seed`. It runs inside one transaction
 * of the tenant's isolation (for `row` tenants as the row role, under RLS), must be
 * deterministic and idempotent (rows already there are kept), and writes `target.tenantId`
 * into every row's `tenant_id`.
 */
export type SeedFunction = (
  session: SqlExecutor,
  target: SeedTarget,
  options?: SeedSizeOptions,
) => Promise<SeedReport>;

export interface SeedTenantOptions extends SeedSizeOptions {
  /** Absolute path of the seed module (`config.data.seed`). */
  module: string;
  rowRole?: string | undefined;
  rowSchema?: string | undefined;
}

export interface SeedTenantResult extends SeedReport {
  tenantId: string;
  strategy: TenantDataRef['data']['strategy'];
  schema: string;
}

/** Generous: seeding thousands of rows on a slow machine must not trip the request timeout. */
const SEED_STATEMENT_TIMEOUT_MS = 10 * 60_000;

const loaded = new Map<string, Promise<SeedFunction>>();

/** Imports a seed module once per process and checks that it exports `seed`. */
export function loadSeedModule(path: string): Promise<SeedFunction> {
  if (typeof path !== 'string' || !isAbsolute(path)) {
    throw new TypeError(`the seed module must be an absolute path; found ${String(path)}`);
  }
  let pending = loaded.get(path);
  if (pending === undefined) {
    pending = import(pathToFileURL(importableModuleFile(path)).href).then(
      (module: { seed?: unknown }) => {
        if (typeof module.seed !== 'function') {
          throw new TypeError(`the seed module ${path} does not export a function named seed`);
        }
        return module.seed as SeedFunction;
      },
    );
    loaded.set(path, pending);
    pending.catch(() => loaded.delete(path));
  }
  return pending;
}

/**
 * Runs the seed module's `seed` for `tenant` in ONE transaction inside the tenant's own
 * isolation — for the `row` strategy as the row role under RLS, so the seed passes the same
 * WITH CHECK policies as requests do. `executor` is one session of the database holding the
 * tenant's data, outside any transaction; run `migrateTenant` first.
 */
export async function seedTenant(
  executor: SqlExecutor,
  tenant: TenantDataRef,
  options: SeedTenantOptions,
): Promise<SeedTenantResult> {
  const seed = await loadSeedModule(options.module);
  const isolation = checkIsolationOptions({
    ...DEFAULT_ISOLATION_OPTIONS,
    ...(options.rowRole === undefined ? {} : { rowRole: options.rowRole }),
    ...(options.rowSchema === undefined ? {} : { rowSchema: options.rowSchema }),
    statementTimeoutMs: SEED_STATEMENT_TIMEOUT_MS,
  });
  const { prelude, schema } = isolationFor(tenant, isolation, false);
  const report = await runInTransaction({ executor, release: () => {} }, prelude, (session) =>
    seed(session, { tenantId: tenant.id, schema }, { size: options.size }),
  );
  return { tenantId: tenant.id, strategy: tenant.data.strategy, schema, ...report };
}
