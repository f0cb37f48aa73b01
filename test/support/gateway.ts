import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { createApp } from '../../src/app.js';
import type { TokenVerifier } from '../../src/auth/verify-token.js';
import type { DataSource } from '../../src/backends/data/types.js';
import { type AtriumConfig, parseConfigFile } from '../../src/config/load.js';
import {
  type configFileSchema,
  type corsSchema,
  type TenantConfig,
  tenantSchema,
} from '../../src/config/schema.js';
import { GatewayError } from '../../src/errors.js';
import type { GatewaySchema } from '../../src/graphql/schema.js';
import { type AdmissionControl, admitAll } from '../../src/limits/admission.js';
import type { PredictionService } from '../../src/sources/inference/prediction-loaders.js';
import type { Gateway, GatewayOptions } from '../../src/server/gateway.js';
import type { PersistedQueries } from '../../src/server/persisted-queries.js';
import type { Observability } from '../../src/server/observability.js';
import type { Store } from '../../src/store/types.js';
import type { Logger } from '../../src/telemetry/logger.js';
import type { TenantRegistry } from '../../src/tenancy/registry.js';
import { demoSchema } from './demo.js';
import { TEST_AUDIENCE, TEST_ISSUER, type TestSigner } from './tokens.js';

export interface TestGatewayOptions {
  signer: TestSigner;
  /** Tenant configs as written in a config file (defaults applied here). */
  tenants: (
    z.input<typeof tenantSchema> | (Partial<TenantConfig> & Pick<TenantConfig, 'id' | 'data'>)
  )[];
  dataSource: DataSource;
  /** The executable schema and bindings; default the demo example's. */
  schema?: GatewaySchema;
  /**
   * Refuse tenants whose catalog misfits the bindings (default true). Suites whose data source
   * has no tables at all (viewer-only gateways) turn it off.
   */
  checkBindings?: boolean;
  /** Default: {@link noPredictions}. */
  predictor?: PredictionService;
  /** Default: the app's own in-process store (which nothing else writes to). */
  predictionCache?: Pick<Store, 'mget' | 'msetWithTtl'>;
  /** `inference.cacheTtlSeconds`; default 0 (nothing is written to the cache). */
  cacheTtlSeconds?: number;
  /** Default: {@link admitAll}. */
  admission?: AdmissionControl;
  baseDomain?: string;
  modelReady?: (backend: string, model: string, version?: string) => Promise<boolean>;
  /** Metrics, request logs and spans; default the app's own (log lines only, no metrics). */
  observability?: Observability;
  /** Extra HTTP routes (e.g. `/metrics`). */
  routes?: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void>;
  /** The gateway's logger; default silent. */
  logger?: Logger;
  /** APQ and trusted documents per tenant; default the app's own with APQ off. */
  persistedQueries?: PersistedQueries;
  /** Deadline of each request's backend calls (as `server.requestDeadlineMs`). */
  requestDeadlineMs?: number;
  /** Deadline of reading a request body (as `server.bodyTimeoutMs`). */
  bodyTimeoutMs?: number;
  /** The token verifier; default the app's, from an `auth` config trusting `signer`'s key only. */
  verifier?: TokenVerifier;
  /** `server.cors` as written in a config file; omitted → its defaults (no global origin). */
  cors?: z.input<typeof corsSchema>;
  /** What executes operations (`server.executor`); default the gateway's default. */
  executor?: GatewayOptions['executor'];
  /** graphql-jit settings, e.g. `compileAfterUses: 1` to compile every operation at once. */
  jit?: GatewayOptions['jit'];
  /** Extra Apollo plugins after the app's own (e.g. a test's probe of pipeline stages). */
  plugins?: GatewayOptions['plugins'];
  /** Top-level `services` as written in a config file (tenant services the SDL's `@http` calls). */
  services?: z.input<typeof configFileSchema>['services'];
  /** Top-level `identity` as written in a config file (the identity signed for services). */
  identity?: z.input<typeof configFileSchema>['identity'];
}

export interface GraphQLAnswer {
  status: number;
  headers: Headers;
  body: {
    data?: Record<string, unknown> | null;
    errors?: {
      message: string;
      path?: (string | number)[];
      extensions?: Record<string, unknown>;
    }[];
  };
}

export interface TestGateway {
  url: string;
  gateway: Gateway;
  registry: TenantRegistry;
  verifier: TokenVerifier;
  /** POSTs a GraphQL request; `token: null` sends no Authorization header. */
  query(
    query: string,
    options?: {
      token?: string | null;
      variables?: Record<string, unknown>;
      path?: string;
      headers?: Record<string, string>;
    },
  ): Promise<GraphQLAnswer>;
  stop(): Promise<void>;
}

/** Fails every prediction: for suites that do not exercise inference. */
export const noPredictions: PredictionService = {
  predict: () =>
    Promise.reject(new GatewayError('BACKEND_UNAVAILABLE', 'No model backend in this test.')),
};

/**
 * The test's config for {@link createApp}: `signer`'s key as the only trusted one, the given
 * tenants, a loopback port, no metrics or playground, APQ off, errors masked as in production.
 */
function testConfig(options: TestGatewayOptions): AtriumConfig {
  const file = parseConfigFile(
    {
      server: {
        host: '127.0.0.1',
        port: 0,
        baseDomain: options.baseDomain,
        drainTimeoutMs: 2_000,
        requestDeadlineMs: options.requestDeadlineMs,
        bodyTimeoutMs: options.bodyTimeoutMs,
        cors: options.cors,
        executor: options.executor,
      },
      auth: {
        issuer: TEST_ISSUER,
        audience: TEST_AUDIENCE,
        algorithms: ['ES256'],
        keys: [{ kid: options.signer.kid, alg: 'ES256', jwk: { ...options.signer.publicJwk } }],
        clockToleranceSeconds: 0,
      },
      telemetry: { metrics: { enabled: false } },
      inference: { cacheTtlSeconds: options.cacheTtlSeconds ?? 0 },
      persistedQueries: { enabled: false },
      services: options.services,
      identity: options.identity,
      tenants: options.tenants.map((t) => tenantSchema.parse({ displayName: t.id, ...t })),
    },
    'the test gateway options',
  );
  return {
    ...file,
    mode: 'production',
    production: true,
    logLevel: 'silent',
    home: '.atrium',
    modelServerPort: 0,
  };
}

/**
 * The real gateway (real verifier, registry, Apollo Server, node:http) on a loopback port,
 * built by `createApp` as `npm start` builds it, with the test's own data source and key.
 */
export async function startTestGateway(options: TestGatewayOptions): Promise<TestGateway> {
  const app = await createApp(testConfig(options), {
    logger: options.logger,
    observability: options.observability,
    verifier: options.verifier,
    dataSource: options.dataSource,
    schema: options.schema ?? demoSchema(),
    checkBindings: options.checkBindings,
    predictor: options.predictor ?? noPredictions,
    modelReady: options.modelReady,
    predictionCache: options.predictionCache,
    admission: options.admission ?? admitAll,
    persistedQueries: options.persistedQueries,
    routes: options.routes,
    jit: options.jit,
    plugins: options.plugins,
  });
  const url = await app.listen();
  const { gateway, registry, verifier } = app;
  return {
    url,
    gateway,
    registry,
    verifier,
    async query(query, { token, variables, path = '/graphql', headers = {} } = {}) {
      const response = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...headers,
        },
        body: JSON.stringify({ query, variables }),
      });
      return {
        status: response.status,
        headers: response.headers,
        body: (await response.json()) as GraphQLAnswer['body'],
      };
    },
    stop: () => app.stop(),
  };
}
