import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { StoreError } from './errors.js';

const { escapeIdentifier, escapeLiteral } = pg;

/**
 * The durable copy of operator decisions, in PostgreSQL: run-time tenant records (configs,
 * suspensions, tombstones), trusted documents, and the revision that names their state.
 *
 * The shared store (Redis) is where replicas read these on the hot path, and it may lose them
 * (a restart without persistence, an eviction, a flushed database). This copy is what they
 * are restored from: writers commit here first, then update the store with the same revision;
 * replicas compare the two revisions and rebuild the store from here when they differ
 * (`tenancy/live-config.ts`). Values are opaque here (tenant records are JSON text that
 * `tenancy/` parses and validates): this module knows tables, not tenants' configuration.
 *
 * Tables, in their own schema (`liveConfig.controlSchema`, default `atrium_control`):
 *   state(revision)                                   one row: the current revision
 *   tenant_records(tenant_id, record, updated_at)     one record per tenant id
 *   trusted_documents(tenant_id, hash, body, …)       registered documents
 * Created on first use (and by `npm run db:migrate`), under an advisory lock.
 *
 * Failures reject with a `StoreError` (`STORE_UNAVAILABLE` when PostgreSQL cannot be reached,
 * `STORE_FAILED` when it answered with an error), like the shared store's.
 */
export interface ControlStore {
  /** The current revision; `null` when nothing was ever committed. */
  revision(): Promise<string | null>;
  /** Everything, read in one transaction (a consistent state at one revision). */
  snapshot(): Promise<ControlSnapshot>;
  /** The tenant records alone (JSON text by tenant id). */
  tenants(): Promise<ReadonlyMap<string, string>>;
  /**
   * Serialised with every other writer (of every replica and CLI): reads the current tenant
   * records and revision, calls `decide`, and commits the change it returns with a new
   * revision in one transaction. `decide` may throw to refuse (nothing is written) or return
   * `undefined` (nothing to write; resolves `undefined`).
   */
  commit(decide: ControlDecision): Promise<ControlCommit | undefined>;
  /** Creates the schema and tables if missing (idempotent). Other methods call it once. */
  migrate(): Promise<void>;
}

/** A registered trusted document. */
export interface ControlDocument {
  readonly tenantId: string;
  /** SHA-256 hex of `body`. */
  readonly hash: string;
  readonly body: string;
}

export interface ControlSnapshot {
  readonly revision: string | null;
  /** Tenant records by tenant id (JSON text). */
  readonly tenants: ReadonlyMap<string, string>;
  readonly documents: readonly ControlDocument[];
}

export interface ControlChange {
  /** Records to write (JSON text) or drop (`null`), by tenant id. */
  readonly tenants?: ReadonlyMap<string, string | null> | undefined;
  readonly putDocuments?: readonly ControlDocument[] | undefined;
  readonly removeDocuments?:
    readonly { readonly tenantId: string; readonly hash: string }[] | undefined;
  /** The revision to commit under; default a fresh random id. (Imports keep the store's.) */
  readonly revision?: string | undefined;
}

export type ControlDecision = (
  tenants: ReadonlyMap<string, string>,
  revision: string | null,
) => ControlChange | undefined;

export interface ControlCommit {
  /** The revision before this commit (`null` for the first). */
  readonly previous: string | null;
  readonly revision: string;
  /** How many of `removeDocuments` existed. */
  readonly removedDocuments: number;
}

/** What the control store needs of a node-postgres pool. */
export interface ControlPool {
  connect(): Promise<pg.PoolClient>;
}

export interface PostgresControlStoreOptions {
  /** A small pool on the shared database (DATABASE_URL), built by the composition root. */
  pool: ControlPool;
  /** Schema of the tables; a lowercase SQL identifier. */
  schema: string;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** Carries what a caller's `decide` threw through the transaction's rollback, unchanged. */
class Refusal {
  constructor(readonly reason: unknown) {}
}

function translate(error: unknown, operation: string): StoreError {
  if (error instanceof StoreError) return error;
  const err = error as { code?: unknown; message?: unknown };
  // A PostgreSQL error carries a five-character SQLSTATE; anything else never reached it.
  const answered = typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code);
  return new StoreError(
    answered ? 'STORE_FAILED' : 'STORE_UNAVAILABLE',
    `control.${operation}`,
    typeof err.message === 'string' ? err.message : String(error),
    { cause: error },
  );
}

/** The durable copy on PostgreSQL; see {@link ControlStore}. */
export function createPostgresControlStore(options: PostgresControlStoreOptions): ControlStore {
  const { pool, schema } = options;
  if (!IDENTIFIER.test(schema)) {
    throw new TypeError(
      `createPostgresControlStore: schema must be a lowercase SQL identifier; received ${JSON.stringify(schema)}`,
    );
  }
  const s = escapeIdentifier(schema);
  // One lock per control schema: writers of one fleet queue, two fleets never wait for each other.
  const lock = `SELECT pg_advisory_xact_lock(hashtext(${escapeLiteral(`atrium-control:${schema}`)}))`;
  let migrated: Promise<void> | undefined;

  async function transaction<T>(
    operation: string,
    mode: 'read' | 'write',
    work: (client: pg.PoolClient) => Promise<T>,
  ): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw translate(error, operation);
    }
    let broken = false;
    try {
      await client.query(
        mode === 'read' ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN',
      );
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw error instanceof Refusal ? error.reason : translate(error, operation);
    } finally {
      // A connection whose ROLLBACK failed is in an unknown state: drop it, never pool it.
      client.release(broken);
    }
  }

  async function migrateNow(): Promise<void> {
    await transaction('migrate', 'write', async (client) => {
      await client.query(lock);
      await client.query(`
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.state (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  revision text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${s}.tenant_records (
  tenant_id text PRIMARY KEY,
  record jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${s}.trusted_documents (
  tenant_id text NOT NULL,
  hash text NOT NULL,
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, hash)
);`);
    });
  }

  function ensure(): Promise<void> {
    migrated ??= migrateNow();
    // A failed attempt (database down, no privilege) is tried again on the next call.
    migrated.catch(() => {
      migrated = undefined;
    });
    return migrated;
  }

  async function readRevision(client: pg.PoolClient): Promise<string | null> {
    const result = await client.query<{ revision: string }>(`SELECT revision FROM ${s}.state`);
    return result.rows[0]?.revision ?? null;
  }

  async function readTenants(client: pg.PoolClient): Promise<Map<string, string>> {
    const result = await client.query<{ tenant_id: string; record: string }>(
      `SELECT tenant_id, record::text AS record FROM ${s}.tenant_records ORDER BY tenant_id`,
    );
    return new Map(result.rows.map((row) => [row.tenant_id, row.record]));
  }

  return {
    migrate: ensure,

    async revision() {
      await ensure();
      return transaction('revision', 'read', readRevision);
    },

    async tenants() {
      await ensure();
      return transaction('tenants', 'read', readTenants);
    },

    async snapshot() {
      await ensure();
      return transaction('snapshot', 'read', async (client) => {
        const revision = await readRevision(client);
        const tenants = await readTenants(client);
        const documents = await client.query<{ tenant_id: string; hash: string; body: string }>(
          `SELECT tenant_id, hash, body FROM ${s}.trusted_documents ORDER BY tenant_id, hash`,
        );
        return {
          revision,
          tenants,
          documents: documents.rows.map((row) => ({
            tenantId: row.tenant_id,
            hash: row.hash,
            body: row.body,
          })),
        };
      });
    },

    async commit(decide) {
      await ensure();
      return transaction('commit', 'write', async (client) => {
        await client.query(lock);
        const previous = await readRevision(client);
        const tenants = await readTenants(client);
        let change: ControlChange | undefined;
        try {
          change = decide(tenants, previous);
        } catch (error) {
          throw new Refusal(error);
        }
        if (change === undefined) return undefined;
        for (const [tenantId, record] of change.tenants ?? []) {
          if (record === null) {
            await client.query(`DELETE FROM ${s}.tenant_records WHERE tenant_id = $1`, [tenantId]);
          } else {
            await client.query(
              `INSERT INTO ${s}.tenant_records (tenant_id, record) VALUES ($1, $2::jsonb)
               ON CONFLICT (tenant_id) DO UPDATE SET record = EXCLUDED.record, updated_at = now()`,
              [tenantId, record],
            );
          }
        }
        for (const document of change.putDocuments ?? []) {
          await client.query(
            `INSERT INTO ${s}.trusted_documents (tenant_id, hash, body) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, hash) DO NOTHING`,
            [document.tenantId, document.hash, document.body],
          );
        }
        let removedDocuments = 0;
        for (const document of change.removeDocuments ?? []) {
          const result = await client.query(
            `DELETE FROM ${s}.trusted_documents WHERE tenant_id = $1 AND hash = $2`,
            [document.tenantId, document.hash],
          );
          removedDocuments += result.rowCount ?? 0;
        }
        const revision = change.revision ?? randomUUID();
        await client.query(
          `INSERT INTO ${s}.state (id, revision) VALUES (true, $1)
           ON CONFLICT (id) DO UPDATE SET revision = EXCLUDED.revision, updated_at = now()`,
          [revision],
        );
        return { previous, revision, removedDocuments };
      });
    },
  };
}

/** Connections of the control pool: operator writes are rare, replicas read one row per poll. */
export const DEFAULT_CONTROL_POOL_MAX = 2;
/** Bound on each control statement and on waiting for a connection. */
export const DEFAULT_CONTROL_TIMEOUT_MS = 2_000;

export interface ControlPoolOptions {
  /** The shared database (DATABASE_URL). */
  url: string;
  max?: number | undefined;
  timeoutMs?: number | undefined;
  /** Errors of idle connections (a server restart); without a listener Node would crash. */
  onError?: ((error: Error) => void) | undefined;
}

/**
 * The control store's own small pool, built by the composition root (and the CLI) and closed
 * by it: kept apart from the data pools so tenants' statements never wait behind it, nor it
 * behind them.
 */
export function createControlPool(options: ControlPoolOptions): pg.Pool {
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max ?? DEFAULT_CONTROL_POOL_MAX,
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: timeoutMs,
    query_timeout: timeoutMs + 1_000,
    idleTimeoutMillis: 30_000,
    application_name: 'atrium-control',
  });
  pool.on('error', (error) => options.onError?.(error));
  return pool;
}
