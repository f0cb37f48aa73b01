/**
 * The smallest surface the data layer needs from a database session, so that migrations, the
 * seed and the tenant strategies are written once and run on node-postgres and on PGlite alike.
 *
 * An executor is ONE session: statements issued through it run in order on the same connection,
 * so `exec('BEGIN; …')` followed by `query(…)` share a transaction. Do not share one executor
 * between concurrent units of work.
 */
export interface SqlExecutor {
  /** One statement over the extended protocol; `params` are bound, never interpolated. */
  query<R = Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
  ): Promise<{ rows: R[] }>;
  /** Several `;`-separated statements over the simple protocol, without parameters. */
  exec(text: string): Promise<void>;
}

/** The part of a node-postgres `Client`/`PoolClient` that `pgExecutor` uses. */
export interface PgQueryable {
  query(
    config: { text: string; values?: unknown[]; queryMode?: 'extended' } | string,
  ): Promise<{ rows: unknown[] }>;
}

/** Adapts a node-postgres client (not a Pool: a pool may hand each call another connection). */
export function pgExecutor(client: PgQueryable): SqlExecutor {
  return {
    async query<R>(text: string, params: readonly unknown[] = []) {
      // Always the extended protocol (node-postgres would use the simple one for a query
      // without values): it accepts exactly one statement, whatever the text holds.
      const result = await client.query({ text, values: [...params], queryMode: 'extended' });
      return { rows: result.rows as R[] };
    },
    async exec(text: string) {
      // node-postgres uses the simple protocol when there are no values, which is what allows
      // several statements in one round trip.
      await client.query(text);
    },
  };
}

/** The part of a PGlite instance or PGlite transaction that `pgliteExecutor` uses. */
export interface PgliteQueryable {
  query<T>(query: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(query: string): Promise<unknown>;
}

/** Adapts a PGlite instance or a PGlite transaction object. */
export function pgliteExecutor(db: PgliteQueryable): SqlExecutor {
  return {
    async query<R>(text: string, params: readonly unknown[] = []) {
      const result = await db.query<R>(text, [...params]);
      return { rows: result.rows };
    },
    async exec(text: string) {
      await db.exec(text);
    },
  };
}
