import pg from 'pg';
import { DEFAULT_ROW_ROLE } from '../../config/schema.js';
import { DEFAULT_ROW_SCHEMA } from '../../config/isolation-targets.js';
import { createFairPool, type FairPoolEvent } from './fair-pool.js';
import { pgExecutor } from './sql-executor.js';
import {
  createTenantDataSource,
  type SessionLease,
  type SessionSource,
  type SqlDataSource,
} from './tenant-data-source.js';
import { createTenantPools } from './tenant-pools.js';
import { gatewayPgTypes } from './timestamps.js';
import type { QueryEvent } from './types.js';

/** How long to wait for a connection (new or from a busy pool) before BACKEND_TIMEOUT. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/**
 * Client-side backstop over `statement_timeout`: the server cancels a slow statement itself, so
 * this only fires when the server (or the network to it) stops answering altogether.
 */
const QUERY_TIMEOUT_SLACK_MS = 1_000;

/** Which pool a `createPool` call is for. */
export type PoolPurpose = { kind: 'shared' } | { kind: 'tenant'; tenantId: string };

export interface PostgresDataSourceOptions {
  /** The shared database of the `schema` and `row` strategies (DATABASE_URL). */
  url: string;
  /** Connections in the shared pool. */
  poolMax: number;
  /**
   * Connections of the shared pool one tenant may hold at once; default half the pool
   * (rounded up). A tenant's slow statements then leave the rest to the others.
   */
  tenantShareMax?: number | undefined;
  /** Told how tenants queue for and get shared-pool connections (metrics, tests). */
  onSharedPoolEvent?: ((event: FairPoolEvent) => void) | undefined;
  /** Connections in each `database` tenant's pool, unless the tenant sets `poolMax`. */
  tenantPoolMax: number;
  /** Most `database` tenant pools open at once (least recently used idle pool is closed). */
  maxTenantPools: number;
  /** A tenant pool unused for this long is closed. */
  tenantPoolIdleMs: number;
  /** `SET LOCAL statement_timeout` of every transaction. */
  statementTimeoutMs: number;
  /** NOLOGIN role without BYPASSRLS for the `row` strategy (created by the migrations). */
  rowRole: string;
  /** Schema of the `row` strategy's shared tables; default `atrium_shared`. */
  rowSchema?: string | undefined;
  /** Connect timeout; default DEFAULT_CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number | undefined;
  /** Called once per data statement, after its transaction, with its round trips. */
  onQuery?: ((event: QueryEvent) => void) | undefined;
  /**
   * Errors of idle pooled connections (a server restart, a dropped socket). They are harmless —
   * the pool replaces the connection — but without a listener Node would crash on them.
   */
  onConnectionError?: ((error: Error, purpose: PoolPurpose) => void) | undefined;
  /**
   * Builds each pg Pool (default `new pg.Pool(config)`). The source builds its pools from URLs
   * because `database` tenants' pools come and go with the tenants; this hook lets a caller
   * observe or wrap them (tests use it to reach a pool's connection).
   */
  createPool?: ((config: pg.PoolConfig, purpose: PoolPurpose) => pg.Pool) | undefined;
}

/**
 * The production DataSource on PostgreSQL through node-postgres.
 *
 * - `schema` and `row` tenants share one pool on `url`, each tenant holding at most
 *   `tenantShareMax` of its connections, waiting tenants served in turn (`fair-pool.ts`);
 *   `database` tenants get a bounded pool each, closed when idle and capped at `maxTenantPools`.
 * - A batch of a schema or database tenant is one round trip (the schema-qualified statement);
 *   a row tenant's costs 3: `BEGIN; <isolation>` (one simple-protocol message), the statement,
 *   `COMMIT`. See `runInTransaction`.
 * - Connection refused → `BACKEND_UNAVAILABLE`; connect, statement or query timeouts →
 *   `BACKEND_TIMEOUT`; a constraint an insert breaks → `BAD_USER_INPUT`.
 */
export function createPostgresDataSource(options: PostgresDataSourceOptions): SqlDataSource {
  const createPool = options.createPool ?? ((config) => new pg.Pool(config));
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const onConnectionError = options.onConnectionError ?? (() => {});

  function poolConfig(url: string, max: number, idleMs: number | undefined): pg.PoolConfig {
    return {
      connectionString: url,
      max,
      connectionTimeoutMillis: connectTimeoutMs,
      // A startup parameter: schema and database tenants' statements run without a
      // transaction around them (one round trip) and are still bounded.
      statement_timeout: options.statementTimeoutMs,
      query_timeout: options.statementTimeoutMs + QUERY_TIMEOUT_SLACK_MS,
      ...(idleMs === undefined ? {} : { idleTimeoutMillis: idleMs }),
      application_name: 'atrium',
      // timestamptz read without regular expressions (the same Dates; timestamps.ts).
      types: gatewayPgTypes,
      // Idle pooled connections must not keep a script or a test process alive.
      allowExitOnIdle: true,
    };
  }

  function build(config: pg.PoolConfig, purpose: PoolPurpose): pg.Pool {
    const pool = createPool(config, purpose);
    pool.on('error', (error) => onConnectionError(error, purpose));
    // A checked-out client is between statements only inside runInTransaction, but a socket
    // can still die there; the next statement then fails and is translated.
    pool.on('connect', (client) =>
      client.on('error', (error) => onConnectionError(error, purpose)),
    );
    return pool;
  }

  const shared = build(poolConfig(options.url, options.poolMax, undefined), { kind: 'shared' });
  const sharedShares = createFairPool({
    size: options.poolMax,
    tenantShareMax: options.tenantShareMax ?? Math.ceil(options.poolMax / 2),
    acquireTimeoutMs: connectTimeoutMs,
    connect: () => shared.connect(),
    onEvent: options.onSharedPoolEvent,
  });
  const tenantPools = createTenantPools<pg.PoolClient>({
    maxPools: options.maxTenantPools,
    idleMs: options.tenantPoolIdleMs,
    createPool: (spec) =>
      build(poolConfig(spec.url, spec.poolMax, options.tenantPoolIdleMs), {
        kind: 'tenant',
        tenantId: spec.tenantId,
      }),
  });

  const sessions: SessionSource = {
    async acquire(tenant): Promise<SessionLease> {
      const { data } = tenant;
      if (data.strategy === 'database') {
        const lease = await tenantPools.acquire({
          tenantId: tenant.id,
          url: data.url,
          poolMax: data.poolMax ?? options.tenantPoolMax,
        });
        return { executor: pgExecutor(lease.client), release: lease.release };
      }
      const { client, release } = await sharedShares.acquire(tenant.id);
      return {
        executor: pgExecutor(client),
        release: (destroy) => {
          client.release(destroy ? true : undefined);
          release();
        },
      };
    },
    async ping() {
      await shared.query('SELECT 1');
    },
    async close() {
      sharedShares.close();
      await Promise.all([shared.end(), tenantPools.close()]);
    },
  };

  return createTenantDataSource(sessions, {
    rowRole: options.rowRole || DEFAULT_ROW_ROLE,
    rowSchema: options.rowSchema ?? DEFAULT_ROW_SCHEMA,
    statementTimeoutMs: options.statementTimeoutMs,
    onQuery: options.onQuery,
  });
}
