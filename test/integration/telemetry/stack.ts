import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { createOipClient, type OipClient } from '../../../src/backends/inference/oip-client.js';
import { createPredictor } from '../../../src/backends/inference/predictor.js';
import { createAdmissionControl } from '../../../src/limits/admission.js';
import { createConcurrencyLimiter } from '../../../src/limits/concurrency.js';
import { createRateLimiter } from '../../../src/limits/rate-limit.js';
import { createObservability, type Observability } from '../../../src/server/observability.js';
import { createMemoryStore } from '../../../src/store/memory-store.js';
import { createLogger } from '../../../src/telemetry/logger.js';
import { createGatewayMetrics, type GatewayMetrics } from '../../../src/telemetry/metrics.js';
import { createMetricsHandler, METRICS_PATH } from '../../../src/telemetry/metrics-endpoint.js';
import { NOOP_TRACING, type Tracing } from '../../../src/telemetry/tracing.js';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner } from '../../support/tokens.js';
import { createPostgresFixture, type PostgresFixture } from '../gateway/postgres-fixture.js';
import { eventually as retryUntil } from '../../support/eventually.js';

export const CHURN_FEATURES = [
  'tenureMonths',
  'monthlySpend',
  'supportTickets',
  'daysSinceLastLogin',
  'lifetimeValue',
];

export const CUSTOMERS_QUERY = `query Customers($first: Int!) {
  customers(first: $first) { edges { node { id name email churnRisk { score label cached } } } }
}`;

/** The gateway's log, one parsed JSON object per line, as written. */
export interface LogCapture {
  readonly lines: Record<string, unknown>[];
  /** Everything written, verbatim (for "never logged" assertions). */
  text(): string;
  /** The per-request lines (`msg: "request"`). */
  requests(): Record<string, unknown>[];
}

function captureLog(): { capture: LogCapture; destination: Writable } {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return {
    destination,
    capture: {
      lines,
      text: () => raw.join('\n'),
      requests: () => lines.filter((l) => l.msg === 'request'),
    },
  };
}

export interface ObservedStack {
  gateway: TestGateway;
  fixture: PostgresFixture;
  modelServer: SpawnedModelServer;
  client: OipClient;
  metrics: GatewayMetrics;
  observability: Observability;
  log: LogCapture;
  /** Tenant ids: `busy` has a tiny rate limit. */
  tenants: { a: string; b: string; busy: string };
  tokens: { a: string; b: string; busy: string };
  scrape(): Promise<{ status: number; contentType: string | null; body: string }>;
  stop(): Promise<void>;
}

/**
 * The gateway composed as src/main.ts composes it, observed: real PostgreSQL (three tenants),
 * the reference model server over HTTP, the memory store as prediction cache and limiter
 * store, a per-test metrics registry at /metrics, and the log captured in memory.
 */
export async function startObservedStack(
  options: { tracing?: Tracing; maxTenantLabels?: number } = {},
): Promise<ObservedStack> {
  const { capture, destination } = captureLog();
  const logger = createLogger({ level: 'info', destination });
  const metrics = createGatewayMetrics({
    registry: new Registry(),
    maxTenantLabels: options.maxTenantLabels ?? 100,
    maxOperationLabels: 20,
    processMetrics: false,
  });
  const observability = createObservability({
    logger,
    metrics,
    tracing: options.tracing ?? NOOP_TRACING,
  });
  const fixture = await createPostgresFixture({ onQuery: observability.onQuery('postgres') });
  const modelServer = await spawnModelServer({ port: 0, workers: 1 });
  const client = createOipClient({
    baseUrl: modelServer.url,
    timeoutMs: 5_000,
    connections: 4,
    breaker: { onStateChange: observability.onBreakerStateChange('models') },
  });
  observability.watchBreaker('models', client.breaker);
  const predictor = createPredictor({
    clients: (name) => (name === 'models' ? client : undefined),
    microBatch: { enabled: true, windowMs: 2, maxBatchSize: 256 },
    onInfer: observability.onInfer,
  });
  const store = createMemoryStore();
  const admission = createAdmissionControl({
    rateLimiter: createRateLimiter({
      store,
      fallback: 'local',
      onStoreError: observability.onLimiterStoreError,
    }),
    concurrency: createConcurrencyLimiter({ store, fallback: 'local', leaseTtlMs: 30_000 }),
  });
  const churn = (version: string) => ({
    churn: {
      backend: 'models',
      model: 'churn',
      version,
      thresholds: { low: 0, high: 0.5 },
      features: CHURN_FEATURES,
    },
  });
  const tenants = {
    a: fixture.tenants.schema.id,
    b: fixture.tenants.row.id,
    busy: fixture.tenants.database.id,
  };
  const signer = await createTestSigner();
  const gateway = await startTestGateway({
    signer,
    tenants: [
      { ...fixture.tenants.schema, models: churn('2') },
      { ...fixture.tenants.row, models: churn('1') },
      {
        ...fixture.tenants.database,
        models: churn('1'),
        // Two requests, then 429 for a long while.
        limits: { rateLimit: { perSecond: 0.01, burst: 1 } },
      },
    ],
    dataSource: fixture.dataSource,
    predictor,
    predictionCache: store,
    cacheTtlSeconds: 300,
    admission,
    observability,
    logger,
    routes: { [METRICS_PATH]: createMetricsHandler(metrics) },
  });
  const tokens = {
    a: await signer.sign({ tenant: tenants.a, sub: 'alice@example.com' }),
    b: await signer.sign({ tenant: tenants.b, sub: 'bob@example.com' }),
    busy: await signer.sign({ tenant: tenants.busy }),
  };
  return {
    gateway,
    fixture,
    modelServer,
    client,
    metrics,
    observability,
    log: capture,
    tenants,
    tokens,
    async scrape() {
      const response = await fetch(`${gateway.url}${METRICS_PATH}`);
      return {
        status: response.status,
        contentType: response.headers.get('content-type'),
        body: await response.text(),
      };
    },
    async stop() {
      await gateway.stop();
      await Promise.allSettled([client.close(), modelServer.stop(), store.close()]);
      await fixture.cleanup();
    },
  };
}

/** `eventually` with 3 s: the request's observation ends on the response's `close` event,
 * which may run just after the client has its answer. */
export function eventually<T>(check: () => T | Promise<T>, timeoutMs = 3_000): Promise<T> {
  return retryUntil(check, timeoutMs);
}

/** The value of one exact series line (`name{labels}`) in an exposition text. */
export function sample(body: string, series: string): number | undefined {
  for (const line of body.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}
