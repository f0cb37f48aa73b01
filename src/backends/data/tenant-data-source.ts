import { performance } from 'node:perf_hooks';
import { GatewayError } from '../../errors.js';
import { translateDataError, isServerError } from './errors.js';
import {
  checkIsolationOptions,
  isolationFor,
  tenantSchema,
  type IsolationOptions,
} from './isolation.js';
import type { SqlExecutor } from './sql-executor.js';
import type { DataSource, QueryEvent, Statement, StatementTarget, TenantDataRef } from './types.js';

/** One exclusive session borrowed for one transaction. */
export interface SessionLease {
  executor: SqlExecutor;
  /**
   * Gives the session back. `destroy` is true when its state is unknown (a socket error, a
   * client-side timeout, a failed ROLLBACK): the connection must be closed, not reused.
   */
  release(destroy: boolean): void;
}

/**
 * Where sessions come from — the only thing that differs between node-postgres (a pool per
 * shared database or tenant database) and PGlite (an in-process instance behind a mutex).
 */
export interface SessionSource {
  acquire(tenant: TenantDataRef): Promise<SessionLease>;
  /** Resolves when the shared backend answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A DataSource over SQL sessions, with raw access for migrations, the seed and tests. */
export interface SqlDataSource extends DataSource {
  /**
   * Runs `fn` on one session of the database that holds `tenant`'s data, WITHOUT the tenant's
   * isolation (it is for administration: migrations, seeding, inspection). Afterwards any open
   * transaction is rolled back and the session reset with `DISCARD ALL` (or the connection
   * destroyed if that fails), so nothing `fn` set can reach a later batch.
   */
  withSession<T>(tenant: TenantDataRef, fn: (session: SqlExecutor) => Promise<T>): Promise<T>;
}

export interface TenantDataSourceOptions extends IsolationOptions {
  /** Called once per data statement (after its transaction ends), never for BEGIN/COMMIT. */
  onQuery?: ((event: QueryEvent) => void) | undefined;
}

/** Counts a session's round trips so events can report them. */
function counting(executor: SqlExecutor, stats: { roundTrips: number }): SqlExecutor {
  return {
    query(text, params) {
      stats.roundTrips += 1;
      return executor.query(text, params);
    },
    exec(text) {
      stats.roundTrips += 1;
      return executor.exec(text);
    },
  };
}

/**
 * Runs `work` in one transaction on `lease`, inside the isolation `prelude`, and leaves the
 * session as it found it. Round trips on a healthy batch — exactly 3:
 *   1. `BEGIN; SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = …;
 *       SET LOCAL search_path TO …; [row: SET LOCAL ROLE …; SELECT set_config(…, true)]`
 *      — one simple-protocol message;
 *   2. the one parameterised data statement (whatever `work` issues — one statement here);
 *   3. `COMMIT` (or `ROLLBACK` after a failure).
 * Everything set in 1. is transaction-local, so COMMIT or ROLLBACK removes it. If the session's
 * state cannot be known (no SQLSTATE on the error, or ROLLBACK failed) it is destroyed.
 */
export async function runInTransaction<T>(
  lease: SessionLease,
  prelude: string,
  work: (session: SqlExecutor) => Promise<T>,
  stats: { roundTrips: number } = { roundTrips: 0 },
): Promise<T> {
  const session = counting(lease.executor, stats);
  let destroy = false;
  try {
    await session.exec(`BEGIN; ${prelude}`);
    const value = await work(session);
    await session.exec('COMMIT');
    return value;
  } catch (error) {
    if (isServerError(error)) {
      try {
        await session.exec('ROLLBACK');
      } catch {
        destroy = true;
      }
    } else {
      destroy = true;
    }
    throw error;
  } finally {
    lease.release(destroy);
  }
}

/**
 * The DataSource written once over a SessionSource: validation, isolation, the statements,
 * events and error translation are the same for node-postgres and PGlite.
 */
export function createTenantDataSource(
  sessions: SessionSource,
  options: TenantDataSourceOptions,
): SqlDataSource {
  const isolation = checkIsolationOptions({
    rowRole: options.rowRole,
    rowSchema: options.rowSchema,
    statementTimeoutMs: options.statementTimeoutMs,
  });
  const { onQuery } = options;
  let closed = false;

  function target(tenant: TenantDataRef): StatementTarget {
    return {
      schema: tenantSchema(tenant, isolation),
      tenantId: tenant.id,
      row: tenant.data.strategy === 'row',
    };
  }

  /**
   * Schema and database tenants: the schema-qualified statement alone, one round trip (the
   * pool's connections carry statement_timeout from their start). Row tenants: inside the
   * transaction that sets the row role and the tenant for row-level security.
   */
  async function execute<R>(
    tenant: TenantDataRef,
    build: () => Statement,
    stats: { roundTrips: number },
    timed: (run: () => Promise<R[]>) => Promise<R[]>,
  ) {
    const lease = await sessions.acquire(tenant);
    // Built once a session is held, not before: a caller coalescing lookups (sources/sql
    // shared-lookups.ts) keeps adding keys to a statement for as long as it waits for one.
    let statement: Statement;
    try {
      statement = build();
    } catch (error) {
      lease.release(false);
      throw error;
    }
    if (tenant.data.strategy !== 'row') {
      let destroy = false;
      try {
        stats.roundTrips += 1;
        return await timed(
          async () => (await lease.executor.query<R>(statement.text, statement.params)).rows,
        );
      } catch (error) {
        destroy = !isServerError(error);
        throw error;
      } finally {
        lease.release(destroy);
      }
    }
    const { prelude } = isolationFor(tenant, isolation, statement.readOnly);
    return runInTransaction(
      lease,
      prelude,
      (session) =>
        timed(async () => (await session.query<R>(statement.text, statement.params)).rows),
      stats,
    );
  }

  async function query<R>(tenant: TenantDataRef, build: (target: StatementTarget) => Statement) {
    if (closed) {
      throw new GatewayError('BACKEND_UNAVAILABLE', 'The data backend is closed');
    }
    let statement: Statement | undefined;
    const stats = { roundTrips: 0 };
    let issued = false;
    let ok = false;
    let rows: R[] = [];
    let durationMs = 0;
    try {
      const where = target(tenant);
      rows = await execute<R>(
        tenant,
        () => (statement = build(where)),
        stats,
        async (run) => {
          issued = true;
          const started = performance.now();
          try {
            return await run();
          } finally {
            durationMs = performance.now() - started;
          }
        },
      );
      ok = true;
      return rows;
    } catch (error) {
      throw translateDataError(error, statement?.operation ?? 'unknown');
    } finally {
      if (issued && onQuery !== undefined && statement !== undefined) {
        try {
          onQuery({
            tenantId: tenant.id,
            operation: statement.operation,
            strategy: tenant.data.strategy,
            durationMs,
            roundTrips: stats.roundTrips,
            rowCount: ok ? rows.length : 0,
            ok,
          });
        } catch {
          // An observer must not turn a good answer into an error.
        }
      }
    }
  }

  return {
    query,

    schemaOf(tenant) {
      return tenantSchema(tenant, isolation);
    },

    async ping() {
      if (closed) throw new GatewayError('BACKEND_UNAVAILABLE', 'The data backend is closed');
      try {
        await sessions.ping();
      } catch (error) {
        throw translateDataError(error, 'ping');
      }
    },

    async withSession(tenant, fn) {
      if (closed) throw new GatewayError('BACKEND_UNAVAILABLE', 'The data backend is closed');
      const lease = await sessions.acquire(tenant);
      let destroy = false;
      try {
        return await fn(lease.executor);
      } catch (error) {
        destroy = !isServerError(error);
        throw error;
      } finally {
        if (!destroy) {
          try {
            // Separate messages: DISCARD ALL refuses to run in a (multi-statement) block, and
            // ROLLBACK outside a transaction is only a warning.
            await lease.executor.exec('ROLLBACK');
            await lease.executor.exec('DISCARD ALL');
          } catch {
            destroy = true;
          }
        }
        lease.release(destroy);
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      await sessions.close();
    },
  };
}
