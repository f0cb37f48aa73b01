/**
 * The composition root: the one place that reads the environment (through config/), builds
 * every I/O dependency (pools, Redis, HTTP clients, child processes) and hands them down.
 */
import { loadOrCreateDevKeys, mintDevToken } from './auth/dev-keys.js';
import { createTokenVerifier } from './auth/verify-token.js';
import { createDemoData } from './backends/data/pglite.js';
import { createPostgresDataSource } from './backends/data/postgres.js';
import type { DataSource } from './backends/data/types.js';
import { createOipClient, type OipClient } from './backends/inference/oip-client.js';
import { createPredictor } from './backends/inference/predictor.js';
import cluster from 'node:cluster';
import { onShutdownRequest, startWorkers } from './cluster.js';
import { buildDemoConfig } from './config/demo.js';
import {
  applyEnv,
  type AtriumConfig,
  ConfigError,
  loadConfigFile,
  readEnv,
  resolveHome,
} from './config/load.js';
import { Registry } from 'prom-client';
import { createSchema } from './graphql/schema.js';
import { createSchemaVariants } from './graphql/variants.js';
import { createAdmissionControl } from './limits/admission.js';
import { createConcurrencyLimiter } from './limits/concurrency.js';
import { operationLimitsPlugin } from './limits/operation-limits.js';
import { createRateLimiter } from './limits/rate-limit.js';
import { createAdminRoute } from './server/admin.js';
import { createGateway } from './server/gateway.js';
import { createPersistedQueries } from './server/persisted-queries.js';
import { createPlayground, type Playground } from './server/playground.js';
import { createMemoryStore } from './store/memory-store.js';
import { createRedisClient } from './store/redis-client.js';
import { createRedisStore } from './store/redis-store.js';
import type { Store } from './store/types.js';
import { createLogger, flushLogger, type Logger } from './telemetry/logger.js';
import { createLiveTenantConfig, createTenantConfigAdmin } from './tenancy/live-config.js';
import {
  createClusterMetricsSource,
  shareMetricsWithPrimary,
} from './telemetry/cluster-metrics.js';
import { createGatewayMetrics } from './telemetry/metrics.js';
import {
  createMetricsHandler,
  METRICS_PATH,
  type MetricsServer,
  startMetricsServer,
} from './telemetry/metrics-endpoint.js';
import { createTracing, otlpTracesUrl } from './telemetry/tracing.js';
import { createObservability, type Observability } from './server/observability.js';
import { createTenantRegistry, type TenantRegistry } from './tenancy/registry.js';
// The demo launcher starts the reference model server as a child process; the gateway still
// only talks to it over HTTP.
import { spawnModelServer, type SpawnedModelServer } from '../services/model-server/spawn.js';
// The playground's build lives next to its front-end sources; it loads esbuild only to build.
import { ensurePlaygroundBuilt, PLAYGROUND_DIST_DIR } from '../playground/build.js';

interface Started {
  config: AtriumConfig;
  modelServer?: SpawnedModelServer | undefined;
  devKeys?: Awaited<ReturnType<typeof loadOrCreateDevKeys>> | undefined;
}

async function loadConfiguration(logger: Logger): Promise<Started> {
  const env = readEnv();
  if (env.ATRIUM_CONFIG) return { config: loadConfigFile(env) };
  const devKeys = await loadOrCreateDevKeys(resolveHome(env));
  const probe = applyEnv(
    buildDemoConfig({ publicJwk: {}, kid: '', alg: 'ES256', modelServerUrl: 'http://127.0.0.1' }),
    env,
    'demo',
  );
  logger.info('demo mode: starting the reference model server');
  const modelServer = await spawnModelServer({ port: probe.modelServerPort, host: '127.0.0.1' });
  const file = buildDemoConfig({
    publicJwk: { ...devKeys.publicJwk },
    kid: devKeys.kid,
    alg: devKeys.alg,
    modelServerUrl: modelServer.url,
  });
  return { config: applyEnv(file, env, 'demo'), modelServer, devKeys };
}

/**
 * Metrics (a registry of this gateway's own), the per-request log line and tracing (OTLP when
 * an endpoint is configured, a no-op otherwise), and where /metrics is served.
 */
function createTelemetry(config: AtriumConfig, logger: Logger) {
  const { telemetry } = config;
  const metrics = telemetry.metrics.enabled
    ? createGatewayMetrics({
        registry: new Registry(),
        maxTenantLabels: telemetry.maxTenantLabels,
        maxOperationLabels: telemetry.maxOperationLabels,
      })
    : undefined;
  const tracesUrl = otlpTracesUrl(telemetry.tracing);
  const tracing = createTracing({
    serviceName: telemetry.tracing.serviceName,
    otlpTracesUrl: tracesUrl,
    headers: telemetry.tracing.headers,
    sampleRatio: telemetry.tracing.sampleRatio,
  });
  if (tracesUrl) logger.info({ url: tracesUrl }, 'exporting spans by OTLP/HTTP');
  const observability = createObservability({ logger, metrics, tracing });
  // On the main port unless a metrics port is configured (then the load balancer never sees it).
  const routes: Record<string, ReturnType<typeof createMetricsHandler>> = metrics &&
  telemetry.metrics.port === undefined
    ? { [METRICS_PATH]: createMetricsHandler(metrics) }
    : {};
  // A cluster worker's registry is served by the primary (see startProcesses).
  if (metrics && cluster.isWorker) shareMetricsWithPrimary(metrics.registry);
  const startServer = async (): Promise<MetricsServer | undefined> =>
    metrics && telemetry.metrics.port !== undefined && !cluster.isWorker
      ? startMetricsServer({
          metrics,
          port: telemetry.metrics.port,
          host: telemetry.metrics.host ?? config.server.host,
        })
      : undefined;
  return { observability, tracing, routes, startServer };
}

async function createData(
  config: AtriumConfig,
  logger: Logger,
  observability: Observability,
): Promise<DataSource> {
  const tenants = config.tenants.map((t) => ({ id: t.id, data: t.data }));
  if (config.data.url) {
    return createPostgresDataSource({
      url: config.data.url,
      poolMax: config.data.poolMax,
      tenantShareMax: config.data.tenantShareMax,
      tenantPoolMax: config.data.tenantPoolMax,
      maxTenantPools: config.data.maxTenantPools,
      tenantPoolIdleMs: config.data.tenantPoolIdleMs,
      statementTimeoutMs: config.data.statementTimeoutMs,
      rowRole: config.data.rowRole,
      onConnectionError: (error, purpose) =>
        logger.warn({ err: error.message, purpose }, 'idle PostgreSQL connection failed'),
      onQuery: observability.onQuery('postgres'),
    });
  }
  if (config.mode === 'production') {
    logger.warn('DATABASE_URL is not set: serving embedded PGlite demo data');
  }
  return createDemoData({
    tenants,
    rowRole: config.data.rowRole,
    onQuery: observability.onQuery('pglite'),
  });
}

function createStore(config: AtriumConfig, logger: Logger): Store {
  const { url, cluster, commandTimeoutMs } = config.redis;
  if (!url && !(cluster && cluster.length > 0)) {
    if (config.mode === 'production') {
      logger.warn('no REDIS_URL: limits and caches are per process (one replica only)');
    }
    return createMemoryStore();
  }
  const client = createRedisClient(
    cluster && cluster.length > 0 ? { clusterNodes: cluster } : { url: url ?? '' },
    {
      commandTimeoutMs,
      onError: (error) => logger.warn({ err: error.message }, 'Redis connection error'),
    },
  );
  return createRedisStore({ client, timeoutMs: commandTimeoutMs });
}

/**
 * The GraphiQL playground, built first if its files are missing or stale (a fresh clone that
 * skipped `prepare`); in demo mode with a tenant picker fed by freshly minted dev tokens.
 */
async function createPlaygroundFor(
  config: AtriumConfig,
  registry: TenantRegistry,
  devKeys: Started['devKeys'],
  logger: Logger,
): Promise<Playground> {
  try {
    if ((await ensurePlaygroundBuilt({ onWarning: (m) => logger.warn(m) })) === 'built') {
      logger.info('playground built');
    }
  } catch (error) {
    logger.warn(
      { err: (error as Error).message },
      'the playground could not be built; it answers 503 until `npm run build:playground` runs',
    );
  }
  const keys = config.mode === 'demo' ? devKeys : undefined;
  return createPlayground({
    assetsDir: PLAYGROUND_DIST_DIR,
    devTokens: keys
      ? () =>
          Promise.all(
            registry
              .list()
              .filter((tenant) => tenant.status === 'active')
              .map(async (tenant) => ({
                tenant: tenant.id,
                displayName: tenant.displayName,
                token: await mintDevToken(keys, {
                  tenant: tenant.id,
                  sub: 'playground',
                  scope: 'read write predict',
                }),
              })),
          )
      : undefined,
  });
}

/**
 * With `server.workers` > 1 this process forks the gateway workers and only supervises them
 * (src/cluster.ts). Demo mode stays one process: its memory store and model server are per
 * process.
 */
function startProcesses(logger: Logger): 'primary' | 'gateway' {
  const env = readEnv();
  if (!env.ATRIUM_CONFIG) return 'gateway';
  const { server, telemetry } = loadConfigFile(env);
  const role = startWorkers({
    workers: server.workers,
    logger,
    shutdownTimeoutMs: server.drainTimeoutMs + 5_000,
  });
  if (role === 'primary' && telemetry.metrics.enabled) {
    // Workers share the gateway port, so a scrape there would see one worker's share: the
    // primary serves the sum of all workers' registries on the metrics port instead.
    if (telemetry.metrics.port === undefined) {
      logger.warn('server.workers > 1 without telemetry.metrics.port: /metrics shows one worker');
    } else {
      startMetricsServer({
        metrics: createClusterMetricsSource(),
        port: telemetry.metrics.port,
        host: telemetry.metrics.host ?? server.host,
      }).then(
        (metricsServer) =>
          logger.info({ url: `${metricsServer.url}${METRICS_PATH}` }, 'metrics listening'),
        (error: unknown) => logger.error({ err: error }, 'metrics listener failed'),
      );
    }
  }
  return role;
}

/** The admin endpoint, when an operator tenant is configured (off otherwise). */
function createAdminRoutes(
  config: AtriumConfig,
  deps: Pick<Parameters<typeof createAdminRoute>[0], 'verifier' | 'registry' | 'logger'> & {
    store: Store;
  },
): Record<string, ReturnType<typeof createAdminRoute>> {
  const { tenant, scope } = config.admin;
  if (tenant === undefined) return {};
  if (deps.registry.get(tenant) !== undefined) {
    throw new ConfigError(`admin.tenant: ${tenant} is a served tenant; use an operator-only id`);
  }
  const tenants = createTenantConfigAdmin({
    store: deps.store,
    plans: config.plans,
    reservedIds: [tenant],
  });
  const route = createAdminRoute({
    ...deps,
    tenants,
    documents: deps.store,
    adminTenant: tenant,
    scope,
    bodyLimitBytes: config.server.bodyLimitBytes,
  });
  return { '/admin/*': route };
}

async function main(): Promise<void> {
  const bootLogger = createLogger({ level: readEnv().LOG_LEVEL ?? 'info' });
  if (startProcesses(bootLogger) === 'primary') return;
  const { config, modelServer, devKeys } = await loadConfiguration(bootLogger);
  const logger = createLogger({ level: config.logLevel });
  const telemetry = createTelemetry(config, logger);
  const { observability } = telemetry;

  const registry = createTenantRegistry({ tenants: config.tenants, plans: config.plans });
  const verifier = createTokenVerifier({
    ...config.auth,
    onJwksError: (error) => logger.warn({ err: error.message }, 'JWKS fetch failed'),
  });
  const dataSource = await createData(config, logger, observability);
  const store = createStore(config, logger);
  const onStoreError = (error: unknown, operation: string) => {
    observability.onLimiterStoreError(error, operation);
    logger.warn(
      { err: (error as Error).message, operation },
      'store unavailable; limiter fallback',
    );
  };
  const persistedQueries = createPersistedQueries({
    store,
    enabled: config.persistedQueries.enabled,
    ttlSeconds: config.persistedQueries.ttlSeconds,
    maxDocumentBytes: config.persistedQueries.maxDocumentBytes,
    onStoreError: (error, operation) =>
      logger.warn({ err: (error as Error).message, operation }, 'store unavailable; APQ miss'),
  });
  // Run-time tenant changes from the store (admin CLI/endpoint), on every replica.
  const liveConfig = createLiveTenantConfig({
    store,
    registry,
    baseTenants: config.tenants,
    pollIntervalMs: config.liveConfig.pollIntervalMs,
    log: logger,
  });
  const adminRoutes = createAdminRoutes(config, { verifier, registry, logger, store });
  const admission = createAdmissionControl({
    rateLimiter: createRateLimiter({ store, fallback: config.limits.fallback, onStoreError }),
    concurrency: createConcurrencyLimiter({
      store,
      fallback: config.limits.fallback,
      leaseTtlMs: config.limits.leaseTtlMs,
      onStoreError,
    }),
  });
  const clients = new Map<string, OipClient>(
    Object.entries(config.inference.backends).map(([name, backend]) => [
      name,
      createOipClient({
        baseUrl: backend.url,
        timeoutMs: backend.timeoutMs,
        connections: backend.connections,
        breaker: { onStateChange: observability.onBreakerStateChange(name) },
        // A tenant's own breaker contains that tenant; logged, not a metric (its label would
        // carry the tenant).
        tenantBreaker: {
          onStateChange: (tenant, from, to) =>
            logger[to === 'open' ? 'warn' : 'info'](
              { backend: name, tenant, from, to },
              'tenant circuit breaker state changed',
            ),
        },
      }),
    ]),
  );
  for (const [name, client] of clients) observability.watchBreaker(name, client.breaker);
  const predictor = createPredictor({
    clients: (name) => clients.get(name),
    microBatch: config.inference.microBatch,
    onInfer: observability.onInfer,
  });

  const schema = createSchema();
  const variants = createSchemaVariants(schema);
  const playground = config.server.playground
    ? await createPlaygroundFor(config, registry, devKeys, logger)
    : undefined;

  const metricsServer = await telemetry.startServer();
  if (metricsServer) {
    logger.info({ url: `${metricsServer.url}${METRICS_PATH}` }, 'metrics listening');
  }
  const gateway = createGateway({
    schema,
    schemaFor: variants.schemaFor,
    playground: playground?.page,
    routes: { ...playground?.routes, ...telemetry.routes, ...adminRoutes },
    persistedQueries,
    production: config.production,
    executor: config.server.executor,
    drainTimeoutMs: config.server.drainTimeoutMs,
    requestDeadlineMs: config.server.requestDeadlineMs,
    bodyLimitBytes: config.server.bodyLimitBytes,
    bodyTimeoutMs: config.server.bodyTimeoutMs,
    baseDomain: config.server.baseDomain,
    verifier: observability.traceVerifier(verifier),
    registry,
    admission: observability.instrumentAdmission(admission),
    observer: observability.observer,
    plugins: [observability.plugin, operationLimitsPlugin()],
    onPredictionCacheLookup: observability.onPredictionCacheLookup,
    dataSource,
    predictor,
    predictionCache: store,
    cacheTtlSeconds: config.inference.cacheTtlSeconds,
    modelReady: async (backend, model, version) =>
      (await clients.get(backend)?.modelReady(model, version)) ?? false,
    logger,
    readiness: {
      data: () => dataSource.ping(),
      store: () => store.ping(),
      keys: async () => {
        if (!(await verifier.ready())) throw new Error('no usable signing keys');
      },
      ...Object.fromEntries(
        [...clients].map(([name, client]) => [
          `model-backend:${name}`,
          async () => {
            if (!(await client.serverReady())) throw new Error('not ready');
          },
        ]),
      ),
    },
    onStopped: async () => {
      await liveConfig.stop();
      await Promise.allSettled([
        metricsServer?.close(),
        telemetry.tracing.shutdown(),
        dataSource.close(),
        store.close(),
        ...[...clients.values()].map((c) => c.close()),
        modelServer?.stop(),
      ]);
    },
  });

  await verifier.ready();
  await liveConfig.start();
  const url = await gateway.listen(config.server.port, config.server.host);
  logger.info({ url, mode: config.mode, tenants: registry.list().length }, 'Atrium is listening');

  if (config.mode === 'demo' && devKeys) {
    const lines = [
      '',
      `  Atrium demo — GraphQL at ${url}/graphql  (health ${url}/healthz, readiness ${url}/readyz)`,
      `  Model server: ${modelServer?.url ?? 'n/a'}`,
      `  Playground: ${url}/playground (or open ${url}/graphql in a browser)`,
      '  Dev tokens (1 h; mint more with `npm run token -- --tenant acme`):',
    ];
    for (const tenant of registry.list()) {
      const token = await mintDevToken(devKeys, {
        tenant: tenant.id,
        sub: 'demo-user',
        scope: 'read write predict',
      });
      lines.push(`    ${tenant.id} (${tenant.data.strategy} isolation):`, `      ${token}`);
    }
    lines.push(
      '',
      `  curl -s ${url}/graphql -H "authorization: Bearer <token>" -H 'content-type: application/json' \\`,
      `    -d '{"query":"{ viewer { tenant { id } } customers(first: 3) { edges { node { id name churnRisk { score label } } } } }"}'`,
      '',
    );
    console.log(lines.join('\n'));
  }

  let signals = 0;
  const shutdown = (signal: string) => {
    signals += 1;
    // `npm start` (tsx) relays a terminal's Ctrl-C, so one press can arrive twice: a repeat
    // keeps draining; a third signal means the operator insists.
    if (signals > 2) process.exit(1);
    if (signals > 1) return;
    logger.info({ signal }, 'draining');
    gateway.stop().then(
      () => flushLogger(logger).then(() => process.exit(0)),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        void flushLogger(logger).then(() => process.exit(1));
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // A cluster worker drains when the primary asks (it may have had the signal itself already).
  onShutdownRequest(() => {
    if (signals === 0) shutdown('primary');
  });
  process.on('unhandledRejection', (reason) =>
    logger.error({ err: reason }, 'unhandled rejection'),
  );
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message);
  else console.error('Atrium failed to start:', error);
  process.exit(1);
});
