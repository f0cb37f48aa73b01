import { isGatewayError } from '../../errors.js';
import type {
  DataSource,
  Statement,
  StatementTarget,
  TenantDataRef,
} from '../../backends/data/types.js';

/** Keys one coalesced statement carries at most (then the next callers start another). */
export const DEFAULT_SHARED_LOOKUP_MAX_KEYS = 1_000;

type Row = Readonly<Record<string, unknown>>;

/** A statement's raw rows grouped by the text of their key column. */
export type RowsByKey = ReadonlyMap<string, readonly Row[]>;

/** One keyed read: rows whose `keyColumn` is one of `keys`, by a statement `build` makes. */
export interface KeyedRead {
  /**
   * What the statement reads, apart from its keys: reads of one tenant with the same name and
   * `shape` are the same statement over other keys, so they may share one.
   */
  name: string;
  /** The binding the statement comes from (compared by identity with the name). */
  shape: object;
  /** Distinct keys, as text. */
  keys: readonly string[];
  /** The column each row answers for (its key). */
  keyColumn: string;
  build(keys: readonly string[], target: StatementTarget): Statement;
}

/** A read whose statement is the same whoever asks it (a page): no keys to merge. */
export interface SameRead {
  /**
   * What the statement reads, its arguments included: reads of one tenant with the same name
   * and `shape` are the same statement.
   */
  name: string;
  /** The binding the statement comes from (compared by identity with the name). */
  shape: object;
  build(target: StatementTarget): Statement;
}

/**
 * Keyed reads shared across the requests of one tenant: concurrent requests' DataLoader
 * batches for the same statement (rows of a table by one column, the first N children of each
 * parent) become one statement while they wait for a database session. A request's own loader
 * still batches and caches its keys; this joins the loaders of different requests, as the
 * micro-batcher joins their model rows.
 */
export interface SharedLookups {
  /** The rows of `read.keys`; the statement may carry other keys, each caller reads its own. */
  read(tenant: TenantDataRef, read: KeyedRead): Promise<RowsByKey>;
  /**
   * The rows of a statement every caller would run alike: a caller that asks while the same
   * statement of the same tenant still waits for a session gets its rows (read after it asked,
   * as its own statement would have been), instead of queueing a second one.
   */
  same(tenant: TenantDataRef, read: SameRead): Promise<readonly Row[]>;
}

interface PendingSame {
  shape: object;
  open: boolean;
  rows: Promise<readonly Row[]>;
}

interface PendingRead {
  shape: object;
  keys: Set<string>;
  /** Reads that joined this statement (the first included). */
  callers: number;
  /** Until the data source builds the statement: keys may still join. */
  open: boolean;
  rows: Promise<RowsByKey>;
}

export interface SharedLookupsOptions {
  maxKeys?: number | undefined;
}

/**
 * Coalesces by waiting for nothing: a read starts at once, and only the callers that arrive
 * while it waits for a session (the pool busy) join it — an idle gateway adds no latency, a
 * loaded one issues one statement where it would have queued many.
 *
 * Isolation: pending reads are held per tenant object (a WeakMap on the TenantDataRef the
 * request was admitted with), so a statement only ever carries one tenant's keys and runs
 * under that tenant's isolation; a tenant whose configuration changed is a new object and
 * starts statements of its own.
 */
export function createSharedLookups(
  dataSource: DataSource,
  options: SharedLookupsOptions = {},
): SharedLookups {
  const maxKeys = options.maxKeys ?? DEFAULT_SHARED_LOOKUP_MAX_KEYS;
  const pending = new WeakMap<TenantDataRef, Map<string, PendingRead>>();
  const pendingSame = new WeakMap<TenantDataRef, Map<string, PendingSame>>();

  function start(
    tenant: TenantDataRef,
    reads: Map<string, PendingRead> | undefined,
    read: KeyedRead,
  ): PendingRead {
    const entry: PendingRead = {
      shape: read.shape,
      keys: new Set(),
      callers: 0,
      open: true,
      rows: Promise.resolve(new Map()),
    };
    const close = () => {
      entry.open = false;
      if (reads?.get(read.name) === entry) reads.delete(read.name);
    };
    const { keyColumn } = read;
    entry.rows = dataSource
      .query(tenant, (target) => {
        close();
        return read.build([...entry.keys], target);
      })
      .then((rows) => {
        const byKey = new Map<string, Row[]>();
        for (const row of rows) {
          const key = String(row[keyColumn]);
          const list = byKey.get(key);
          if (list) list.push(row);
          else byKey.set(key, [row]);
        }
        return byKey;
      })
      .finally(close);
    reads?.set(read.name, entry);
    return entry;
  }

  return {
    same(tenant, read) {
      let reads = pendingSame.get(tenant);
      if (!reads) {
        reads = new Map();
        pendingSame.set(tenant, reads);
      }
      const joined = reads.get(read.name);
      if (joined?.open && joined.shape === read.shape) return joined.rows;
      const entry: PendingSame = { shape: read.shape, open: true, rows: Promise.resolve([]) };
      const close = () => {
        entry.open = false;
        if (reads.get(read.name) === entry) reads.delete(read.name);
      };
      entry.rows = dataSource
        .query(tenant, (target) => {
          close();
          return read.build(target);
        })
        .finally(close);
      reads.set(read.name, entry);
      return entry.rows;
    },

    async read(tenant, read) {
      let reads = pending.get(tenant);
      if (!reads) {
        reads = new Map();
        pending.set(tenant, reads);
      }
      let entry = reads.get(read.name);
      if (
        !entry?.open ||
        entry.shape !== read.shape ||
        entry.keys.size + read.keys.length > maxKeys
      ) {
        entry = start(tenant, reads, read);
      }
      for (const key of read.keys) entry.keys.add(key);
      entry.callers += 1;
      try {
        return await entry.rows;
      } catch (error) {
        // A value the column cannot hold fails the whole statement, and a joined statement
        // carried other requests' keys: any of them may be why. Each caller then reads its own
        // keys alone (a statement no one joins), so one request's bad key never fails
        // another's. Other failures (timeouts, an outage) are every caller's and are not retried.
        if (entry.callers === 1 || !isGatewayError(error) || error.code !== 'BAD_USER_INPUT') {
          throw error;
        }
        const alone = start(tenant, undefined, read);
        for (const key of read.keys) alone.keys.add(key);
        return alone.rows;
      }
    },
  };
}
