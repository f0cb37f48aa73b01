import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { createPostgresDataSource } from '../../../src/backends/data/postgres.js';
import { GatewayError } from '../../../src/errors.js';
import type { DataSource } from '../../../src/backends/data/types.js';
import { createAdmissionControl, type AdmissionControl } from '../../../src/limits/admission.js';
import { createConcurrencyLimiter } from '../../../src/limits/concurrency.js';
import { createRateLimiter, type LimiterFallback } from '../../../src/limits/rate-limit.js';
import type { PredictionService } from '../../../src/sources/inference/prediction-loaders.js';
import { createRedisClient, waitForRedis } from '../../../src/store/redis-client.js';
import { createRedisStore } from '../../../src/store/redis-store.js';
import type { Store } from '../../../src/store/types.js';

/** The machine's Redis; each file picks its own database number (see the callers). */
export const REDIS_HOST_URL = 'redis://127.0.0.1:6379';

/** One replica's view of Redis: its own client and store, as each gateway process has. */
export interface Replica {
  client: Redis;
  store: Store;
}

export async function connectReplica(url: string, timeoutMs = 2_000): Promise<Replica> {
  const client = createRedisClient({ url }, { commandTimeoutMs: timeoutMs }) as Redis;
  await waitForRedis(client, 5_000);
  return { client, store: createRedisStore({ client, closeClient: false, timeoutMs }) };
}

export async function closeReplica(replica: Replica | undefined): Promise<void> {
  if (replica === undefined) return;
  await replica.store.close();
  await replica.client.quit().catch(() => undefined);
}

/** Every key of `tenant`, found with SCAN on its hash tag. */
export async function tenantKeys(client: Redis, tenant: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `atrium:{${tenant}}:*`, 'COUNT', 1000);
    found.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return found.sort();
}

export async function deleteTenantKeys(client: Redis, tenants: readonly string[]): Promise<void> {
  for (const tenant of tenants) {
    const keys = await tenantKeys(client, tenant);
    if (keys.length > 0) await client.del(...keys);
  }
}

/** The gateway's admission control over one replica's store, as src/main.ts builds it. */
export function admissionOn(store: Store, fallback: LimiterFallback = 'refuse'): AdmissionControl {
  return createAdmissionControl({
    rateLimiter: createRateLimiter({ store, fallback }),
    concurrency: createConcurrencyLimiter({ store, fallback }),
  });
}

/**
 * A data source these suites never read tenant data from (their operations read the viewer and
 * predictions only): its statements fail as an unreachable database would, so the gateway's
 * catalog check cannot read a catalog and refuses no tenant; `ping` and `close` are a real
 * PostgreSQL source's on the test database (it opens no connection unless pinged).
 */
export function unusedDataSource(): DataSource {
  const source = createPostgresDataSource({
    url: 'postgres://postgres@127.0.0.1:5432/test',
    poolMax: 1,
    tenantPoolMax: 1,
    maxTenantPools: 1,
    tenantPoolIdleMs: 1_000,
    statementTimeoutMs: 1_000,
    rowRole: 'atrium_tenant',
  });
  return {
    query: () =>
      Promise.reject(new GatewayError('BACKEND_UNAVAILABLE', 'This suite reads no tenant data.')),
    schemaOf: (tenant) => source.schemaOf(tenant),
    ping: () => source.ping(),
    close: () => source.close(),
  };
}

/** A model with two features, for `predict(model: "churn", inputs: [[x, y]])`. */
export const TWO_FEATURE_MODEL = {
  churn: {
    backend: 'local',
    model: 'churn',
    version: '1',
    thresholds: { low: 0, high: 0.5 },
    features: ['a', 'b'],
  },
};

/**
 * A prediction service that records every call (tenant and rows) and scores a row as the
 * mean of its values; `hold()` makes calls wait until `release()`, to keep requests in flight.
 */
export function recordingPredictor(): PredictionService & {
  calls: { tenantId: string; rows: number[][] }[];
  pending(): number;
  hold(): void;
  release(): void;
} {
  const calls: { tenantId: string; rows: number[][] }[] = [];
  let held: (() => void)[] | undefined;
  let waiting = 0;
  return {
    calls,
    pending: () => waiting,
    hold() {
      held ??= [];
    },
    release() {
      const list = held ?? [];
      held = undefined;
      list.forEach((resolve) => resolve());
    },
    async predict(tenantId, _target, rows) {
      calls.push({ tenantId, rows });
      if (held !== undefined) {
        const list = held;
        waiting += 1;
        await new Promise<void>((resolve) => list.push(resolve));
        waiting -= 1;
      }
      return {
        scores: rows.map((row) => row.reduce((a, b) => a + b, 0) / row.length),
        modelVersion: '1',
      };
    },
  };
}

export { eventually } from '../../support/eventually.js';

/**
 * A TCP proxy on a free loopback port in front of `targetPort`: `cut()` drops every
 * connection and refuses new ones (a network partition for whoever connects through it, while
 * everyone else still reaches Redis); `restore()` accepts again on the same port.
 */
export interface TcpProxy {
  readonly port: number;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = async (): Promise<void> => {
    const next = createServer((client) => {
      const upstream = connect({ host: '127.0.0.1', port: targetPort });
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    next.listen(port, '127.0.0.1');
    await once(next, 'listening');
    port = (next.address() as AddressInfo).port;
    server = next;
  };
  const stop = async (): Promise<void> => {
    const current = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (current) await new Promise((resolve) => current.close(resolve));
  };
  await listen();
  return {
    get port() {
      return port;
    },
    cut: stop,
    restore: listen,
    close: stop,
  };
}
