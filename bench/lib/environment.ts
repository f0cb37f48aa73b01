/**
 * What every scenario shares: a PostgreSQL database of its own (created for the run, dropped
 * after), a seeded tenant, Redis key cleanup, really signed tokens, the gateway config builder
 * and a description of the machine.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import { Redis } from 'ioredis';
import pg from 'pg';
import { migrateTenant } from '../../src/backends/data/migrations.js';
import { createPostgresDataSource } from '../../src/backends/data/postgres.js';
import { seedTenant } from '../../src/backends/data/seeding.js';
import type { SqlExecutor } from '../../src/backends/data/sql-executor.js';
import {
  DEFAULT_MIGRATIONS_DIR,
  DEFAULT_PLANS,
  DEFAULT_ROW_ROLE,
  DEMO_EXAMPLE_DIR,
} from '../../src/config/schema.js';
import {
  createTestSigner,
  TEST_AUDIENCE,
  TEST_ISSUER,
  type TestSigner,
} from '../../test/support/tokens.js';

export const PG_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const PG_BASE_URL = 'postgres://postgres@127.0.0.1:5432';
export const REDIS_URL = 'redis://127.0.0.1:6379';

/** A lowercase suffix unique to this run, safe in database names and tenant ids. */
export function runSuffix(): string {
  return `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
}

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>, url = PG_ADMIN_URL): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'atrium-bench' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface BenchDatabase {
  name: string;
  url: string;
  /**
   * Transactions committed in this database so far, less the one each new session commits while
   * it starts. Every data statement of the gateway runs in its own transaction (BEGIN +
   * isolation; statement; COMMIT), so a delta of this counter is the number of data statements. PostgreSQL publishes a backend's counts when it goes idle
   * for a while or exits, so this first ends the gateway's idle connections (the pool replaces
   * them on the next request) and waits until the counter is still.
   */
  committedTransactions(): Promise<number>;
  drop(): Promise<void>;
}

/**
 * A database of this run's own on the local PostgreSQL: nothing else commits transactions in
 * it, which is what makes `committedTransactions` an exact statement count.
 */
export async function createBenchDatabase(suffix: string): Promise<BenchDatabase> {
  const name = `atrium_bench_${suffix}`;
  await withAdmin((c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
  const read = () =>
    withAdmin(async (c) => {
      const { rows } = await c.query<{ n: string }>(
        // Opening a session commits one catalog transaction of its own: not a statement.
        'SELECT (xact_commit - sessions)::text AS n FROM pg_stat_database WHERE datname = $1',
        [name],
      );
      return Number(rows[0]?.n ?? Number.NaN);
    });
  return {
    name,
    url: `${PG_BASE_URL}/${name}`,
    async committedTransactions() {
      await withAdmin(async (c) => {
        // Until every connection of the gateway is gone: one in a transaction is ended once idle.
        for (let i = 0; i < 250; i += 1) {
          const { rowCount } = await c.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'idle'`,
            [name],
          );
          const { rows: left } = await c.query<{ n: string }>(
            'SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = $1',
            [name],
          );
          if (rowCount === 0 && left[0]?.n === '0') break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      });
      // An exiting backend leaves pg_stat_activity a moment before it publishes its counts.
      let last = await read();
      for (let still = 0, i = 0; still < 3 && i < 50; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const now = await read();
        still = now === last ? still + 1 : 0;
        last = now;
      }
      return last;
    },
    async drop() {
      await withAdmin((c) =>
        c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
      );
    },
  };
}

type BenchStrategy = 'schema' | 'row';

/** One administrative session on the database holding `tenant`'s data. */
async function withTenantSession<T>(
  url: string,
  tenant: { id: string; data: { strategy: BenchStrategy } },
  fn: (session: SqlExecutor) => Promise<T>,
): Promise<T> {
  const dataSource = createPostgresDataSource({
    url,
    poolMax: 1,
    tenantPoolMax: 1,
    maxTenantPools: 1,
    tenantPoolIdleMs: 10_000,
    statementTimeoutMs: 120_000,
    rowRole: DEFAULT_ROW_ROLE,
  });
  try {
    return await dataSource.withSession(tenant, fn);
  } finally {
    await dataSource.close();
  }
}

/**
 * Creates a tenant's tables in `url` (`schema` strategy unless told otherwise; `row` tenants
 * share the row schema, under forced RLS) and seeds `customers` customers.
 */
export function seedBenchTenant(
  url: string,
  tenantId: string,
  customers: number,
  strategy: BenchStrategy = 'schema',
) {
  const tenant = { id: tenantId, data: { strategy } };
  return withTenantSession(url, tenant, async (session) => {
    await migrateTenant(session, tenant, { dir: DEFAULT_MIGRATIONS_DIR });
    const seeded = await seedTenant(session, tenant, {
      module: `${DEMO_EXAMPLE_DIR}seed.ts`,
      size: customers,
    });
    // Fresh statistics, so the planner (and autovacuum) do not change course mid-run.
    await session.exec('ANALYZE');
    return seeded;
  });
}

/**
 * Creates a tenant's (empty) tables in `url`. Every served tenant needs them: the gateway
 * checks each tenant's catalog against the SDL's bindings and refuses a tenant whose tables are
 * missing (403 TENANT_MISCONFIGURED), even for queries that read no table.
 */
export async function migrateBenchTenant(
  url: string,
  tenantId: string,
  strategy: BenchStrategy = 'schema',
): Promise<void> {
  const tenant = { id: tenantId, data: { strategy } };
  await withTenantSession(url, tenant, (session) =>
    migrateTenant(session, tenant, { dir: DEFAULT_MIGRATIONS_DIR }),
  );
}

/** Deletes the Redis keys of the given tenants (rate limits, leases, cache, …). */
export async function deleteRedisKeys(tenantIds: readonly string[]): Promise<number> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let deleted = 0;
  try {
    await redis.connect();
    for (const id of tenantIds) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `atrium:{${id}}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) deleted += await redis.del(...keys);
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
  return deleted;
}

export { createTestSigner, type TestSigner };

/**
 * A plan that never refuses: the bench measures the limits' cost (every request still takes a
 * rate-limit decision and a concurrency lease), not their refusals.
 */
export const BENCH_PLAN = {
  rateLimit: { perSecond: 1_000_000, burst: 1_000_000 },
  maxConcurrent: 100_000,
  operation: {
    depth: 12,
    aliases: 15,
    rootFields: 20,
    directives: 50,
    tokens: 5_000,
    expandedFields: 100_000,
    variableValues: 1_000_000,
    cost: 1_000_000,
  },
  introspection: true,
};

export const CHURN_FEATURES = [
  'tenureMonths',
  'monthlySpend',
  'supportTickets',
  'daysSinceLastLogin',
  'lifetimeValue',
];

export interface BenchConfigOptions {
  signer: TestSigner;
  /** The tenants, as in the config file (`plan` defaults to `bench`). */
  tenants: Record<string, unknown>[];
  modelServerUrl?: string | undefined;
  inference?: Record<string, unknown> | undefined;
  server?: Record<string, unknown> | undefined;
}

/** A production config file: static ES256 key, the bench plan, the given tenants. */
export function benchConfig(options: BenchConfigOptions): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: 0, ...options.server },
    auth: {
      issuer: TEST_ISSUER,
      audience: TEST_AUDIENCE,
      algorithms: ['ES256'],
      keys: [{ kid: options.signer.kid, alg: 'ES256', jwk: options.signer.publicJwk }],
    },
    inference: {
      backends: options.modelServerUrl ? { ref: { url: options.modelServerUrl } } : {},
      ...options.inference,
    },
    plans: { ...DEFAULT_PLANS, bench: BENCH_PLAN },
    tenants: options.tenants,
  };
}

/**
 * A tenant of the bench: `schema` strategy unless told otherwise, bench plan, churn v2 on the
 * reference server.
 */
export function benchTenant(
  id: string,
  withModel: boolean,
  strategy: 'schema' | 'row' = 'schema',
): Record<string, unknown> {
  return {
    id,
    displayName: `Bench ${id}`,
    plan: 'bench',
    data: { strategy },
    models: withModel
      ? {
          churn: {
            backend: 'ref',
            model: 'churn',
            version: '2',
            thresholds: { low: 0, medium: 0.35, high: 0.7 },
            features: CHURN_FEATURES,
          },
        }
      : {},
  };
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  kernel: string;
  /** 1-minute load average when the run started and ended: a busy machine shows here. */
  loadAverage: { start: number; end?: number };
}

export function machineInfo(): MachineInfo {
  let cpuModel = 'unknown';
  try {
    cpuModel =
      /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ??
      'unknown';
  } catch {
    // Not Linux: leave it unknown.
  }
  return {
    nproc: availableParallelism(),
    cpuModel,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: release(),
    loadAverage: { start: loadavg()[0] ?? Number.NaN },
  };
}
