import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/verify-token.js';
import type { DataSource } from '../../src/backends/data/types.js';
import { DEFAULT_PLANS, type TenantConfig, tenantSchema } from '../../src/config/schema.js';
import { GatewayError } from '../../src/errors.js';
import { createSchema } from '../../src/graphql/schema.js';
import { createSchemaVariants } from '../../src/graphql/variants.js';
import { type AdmissionControl, admitAll } from '../../src/limits/admission.js';
import {
  operationLimitsPlugin,
  type OperationLimitsOptions,
} from '../../src/limits/operation-limits.js';
import type { PredictionService } from '../../src/loaders/prediction-loaders.js';
import { createGateway, type Gateway } from '../../src/server/gateway.js';
import type { Probe } from '../../src/server/http-handler.js';
import type { PersistedQueries } from '../../src/server/persisted-queries.js';
import type { Observability } from '../../src/server/observability.js';
import type { Store } from '../../src/store/types.js';
import { createLogger, type Logger } from '../../src/telemetry/logger.js';
import { createTenantRegistry, type TenantRegistry } from '../../src/tenancy/registry.js';
import { TEST_AUDIENCE, TEST_ISSUER, type TestSigner } from './tokens.js';

export interface TestGatewayOptions {
  signer: TestSigner;
  /** Tenant configs as written in a config file (defaults applied here). */
  tenants: (
    z.input<typeof tenantSchema> | (Partial<TenantConfig> & Pick<TenantConfig, 'id' | 'data'>)
  )[];
  dataSource: DataSource;
  predictor?: PredictionService;
  predictionCache?: Pick<Store, 'mget' | 'msetWithTtl'>;
  cacheTtlSeconds?: number;
  admission?: AdmissionControl;
  baseDomain?: string;
  readiness?: Record<string, Probe>;
  modelReady?: (backend: string, model: string, version?: string) => Promise<boolean>;
  /** Metrics, request logs and spans, wired as src/main.ts wires them. */
  observability?: Observability;
  /** Extra HTTP routes (e.g. `/metrics`). */
  routes?: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void>;
  /** The gateway's logger; default silent. */
  logger?: Logger;
  /** APQ and trusted documents per tenant (as in src/main.ts); omitted → off. */
  persistedQueries?: PersistedQueries;
  /** Per-tenant schema variants from `@feature` (as in src/main.ts). Default true. */
  variants?: boolean;
  /** Deadline of each request's backend calls (as `server.requestDeadlineMs`). */
  requestDeadlineMs?: number;
  /** Deadline of reading a request body (as `server.bodyTimeoutMs`). */
  bodyTimeoutMs?: number;
  /** The token verifier; default an ES256 verifier that trusts `signer`'s key only. */
  verifier?: TokenVerifier;
  /** The plan operation limits plugin (as in src/main.ts); `false` turns it off. Default on. */
  operationLimits?: OperationLimitsOptions | false;
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
 * The real gateway (real verifier, registry, Apollo Server, node:http) on a loopback port, with
 * the test's own data source and key. The composition mirrors src/main.ts.
 */
export async function startTestGateway(options: TestGatewayOptions): Promise<TestGateway> {
  const verifier =
    options.verifier ??
    createTokenVerifier({
      issuer: TEST_ISSUER,
      audience: TEST_AUDIENCE,
      algorithms: ['ES256'],
      keys: [
        {
          kid: options.signer.kid,
          alg: 'ES256',
          jwk: options.signer.publicJwk as Record<string, unknown>,
        },
      ],
      clockToleranceSeconds: 0,
    });
  const registry = createTenantRegistry({
    tenants: options.tenants.map((t) => tenantSchema.parse({ displayName: t.id, ...t })),
    plans: DEFAULT_PLANS,
  });
  const schema = createSchema();
  const { observability } = options;
  const gateway = createGateway({
    schema,
    schemaFor: options.variants === false ? undefined : createSchemaVariants(schema).schemaFor,
    production: true,
    drainTimeoutMs: 2_000,
    requestDeadlineMs: options.requestDeadlineMs,
    bodyTimeoutMs: options.bodyTimeoutMs,
    verifier: observability ? observability.traceVerifier(verifier) : verifier,
    registry,
    admission: observability
      ? observability.instrumentAdmission(options.admission ?? admitAll)
      : (options.admission ?? admitAll),
    observer: observability?.observer,
    plugins: [
      ...(observability ? [observability.plugin] : []),
      ...(options.operationLimits === false
        ? []
        : [operationLimitsPlugin(options.operationLimits)]),
    ],
    onPredictionCacheLookup: observability?.onPredictionCacheLookup,
    routes: options.routes,
    dataSource: options.dataSource,
    predictor: options.predictor ?? noPredictions,
    predictionCache: options.predictionCache,
    cacheTtlSeconds: options.cacheTtlSeconds ?? 0,
    persistedQueries: options.persistedQueries,
    modelReady: options.modelReady ?? (() => Promise.resolve(false)),
    logger: options.logger ?? createLogger({ level: 'silent' }),
    bodyLimitBytes: 1024 * 1024,
    baseDomain: options.baseDomain,
    readiness: options.readiness ?? {},
  });
  const url = await gateway.listen(0, '127.0.0.1');
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
    stop: () => gateway.stop(),
  };
}
