import { PGlite } from '@electric-sql/pglite';
import { DEFAULT_ROW_ROLE, DEFAULT_STATEMENT_TIMEOUT_MS } from '../../config/schema.js';
import { DEFAULT_ROW_SCHEMA } from '../../config/isolation-targets.js';
import { migrateTenant } from './migrations.js';
import { seedTenant } from './seeding.js';
import { pgliteExecutor } from './sql-executor.js';
import {
  createTenantDataSource,
  type SessionLease,
  type SessionSource,
  type SqlDataSource,
} from './tenant-data-source.js';
import type { QueryEvent, TenantDataRef } from './types.js';

/** Which instance a `createInstance` call is for. */
export type PgliteInstancePurpose = { kind: 'shared' } | { kind: 'tenant'; tenantId: string };

export interface PgliteDataSourceOptions {
  /** Role for the `row` strategy; default `atrium_tenant`. */
  rowRole?: string | undefined;
  /** Schema of the `row` strategy's shared tables; default `atrium_shared`. */
  rowSchema?: string | undefined;
  /**
   * Sent as `SET LOCAL statement_timeout` in a row tenant's transaction like on PostgreSQL, but
   * PGlite (single-threaded WASM) does not enforce it: an embedded query cannot be interrupted.
   */
  statementTimeoutMs?: number | undefined;
  onQuery?: ((event: QueryEvent) => void) | undefined;
  /** Builds each instance; default an in-memory `PGlite.create()`. */
  createInstance?: ((purpose: PgliteInstancePurpose) => Promise<PGlite>) | undefined;
}

interface Instance {
  db: PGlite;
  /** Resolves with an unlock function once this caller has the session to itself. */
  lock(): Promise<() => void>;
}

function withMutex(db: PGlite): Instance {
  let tail: Promise<void> = Promise.resolve();
  return {
    db,
    lock() {
      let unlock!: () => void;
      const held = new Promise<void>((resolve) => {
        unlock = resolve;
      });
      const ready = tail.then(() => unlock);
      tail = tail.then(() => held);
      return ready;
    },
  };
}

/**
 * The embedded DataSource: PostgreSQL compiled to WASM, in this process — the default when no
 * DATABASE_URL is configured. The same isolation code runs as on PostgreSQL:
 * - `schema` and `row` tenants share one in-memory instance; `row` uses the same role,
 *   FORCEd RLS policies and `set_config` as on PostgreSQL (PGlite enforces them);
 * - `database` tenants get an in-memory instance each, created on first use and kept until
 *   `close()` (closing one would lose its data, so there is no idle eviction, and the tenant's
 *   `url` is not used).
 *
 * A PGlite instance is ONE session. Every unit of work (a batch, `withSession`, `ping`) holds
 * the instance's mutex from BEGIN to COMMIT, so transactions of concurrent requests cannot
 * interleave; the instances are private to this source for the same reason.
 * Per batch, as on PostgreSQL: 1 in-process call for schema and database tenants (the
 * schema-qualified statement alone), 3 for row tenants (BEGIN + isolation, statement, COMMIT).
 */
export function createPgliteDataSource(options: PgliteDataSourceOptions = {}): SqlDataSource {
  const createInstance = options.createInstance ?? (() => PGlite.create());
  let shared: Promise<Instance> | undefined;
  const tenants = new Map<string, Promise<Instance>>();

  function open(purpose: PgliteInstancePurpose): Promise<Instance> {
    return createInstance(purpose).then(withMutex);
  }

  function instanceFor(tenant: TenantDataRef): Promise<Instance> {
    if (tenant.data.strategy !== 'database') {
      shared ??= open({ kind: 'shared' });
      return shared;
    }
    let instance = tenants.get(tenant.id);
    if (instance === undefined) {
      instance = open({ kind: 'tenant', tenantId: tenant.id });
      tenants.set(tenant.id, instance);
      // A failed start must not be cached forever.
      instance.catch(() => tenants.delete(tenant.id));
    }
    return instance;
  }

  const sessions: SessionSource = {
    async acquire(tenant): Promise<SessionLease> {
      const { db, lock } = await instanceFor(tenant);
      const unlock = await lock();
      const executor = pgliteExecutor(db);
      return {
        executor,
        release(destroy) {
          if (!destroy) {
            unlock();
            return;
          }
          // There is no connection to throw away: clean the one session before the next user.
          void executor
            .exec('ROLLBACK')
            .then(() => executor.exec('DISCARD ALL'))
            .catch(() => {})
            .finally(unlock);
        },
      };
    },
    async ping() {
      shared ??= open({ kind: 'shared' });
      const { db, lock } = await shared;
      const unlock = await lock();
      try {
        await db.query('SELECT 1');
      } finally {
        unlock();
      }
    },
    async close() {
      const all = [...(shared === undefined ? [] : [shared]), ...tenants.values()];
      await Promise.all(
        all.map(async (pending) => {
          const { db, lock } = await pending.catch(() => ({ db: undefined, lock: undefined }));
          if (db === undefined || lock === undefined) return;
          const unlock = await lock();
          try {
            await db.close();
          } finally {
            unlock();
          }
        }),
      );
    },
  };

  return createTenantDataSource(sessions, {
    rowRole: options.rowRole ?? DEFAULT_ROW_ROLE,
    rowSchema: options.rowSchema ?? DEFAULT_ROW_SCHEMA,
    statementTimeoutMs: options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS,
    onQuery: options.onQuery,
  });
}

export interface EmbeddedDataOptions extends PgliteDataSourceOptions {
  tenants: readonly TenantDataRef[];
  /** Absolute path of the migrations directory (`config.data.migrations`). */
  migrations: string;
  /** Absolute path of the seed module (`config.data.seed`); unset → tables only. */
  seed?: string | undefined;
  /** Passed to the seed as `size`; unset → the seed's default. */
  seedSize?: number | undefined;
}

/**
 * An embedded DataSource with `tenants` migrated (a row schema once, however many tenants share
 * it) and seeded: what `npm start` runs on without a DATABASE_URL.
 */
export async function createEmbeddedData(options: EmbeddedDataOptions): Promise<SqlDataSource> {
  const source = createPgliteDataSource(options);
  const names = {
    ...(options.rowRole === undefined ? {} : { rowRole: options.rowRole }),
    ...(options.rowSchema === undefined ? {} : { rowSchema: options.rowSchema }),
  };
  try {
    // One tenant at a time: they may share the one embedded session anyway. migrateTenant
    // itself finds a row schema already migrated, so the second row tenant applies nothing.
    for (const tenant of options.tenants) {
      await source.withSession(tenant, async (session) => {
        await migrateTenant(session, tenant, { ...names, dir: options.migrations });
        if (options.seed !== undefined) {
          await seedTenant(session, tenant, {
            ...names,
            module: options.seed,
            ...(options.seedSize === undefined ? {} : { size: options.seedSize }),
          });
        }
      });
    }
  } catch (error) {
    await source.close();
    throw error;
  }
  return source;
}
