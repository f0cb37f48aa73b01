/**
 * The composition root (DESIGN.md): from a parsed config it builds every I/O dependency of one
 * gateway process — telemetry, the tenant registry, the token verifier, the data source, the
 * store, persisted queries, live tenant config, admin routes, admission control, the OIP
 * clients and the predictor, the schema and its variants, the playground — and hands them to
 * the gateway, with readiness probes and an ordered shutdown. `src/main.ts` and the tests
 * (test/support/gateway.ts) both build their gateway here.
 *
 * A caller may inject dependencies it built itself (see {@link AppOptions}); those stay the
 * caller's: the app neither starts nor closes them. What the app built, it closes on stop.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Registry } from 'prom-client';
import { type DevKeys, mintDevToken } from './auth/dev-keys.js';
import { createTokenVerifier, type TokenVerifier } from './auth/verify-token.js';
import { createEmbeddedData } from './backends/data/pglite.js';
import { createPostgresDataSource } from './backends/data/postgres.js';
import type { SqlDataSource } from './backends/data/tenant-data-source.js';
import type { DataSource, QueryEvent } from './backends/data/types.js';
import { createOipClient, type OipClient } from './backends/inference/oip-client.js';
import { createPredictor } from './backends/inference/predictor.js';
import { type AtriumConfig, ConfigError } from './config/load.js';
import { type GatewaySchema, loadGatewaySchema } from './graphql/schema.js';
import { createIdentitySigner, type IdentitySigner } from './auth/identity.js';
import { createServiceClients } from './backends/http/service-clients.js';
import type { SecretRef } from './config/schema.js';
import { readSecret } from './config/secrets.js';
import { createConcurrencyGates } from './sources/http/gates.js';
import { createTenantChecks } from './sources/sql/tenant-checks.js';
import { GatewayError } from './errors.js';
import { createSchemaVariants } from './graphql/variants.js';
import { createTenantRealms } from './graphql/realm.js';
import { type AdmissionControl, createAdmissionControl } from './limits/admission.js';
import { createConcurrencyLimiter } from './limits/concurrency.js';
import { operationLimitsPlugin } from './server/operation-limits.js';
import { createRateLimiter } from './limits/rate-limit.js';
import type {
  PredictionLoadersOptions,
  PredictionService,
} from './sources/inference/prediction-loaders.js';
import { createAdminRoute } from './server/admin.js';
import { createCorsPolicy } from './server/cors.js';
import { createGateway, type Gateway, type GatewayOptions } from './server/gateway.js';
import { isLoopbackRequest } from './server/loopback.js';
import type { Probe } from './server/http-handler.js';
import { createObservability, type Observability } from './server/observability.js';
import { createPersistedQueries, type PersistedQueries } from './server/persisted-queries.js';
import { createPlayground, type Playground } from './server/playground.js';
import { createMemoryStore } from './store/memory-store.js';
import { createRedisClient } from './store/redis-client.js';
import { createRedisStore } from './store/redis-store.js';
import {
  type ControlStore,
  createControlPool,
  createPostgresControlStore,
} from './store/control-store.js';
import type { Store } from './store/types.js';
import { shareMetricsWithPrimary } from './telemetry/cluster-metrics.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import { createGatewayMetrics } from './telemetry/metrics.js';
import {
  createMetricsHandler,
  METRICS_PATH,
  type MetricsServer,
  startMetricsServer,
} from './telemetry/metrics-endpoint.js';
import { createTracing, otlpTracesUrl, type Tracing } from './telemetry/tracing.js';
import { createLiveTenantConfig } from './tenancy/live-config.js';
import { adminRulesFromConfig, createTenantConfigAdmin } from './tenancy/tenant-admin.js';
import { createTenantRegistry, type TenantRegistry } from './tenancy/registry.js';
// The playground's build lives next to its front-end sources; it loads esbuild only to build.
import { ensurePlaygroundBuilt, PLAYGROUND_DIST_DIR } from '../playground/build.js';

/** An HTTP route the gateway answers before GraphQL routing. */
export type AppRoute = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

/**
 * Dependencies a caller built itself, used instead of the ones `config` describes. Each is
 * typed as the interface its module takes; an injected one is the caller's to start and close.
 */
export interface AppOptions {
  /** The gateway's logger; default one at `config.logLevel` on stdout. */
  logger?: Logger | undefined;
  /**
   * Metrics, request log lines and spans; default built from `config.telemetry` (then the
   * app also serves `/metrics`). An injected one's metrics are the caller's to serve.
   */
  observability?: Observability | undefined;
  /** Default: built from `config.auth` (and warmed at listen). */
  verifier?: TokenVerifier | undefined;
  /** Default: PostgreSQL at `config.data.url`, else embedded PGlite, migrated and seeded. */
  dataSource?: DataSource | undefined;
  /** The executable schema and its bindings; default loaded from `config.schema`. */
  schema?: GatewaySchema | undefined;
  /**
   * Refuse tenants whose catalog does not fit the bindings (default: `data.bindingCheck`). Off,
   * catalogs are still read (for key types and `tenant_id`) but a misfit tenant is served.
   */
  checkBindings?: boolean | undefined;
  /** Default: Redis (single node or Cluster) from `config.redis`, else the in-process store. */
  store?: Store | undefined;
  /** Default: the micro-batching predictor over one OIP client per `config.inference` backend. */
  predictor?: PredictionService | undefined;
  /** Whether a model is ready (the `modelReady` field); default asks the OIP clients. */
  modelReady?: ((backend: string, model: string, version?: string) => Promise<boolean>) | undefined;
  /** Where predictions are cached; default the store. */
  predictionCache?: PredictionLoadersOptions['cache'];
  /** Default: rate and concurrency limits in the store, per `config.limits`. */
  admission?: AdmissionControl | undefined;
  /** Default: APQ and trusted documents in the store, per `config.persistedQueries`. */
  persistedQueries?: PersistedQueries | undefined;
  /** Extra HTTP routes; they win over the app's own (playground, metrics, admin). */
  routes?: Readonly<Record<string, AppRoute>> | undefined;
  /** Extra Apollo plugins, after the app's own (observability, operation limits). */
  plugins?: GatewayOptions['plugins'];
  /** graphql-jit's settings, when `server.executor` is `graphql-jit` (see src/graphql/jit.ts). */
  jit?: GatewayOptions['jit'];
  /** The dev key pair: in demo mode the playground offers a token per tenant signed with it. */
  devKeys?: DevKeys | undefined;
  /**
   * This process is a `node:cluster` worker (src/cluster.ts): its metrics registry is sent to
   * the primary, which serves the sum on the metrics port, so the worker opens no port of its own.
   */
  worker?: boolean | undefined;
}

/** One gateway process, built and ready to listen. */
export interface App {
  readonly config: AtriumConfig;
  readonly logger: Logger;
  readonly gateway: Gateway;
  readonly registry: TenantRegistry;
  readonly store: Store;
  readonly dataSource: DataSource;
  readonly verifier: TokenVerifier;
  /** The gateway's base URL once {@link App.listen} has resolved. */
  readonly url: string | undefined;
  /**
   * Starts the metrics port (if configured), warms the verifier's keys, applies the live tenant
   * config, then listens on `config.server.port` and `host`. Resolves to the base URL.
   */
  listen(): Promise<string>;
  /** Drains the gateway, then closes everything the app built (the gateway's `onStopped`). */
  stop(): Promise<void>;
}

interface Telemetry {
  observability: Observability;
  /** `/metrics` on the main port, when served there. */
  routes: Record<string, AppRoute>;
  /** Undefined when the observability was injected. */
  tracing: Tracing | undefined;
  startServer(): Promise<MetricsServer | undefined>;
}

/**
 * Metrics (a registry of this gateway's own), the per-request log line and tracing (OTLP when
 * an endpoint is configured, a no-op otherwise), and where /metrics is served.
 */
function createTelemetry(config: AtriumConfig, logger: Logger, worker: boolean): Telemetry {
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
  // The scrape names tenants and operations: on the main port only when configured so.
  const { onMainPort } = telemetry.metrics;
  const routes: Record<string, AppRoute> =
    metrics && onMainPort !== 'off'
      ? {
          [METRICS_PATH]: createMetricsHandler(metrics, {
            allow: onMainPort === 'loopback' ? isLoopbackRequest : undefined,
          }),
        }
      : {};
  if (metrics && onMainPort === 'off' && telemetry.metrics.port === undefined) {
    logger.warn(
      'metrics are collected but not served: set telemetry.metrics.port (or metrics.onMainPort)',
    );
  }
  // A cluster worker's registry is served by the primary (src/cluster.ts).
  if (metrics && worker) shareMetricsWithPrimary(metrics.registry);
  const startServer = async (): Promise<MetricsServer | undefined> =>
    metrics && telemetry.metrics.port !== undefined && !worker
      ? startMetricsServer({
          metrics,
          port: telemetry.metrics.port,
          host: telemetry.metrics.host ?? config.server.host,
        })
      : undefined;
  return { observability, tracing, routes, startServer };
}

/**
 * The data source `config.data` describes: PostgreSQL at `data.url`, else embedded PGlite
 * with every tenant migrated (and seeded). The gateway's, and `npm run check`'s.
 */
export async function createConfiguredData(
  config: AtriumConfig,
  logger: Logger,
  onQuery?: (event: QueryEvent) => void,
): Promise<SqlDataSource> {
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
      onQuery,
    });
  }
  if (config.mode === 'production') {
    logger.warn('DATABASE_URL is not set: serving embedded PGlite demo data');
  }
  return createEmbeddedData({
    tenants: config.tenants.map((t) => ({ id: t.id, data: t.data })),
    migrations: config.data.migrations,
    seed: config.data.seed,
    rowRole: config.data.rowRole,
    onQuery,
  });
}

/** Where services (and anyone) find the keys of the identity the gateway signs. */
export const JWKS_PATH = '/.well-known/jwks.json';

function jwksRoute(signer: IdentitySigner | undefined): AppRoute {
  const body = JSON.stringify(signer ? signer.jwks() : { keys: [] });
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    res
      .writeHead(200, {
        'content-type': 'application/json',
        'cache-control': 'public, max-age=300',
      })
      .end(req.method === 'HEAD' ? undefined : body);
  };
}

/**
 * Tenant services: one client per (service, origin), the identity signer, secrets read once
 * each, and the per-tenant gates.
 */
async function createServices(config: AtriumConfig, schema: GatewaySchema, logger: Logger) {
  // A field whose service is not configured answers its coded error (FORBIDDEN, "not
  // configured for this tenant"); the rest of the schema is served.
  for (const binding of schema.bindings.fields) {
    if (binding.kind === 'http' && !Object.hasOwn(config.services, binding.service)) {
      logger.warn(
        { field: `${binding.parent}.${binding.field}`, service: binding.service },
        'a field calls a service that `services` does not configure',
      );
    }
  }
  const signs =
    Object.values(config.services).some((s) => s.identity === 'signed') ||
    config.tenants.some((t) => t.realm?.identity === 'signed');
  if (signs && !config.identity.signingKey && config.mode === 'production') {
    logger.warn(
      'identity.signingKey is not set: signing service identity with a key of this process only',
    );
  }
  const signer =
    signs || config.identity.signingKey
      ? await createIdentitySigner({
          issuer: config.identity.issuer,
          ttlSeconds: config.identity.ttlSeconds,
          privateKey: config.identity.signingKey && readSecret(config.identity.signingKey),
        })
      : undefined;
  const secrets = new Map<string, string>();
  return {
    clients: createServiceClients({ services: config.services }),
    config: config.services,
    signer,
    gates: createConcurrencyGates(),
    secret(ref: SecretRef): string {
      const key = JSON.stringify(ref);
      let value = secrets.get(key);
      if (value === undefined) {
        try {
          value = readSecret(ref);
        } catch (error) {
          logger.error({ err: (error as Error).message }, 'a service credential cannot be read');
          throw new GatewayError('BACKEND_UNAVAILABLE', 'A service credential is not available.');
        }
        secrets.set(key, value);
      }
      return value;
    },
  };
}

/** Every tenant checked before traffic, a few at a time (each may read a catalog). */
async function checkAll<T>(tenants: readonly T[], check: (tenant: T) => Promise<unknown>) {
  const queue = [...tenants];
  const worker = async () => {
    for (let tenant = queue.shift(); tenant !== undefined; tenant = queue.shift()) {
      // A misfit is logged and refused on its own; an unreachable database is checked again on
      // first use.
      await check(tenant).catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, queue.length) }, worker));
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
  devKeys: DevKeys | undefined,
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
  // Dev tokens sign anything for any tenant: demo mode only, never under NODE_ENV=production,
  // and only to clients on this host (the route checks; see server/playground.ts).
  const keys = config.mode === 'demo' && !config.production ? devKeys : undefined;
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
 * The durable copy of operator decisions, in the shared database, with a small pool of its
 * own; none without a database (then run-time tenant config is as durable as the store:
 * README, Live tenant config).
 */
function createControl(
  config: AtriumConfig,
  logger: Logger,
): { store: ControlStore; pool: ReturnType<typeof createControlPool> } | undefined {
  if (!config.data.url) {
    if (config.mode === 'production') {
      logger.warn(
        'no DATABASE_URL: suspensions, deletions and trusted documents live only in the store; run Redis with appendonly',
      );
    }
    return undefined;
  }
  const pool = createControlPool({
    url: config.data.url,
    onError: (error) => logger.warn({ err: error.message }, 'control connection failed'),
  });
  return {
    pool,
    store: createPostgresControlStore({ pool, schema: config.liveConfig.controlSchema }),
  };
}

/** The admin endpoint, when an operator tenant is configured (off otherwise). */
function createAdminRoutes(
  config: AtriumConfig,
  deps: Pick<Parameters<typeof createAdminRoute>[0], 'verifier' | 'registry' | 'logger'> & {
    store: Store;
    control: ControlStore | undefined;
  },
): Record<string, AppRoute> {
  const { tenant, scope } = config.admin;
  if (tenant === undefined) return {};
  if (deps.registry.get(tenant) !== undefined) {
    throw new ConfigError(`admin.tenant: ${tenant} is a served tenant; use an operator-only id`);
  }
  const tenants = createTenantConfigAdmin({
    ...adminRulesFromConfig(config),
    store: deps.store,
    control: deps.control,
  });
  const route = createAdminRoute({
    ...deps,
    tenants,
    adminTenant: tenant,
    scope,
    bodyLimitBytes: config.server.bodyLimitBytes,
  });
  return { '/admin/*': route };
}

/** One OIP v2 client per configured inference backend, each with its breaker observed. */
function createOipClients(
  config: AtriumConfig,
  observability: Observability,
  logger: Logger,
): Map<string, OipClient> {
  const clients = new Map<string, OipClient>(
    Object.entries(config.inference.backends).map(([name, backend]) => [
      name,
      createOipClient({
        baseUrl: backend.url,
        timeoutMs: backend.timeoutMs,
        connections: backend.connections,
        binaryTensors: backend.binaryTensors,
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
  return clients;
}

/** Builds one gateway process from `config`; see the module comment and {@link AppOptions}. */
export async function createApp(config: AtriumConfig, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  // What the app built and must close on stop (or now, if building fails half way).
  const closers: (() => Promise<unknown> | undefined)[] = [];
  const closeBuilt = () => Promise.allSettled(closers.map((close) => close()));
  try {
    const telemetry: Telemetry = options.observability
      ? {
          observability: options.observability,
          routes: {},
          tracing: undefined,
          startServer: () => Promise.resolve(undefined),
        }
      : createTelemetry(config, logger, options.worker ?? false);
    const { observability, tracing } = telemetry;
    if (tracing) closers.push(() => tracing.shutdown());

    // Unconfirmed until the live config has read the run-time state (suspensions, deletions).
    const registry = createTenantRegistry({
      tenants: config.tenants,
      plans: config.plans,
      confirmed: false,
    });
    const { auth } = config;
    const verifier =
      options.verifier ??
      (auth
        ? createTokenVerifier({
            ...auth,
            onJwksError: (error) => logger.warn({ err: error.message }, 'JWKS fetch failed'),
          })
        : undefined);
    if (!verifier) {
      throw new ConfigError('auth is required to verify tokens (demo mode brings its own)');
    }
    // The operator's SDL first: a schema that cannot be honoured fails the start, naming where.
    const gatewaySchema = options.schema ?? (await loadGatewaySchema(config.schema));
    const dataSource =
      options.dataSource ??
      (await createConfiguredData(
        config,
        logger,
        observability.onQuery(config.data.url ? 'postgres' : 'pglite'),
      ));
    if (!options.dataSource) closers.push(() => dataSource.close());
    const store = options.store ?? createStore(config, logger);
    if (!options.store) closers.push(() => store.close());
    const onStoreError = (error: unknown, operation: string) => {
      observability.onLimiterStoreError(error, operation);
      logger.warn(
        { err: (error as Error).message, operation },
        'store unavailable; limiter fallback',
      );
    };
    const persistedQueries =
      options.persistedQueries ??
      createPersistedQueries({
        store,
        enabled: config.persistedQueries.enabled,
        ttlSeconds: config.persistedQueries.ttlSeconds,
        maxDocumentBytes: config.persistedQueries.maxDocumentBytes,
        onStoreError: (error, operation) =>
          logger.warn({ err: (error as Error).message, operation }, 'store unavailable; APQ miss'),
      });
    const control = createControl(config, logger);
    if (control) closers.push(() => control.pool.end());
    // Run-time tenant changes from the store (admin CLI/endpoint), on every replica.
    const liveConfig = createLiveTenantConfig({
      store,
      control: control?.store,
      registry,
      baseTenants: config.tenants,
      reservedSchemas: [config.liveConfig.controlSchema],
      pollIntervalMs: config.liveConfig.pollIntervalMs,
      log: logger,
    });
    closers.push(async () => realms.close());
    const adminRoutes = createAdminRoutes(config, {
      verifier,
      registry,
      logger,
      store,
      control: control?.store,
    });
    const admission =
      options.admission ??
      createAdmissionControl({
        rateLimiter: createRateLimiter({ store, fallback: config.limits.fallback, onStoreError }),
        concurrency: createConcurrencyLimiter({
          store,
          fallback: config.limits.fallback,
          leaseTtlMs: config.limits.leaseTtlMs,
          onStoreError,
        }),
      });
    const clients = createOipClients(config, observability, logger);
    for (const client of clients.values()) closers.push(() => client.close());
    const services = await createServices(config, gatewaySchema, logger);
    closers.push(() => services.clients.close());
    const predictor =
      options.predictor ??
      createPredictor({
        clients: (name) => clients.get(name),
        microBatch: config.inference.microBatch,
        onInfer: observability.onInfer,
      });

    const { schema, bindings } = gatewaySchema;
    const variants = createSchemaVariants(schema);
    // Realm tenants get their variant stitched with their own GraphQL service.
    const realms = createTenantRealms({
      variantFor: variants.schemaFor,
      signer: services.signer,
      log: logger,
    });
    const tenantChecks = createTenantChecks({
      dataSource,
      bindings,
      enforce: options.checkBindings ?? config.data.bindingCheck === 'refuse',
      log: logger,
    });
    const playground = config.server.playground
      ? await createPlaygroundFor(config, registry, options.devKeys, logger)
      : undefined;

    let metricsServer: MetricsServer | undefined;
    let url: string | undefined;
    const gateway = createGateway({
      schema,
      schemaFor: realms.schemaFor,
      playground: playground?.page,
      routes: {
        ...playground?.routes,
        ...telemetry.routes,
        ...adminRoutes,
        [JWKS_PATH]: jwksRoute(services.signer),
        ...options.routes,
      },
      persistedQueries,
      cors: createCorsPolicy({ ...config.server.cors, tenants: registry }),
      production: config.production,
      executor: config.server.executor,
      jit: options.jit,
      drainTimeoutMs: config.server.drainTimeoutMs,
      requestDeadlineMs: config.server.requestDeadlineMs,
      bodyLimitBytes: config.server.bodyLimitBytes,
      bodyTimeoutMs: config.server.bodyTimeoutMs,
      baseDomain: config.server.baseDomain,
      verifier: observability.traceVerifier(verifier),
      registry,
      admission: observability.instrumentAdmission(admission),
      observer: observability.observer,
      plugins: [observability.plugin, operationLimitsPlugin(), ...(options.plugins ?? [])],
      onPredictionCacheLookup: observability.onPredictionCacheLookup,
      dataSource,
      bindings,
      tenantChecks,
      predictor,
      predictionCache: options.predictionCache ?? store,
      cacheTtlSeconds: config.inference.cacheTtlSeconds,
      modelReady:
        options.modelReady ??
        (async (backend, model, version) =>
          (await clients.get(backend)?.modelReady(model, version)) ?? false),
      logger,
      services,
      readiness: {
        ...Object.fromEntries(
          Object.entries(config.services)
            .filter(([, service]) => service.url && service.healthPath)
            .map(([name]): [string, Probe] => [
              `service:${name}`,
              () => services.clients.probe(name),
            ]),
        ),
        // Realms of the configured tenants, asked now for the tenant as it is now (a realm
        // removed at run time is no longer waited for).
        ...Object.fromEntries(
          config.tenants
            .filter((tenant) => tenant.realm)
            .map(({ id }): [string, Probe] => [
              `realm:${id}`,
              () => realms.probe(registry.get(id)),
            ]),
        ),
        data: () => dataSource.ping(),
        store: () => store.ping(),
        'tenant-config': async () => {
          if (liveConfig.state() === 'unconfirmed') throw new Error('run-time state not read yet');
        },
        keys: async () => {
          if (!(await verifier.ready())) throw new Error('no usable signing keys');
        },
        ...Object.fromEntries(
          [...clients].map(([name, client]): [string, Probe] => [
            `model-backend:${name}`,
            async () => {
              if (!(await client.serverReady())) throw new Error('not ready');
            },
          ]),
        ),
      },
      // The ordered shutdown: the live config first (it writes to the registry), then
      // everything else the app built, together.
      onStopped: async () => {
        await liveConfig.stop();
        await Promise.allSettled([metricsServer?.close(), closeBuilt()]);
      },
    });

    return {
      config,
      logger,
      gateway,
      registry,
      store,
      dataSource,
      verifier,
      get url() {
        return url;
      },
      async listen() {
        metricsServer = await telemetry.startServer();
        if (metricsServer) {
          logger.info({ url: `${metricsServer.url}${METRICS_PATH}` }, 'metrics listening');
        }
        if (!options.verifier) await verifier.ready();
        await liveConfig.start();
        // Every tenant's catalog against the bindings before traffic; a misfit is logged and
        // refused on its own, an unreachable database checked again on first use.
        await checkAll(registry.list(), (tenant) => tenantChecks.check(tenant));
        url = await gateway.listen(config.server.port, config.server.host);
        // After listening: a realm may verify this gateway's JWKS. Never rejects; a realm not
        // reached is tried again on its tenant's requests.
        void realms.warm(registry.list());
        logger.info(
          { url, mode: config.mode, tenants: registry.list().length },
          'Atrium is listening',
        );
        return url;
      },
      stop: () => gateway.stop(),
    };
  } catch (error) {
    await closeBuilt();
    throw error;
  }
}
