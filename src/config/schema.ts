import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DEFAULT_CONTROL_SCHEMA, findIsolationConflicts } from './isolation-targets.js';

/** Tenant ids are DNS labels: they appear in subdomains, paths, schema names and Redis keys. */
export const TENANT_ID_PATTERN = /^[a-z][a-z0-9-]{0,61}[a-z0-9]$/;

export const DEFAULT_PORT = 4000;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
/** A request body must have arrived in full within this (then 408 BODY_TIMEOUT). */
export const DEFAULT_BODY_TIMEOUT_MS = 5_000;
/** Every backend call of one request must answer within this (then BACKEND_TIMEOUT fields). */
export const DEFAULT_REQUEST_DEADLINE_MS = 10_000;
/**
 * graphql-jit, on the subset it answers exactly as graphql-js and compiles cheaply (an
 * operation's second use, ≤ DEFAULT_JIT_MAX_COMPILE_FIELDS expanded fields, no introspection or
 * directives, within a compile budget of 5% of the event loop); graphql-js answers everything
 * else. Compiled execution is what the aggregation queries' CPU goes to (BENCHMARKS.md,
 * scenarios 5 and 10); `graphql-js` is for plugins that need `willResolveField` hooks
 * (src/graphql/jit.ts, README).
 */
export const DEFAULT_EXECUTOR: 'graphql-js' | 'graphql-jit' = 'graphql-jit';
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30;
export const DEFAULT_TENANT_CLAIMS = ['tenant', 'https://atrium.dev/tenant'] as const;
export const DEFAULT_JWKS_TIMEOUT_MS = 5_000;
export const DEFAULT_JWKS_COOLDOWN_MS = 30_000;
export const DEFAULT_JWKS_MAX_AGE_MS = 10 * 60_000;
export const DEFAULT_JWKS_MAX_STALE_MS = 60 * 60_000;
export const DEFAULT_TOKEN_CACHE_MAX = 10_000;
export const DEFAULT_POOL_MAX = 10;
export const DEFAULT_TENANT_POOL_MAX = 2;
export const DEFAULT_MAX_TENANT_POOLS = 50;
export const DEFAULT_TENANT_POOL_IDLE_MS = 60_000;
export const DEFAULT_STATEMENT_TIMEOUT_MS = 5_000;
export const DEFAULT_ROW_ROLE = 'atrium_tenant';
/** The demo example: what a config that names no schema or migrations serves. */
export const DEMO_EXAMPLE_DIR = fileURLToPath(new URL('../../examples/demo/', import.meta.url));
export const DEFAULT_SCHEMA_FILES = `${DEMO_EXAMPLE_DIR}schema/*.graphql`;
export const DEFAULT_MIGRATIONS_DIR = `${DEMO_EXAMPLE_DIR}migrations`;
export const DEFAULT_SEED_MODULE = `${DEMO_EXAMPLE_DIR}seed.ts`;
/** What the demo banner suggests when the example names no query of its own. */
export const DEFAULT_EXAMPLE_QUERY = '{ viewer { subject tenant { id plan } } }';
/** Largest `first` of a list field unless the plan says otherwise (`limits.maxPageSize`). */
export const DEFAULT_MAX_PAGE_SIZE = 200;
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 250;
export const DEFAULT_INFER_TIMEOUT_MS = 2_000;
export const DEFAULT_MICRO_BATCH_WINDOW_MS = 2;
/** Rows per infer call: a page of 200 parents with 5 children each (1,000 rows) is one call. */
export const DEFAULT_MICRO_BATCH_MAX_SIZE = 1024;
export const DEFAULT_MICRO_BATCH_MAX_IN_FLIGHT = 1;
export const DEFAULT_PREDICTION_CACHE_TTL_SECONDS = 300;
export const DEFAULT_PERSISTED_QUERY_TTL_SECONDS = 24 * 60 * 60;
/** A larger document is not registered as a persisted query (OPERATION_LIMIT). */
export const DEFAULT_PERSISTED_QUERY_MAX_DOCUMENT_BYTES = 64 * 1024;
/** A plan's bound on a tenant's registered persisted queries, unless the plan sets its own. */
export const DEFAULT_PERSISTED_QUERY_QUOTA = { maxDocuments: 1_000, maxBytes: 4 * 1024 * 1024 };
export const DEFAULT_LIVE_CONFIG_POLL_MS = 2_000;
export const DEFAULT_ADMIN_SCOPE = 'atrium:admin';
/** How long a browser may cache a preflight answer (Chromium caps it at 2 h, Firefox at 24 h). */
export const DEFAULT_CORS_MAX_AGE_SECONDS = 600;
/** Request headers a cross-origin front-end may send: what GraphQL clients and tracing send. */
export const DEFAULT_CORS_ALLOWED_HEADERS = [
  'authorization',
  'content-type',
  'accept',
  'x-request-id',
  'traceparent',
  'tracestate',
  'apollo-require-preflight',
  'x-apollo-operation-name',
  'apollographql-client-name',
  'apollographql-client-version',
] as const;
/** Response headers a cross-origin front-end may read (limits, retry hints, the request id). */
export const DEFAULT_CORS_EXPOSED_HEADERS = [
  'RateLimit',
  'RateLimit-Policy',
  'Retry-After',
  'x-request-id',
] as const;
export const DEFAULT_METRICS_ON_MAIN_PORT = 'off';

const tenantId = z.string().regex(TENANT_ID_PATTERN, 'a lowercase DNS label such as "acme"');

/**
 * An allowed browser origin as browsers send it (`scheme://host[:port]`, lowercase, no path or
 * trailing slash). `*` stands for one or more characters of one DNS label in the host
 * (`https://*.example.com`, `https://app-*.example.com`) or for any port (`http://localhost:*`);
 * src/server/cors.ts compiles the patterns.
 */
export const CORS_ORIGIN_PATTERN =
  /^https?:\/\/(?:[a-z0-9*](?:[a-z0-9*-]*[a-z0-9*])?(?:\.[a-z0-9*](?:[a-z0-9*-]*[a-z0-9*])?)*|\[[0-9a-f:.]+\])(?::(?:[0-9]{1,5}|\*))?$/;
const corsOrigin = z
  .string()
  .regex(
    CORS_ORIGIN_PATTERN,
    'an origin such as "https://app.example.com" (scheme://host[:port], lowercase, no path), ' +
      'where * stands for part of one DNS label or any port ("https://*.example.com", "http://localhost:*")',
  )
  .refine(
    (origin) => !wildcardNearTop(origin),
    'a * in the host must be followed by at least two fixed labels ("https://*.example.com", not "https://*.com")',
  );

/** `https://*.com`, `https://x.*`: a wildcard that would allow whole top-level domains. */
function wildcardNearTop(origin: string): boolean {
  const host = origin.replace(/^https?:\/\//, '').replace(/:[0-9*]+$/, '');
  const labels = host.split('.');
  return labels.some((label, i) => label.includes('*') && i > labels.length - 3);
}
const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'an HTTP header name');
const pgIdentifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lowercase SQL identifier');

export const dataSettingsSchema = z.discriminatedUnion('strategy', [
  z.strictObject({
    strategy: z.literal('schema'),
    /** Postgres schema holding the tenant's tables; default `tenant_<id>` (hyphens → `_`). */
    schema: pgIdentifier.optional(),
  }),
  z.strictObject({
    strategy: z.literal('row'),
  }),
  z.strictObject({
    strategy: z.literal('database'),
    /** The tenant's own database. */
    url: z.string().min(1),
    /** Connections in this tenant's pool (default `data.tenantPoolMax`). */
    poolMax: z.number().int().min(1).max(100).optional(),
  }),
]);

/**
 * Fields a document may have once its fragments are expanded (`limits.operation.expandedFields`).
 * The standard introspection query (`getIntrospectionQuery()`) has 220; without fragments, the
 * token limit allows about 1,000. Fragments that spread others twice reach millions in a few
 * hundred tokens: refused here before validation or compilation walks them.
 */
export const DEFAULT_MAX_EXPANDED_FIELDS = 2_000;

/**
 * Values in a request's variables, nested ones included (`limits.operation.variableValues`):
 * graphql-js coerces each (4 µs a value on a busy 2-core machine; a 1 MB body holds ~200,000).
 * The largest legitimate input here, `predict` with 100 rows of features, has about 600.
 */
export const DEFAULT_MAX_VARIABLE_VALUES = 10_000;

export const operationLimitsSchema = z.strictObject({
  depth: z.number().int().positive(),
  aliases: z.number().int().nonnegative(),
  rootFields: z.number().int().positive(),
  directives: z.number().int().nonnegative(),
  tokens: z.number().int().positive(),
  /** Fields once fragments are expanded; default DEFAULT_MAX_EXPANDED_FIELDS. */
  expandedFields: z.number().int().positive().default(DEFAULT_MAX_EXPANDED_FIELDS),
  /** Values in the variables, nested ones included; default DEFAULT_MAX_VARIABLE_VALUES. */
  variableValues: z.number().int().positive().default(DEFAULT_MAX_VARIABLE_VALUES),
  cost: z.number().int().positive(),
});

/** What one tenant may keep registered as automatic persisted queries at once. */
export const persistedQueryQuotaSchema = z.strictObject({
  maxDocuments: z.number().int().positive(),
  /** Keys and documents together, in bytes. */
  maxBytes: z.number().int().positive(),
});

export const planLimitsSchema = z.strictObject({
  /** GCRA: sustained requests per second and the burst allowed on top. */
  rateLimit: z.strictObject({
    perSecond: z.number().positive(),
    burst: z.number().int().nonnegative(),
  }),
  /** In-flight requests per tenant across all replicas. */
  maxConcurrent: z.number().int().positive(),
  operation: operationLimitsSchema,
  introspection: z.boolean(),
  persistedQueries: persistedQueryQuotaSchema.default({ ...DEFAULT_PERSISTED_QUERY_QUOTA }),
  /** Largest `first` any list field accepts (a directive's own `max` may be lower). */
  maxPageSize: z.number().int().positive().max(10_000).default(DEFAULT_MAX_PAGE_SIZE),
});

export const DEFAULT_PLANS: Readonly<Record<string, z.infer<typeof planLimitsSchema>>> = {
  free: {
    rateLimit: { perSecond: 20, burst: 40 },
    maxConcurrent: 10,
    operation: {
      depth: 8,
      aliases: 15,
      rootFields: 10,
      directives: 50,
      tokens: 1_000,
      expandedFields: DEFAULT_MAX_EXPANDED_FIELDS,
      variableValues: DEFAULT_MAX_VARIABLE_VALUES,
      cost: 2_000,
    },
    introspection: true,
    persistedQueries: { maxDocuments: 500, maxBytes: 2 * 1024 * 1024 },
    maxPageSize: DEFAULT_MAX_PAGE_SIZE,
  },
  pro: {
    rateLimit: { perSecond: 200, burst: 400 },
    maxConcurrent: 50,
    operation: {
      depth: 10,
      aliases: 15,
      rootFields: 15,
      directives: 50,
      tokens: 1_000,
      expandedFields: DEFAULT_MAX_EXPANDED_FIELDS,
      variableValues: DEFAULT_MAX_VARIABLE_VALUES,
      cost: 5_000,
    },
    introspection: true,
    persistedQueries: { maxDocuments: 2_000, maxBytes: 8 * 1024 * 1024 },
    maxPageSize: DEFAULT_MAX_PAGE_SIZE,
  },
  enterprise: {
    rateLimit: { perSecond: 1_000, burst: 2_000 },
    maxConcurrent: 200,
    operation: {
      depth: 12,
      aliases: 15,
      rootFields: 20,
      directives: 50,
      tokens: 1_000,
      expandedFields: DEFAULT_MAX_EXPANDED_FIELDS,
      variableValues: DEFAULT_MAX_VARIABLE_VALUES,
      cost: 5_000,
    },
    introspection: true,
    persistedQueries: { maxDocuments: 10_000, maxBytes: 32 * 1024 * 1024 },
    maxPageSize: DEFAULT_MAX_PAGE_SIZE,
  },
};

/** Thresholds map a score to a label: the label with the highest `min` not above the score. */
export const thresholdsSchema = z
  .record(z.string().min(1), z.number().min(0).max(1))
  .refine((t) => Object.values(t).includes(0), 'one label must start at 0');

export const tenantModelSchema = z.strictObject({
  /** Name of an entry in `inference.backends`. */
  backend: z.string().min(1),
  /** Model name on the backend (OIP v2 `{model}`). */
  model: z.string().min(1),
  /** Model version on the backend; omitted → the backend's version policy (latest). */
  version: z
    .string()
    .regex(/^[0-9]+$/, 'a numeric version such as "2"')
    .optional(),
  thresholds: thresholdsSchema.default({ low: 0, high: 0.5 }),
  /** Entity fields fed to the model, in the model's input order. */
  features: z.array(z.string().min(1)).min(1),
});

/**
 * A secret: the name of an environment variable or a file holding it — never the secret
 * itself, so config files can be committed and logged.
 */
export const secretRefSchema = z.union([
  z
    .strictObject({
      env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'),
    })
    .strict(),
  z.strictObject({ file: z.string().min(1) }).strict(),
]);

export const DEFAULT_SERVICE_TIMEOUT_MS = 2_000;
export const DEFAULT_SERVICE_CONNECTIONS = 16;
export const DEFAULT_SERVICE_MAX_CONCURRENT = 16;
export const DEFAULT_SERVICE_MAX_RESPONSE_BYTES = 1024 * 1024;
export const DEFAULT_IDENTITY_TTL_SECONDS = 30;

/** What a tenant may change of a service: where it is and how it authenticates. */
export const tenantServiceSchema = z
  .strictObject({
    /** The tenant's own deployment of the service (e.g. https://acme.billing.internal). */
    url: z.string().url().optional(),
    /** Headers sent with the tenant's calls, on top of (and over) the service's. */
    headers: z.record(headerName, secretRefSchema).default({}),
  })
  .strict();

export const DEFAULT_REALM_TIMEOUT_MS = 2_000;
/** The `aud` of the identity the gateway signs for tenant realms. */
export const REALM_AUDIENCE = 'realm';

/**
 * A tenant's own GraphQL service, stitched into that tenant's schema only (src/graphql/realm.ts):
 * its types and fields, and fields on shared types merged by key through an entry point such as
 * `_authors(ids: [ID!]!): [Author]!` (the convention: src/graphql/realm.ts, services/realm).
 */
export const tenantRealmSchema = z
  .strictObject({
    /** The GraphQL endpoint (e.g. https://graphql.acme.internal/graphql). */
    url: z.string().url(),
    /** A token the gateway signs (audience `realm`), or none. */
    identity: z.enum(['signed', 'none']).default('signed'),
    /** Deadline of one call to the realm (introspection included). */
    timeoutMs: z.number().int().positive().max(60_000).default(DEFAULT_REALM_TIMEOUT_MS),
  })
  .strict();

const serviceName = z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'a service name such as "billing"');

export const tenantSchema = z.strictObject({
  id: tenantId,
  displayName: z.string().min(1),
  plan: z.string().min(1).default('free'),
  status: z.enum(['active', 'suspended']).default('active'),
  data: dataSettingsSchema,
  /** Logical model name (as the SDL's `@infer(model:)` names it) → where and how to score it. */
  models: z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/), tenantModelSchema).default({}),
  /** Overrides of the plan's limits (none defaulted here: what is not set is the plan's). */
  limits: planLimitsSchema
    .partial()
    .extend({
      persistedQueries: persistedQueryQuotaSchema.optional(),
      maxPageSize: z.number().int().positive().max(10_000).optional(),
    })
    .default({}),
  features: z.array(z.string().min(1)).default([]),
  /**
   * Only operations an operator registered for this tenant run (admin CLI or endpoint);
   * clients cannot register through automatic persisted queries.
   */
  trustedDocuments: z.boolean().default(false),
  /** This tenant's URL and credentials for `services` entries (its own deployments). */
  services: z.record(serviceName, tenantServiceSchema).default({}),
  /** The tenant's own GraphQL service extending its schema (a "realm"); none by default. */
  realm: tenantRealmSchema.optional(),
  cors: z
    .strictObject({
      /**
       * The tenant's own front-end origins, on top of `server.cors.origins`. Honoured for an
       * actual request once its token names this tenant; preflights allow them before auth.
       */
      origins: z.array(corsOrigin).default([]),
    })
    .prefault({}),
});

/** A tenant service: an HTTP/JSON upstream the SDL's `@http` fields call. */
export const serviceSchema = z
  .strictObject({
    /** Base URL for tenants that do not set their own; unset → only tenants with one may call it. */
    url: z.string().url().optional(),
    /** Deadline of one call, retries included (the request's deadline may end it sooner). */
    timeoutMs: z.number().int().positive().max(60_000).default(DEFAULT_SERVICE_TIMEOUT_MS),
    /** Keep-alive connections per origin. */
    connections: z.number().int().positive().max(1_024).default(DEFAULT_SERVICE_CONNECTIONS),
    /** Calls of one tenant in flight at once to this service; more wait their turn. */
    maxConcurrent: z.number().int().positive().max(1_024).default(DEFAULT_SERVICE_MAX_CONCURRENT),
    /** A larger answer is refused as malformed. */
    maxResponseBytes: z
      .number()
      .int()
      .positive()
      .max(64 * 1024 * 1024)
      .default(DEFAULT_SERVICE_MAX_RESPONSE_BYTES),
    /** Attempts per call, the first included (1 disables retries). */
    maxAttempts: z.number().int().min(1).max(5).default(2),
    /**
     * Who the service is told the caller is: a short-lived token the gateway signs (`signed`:
     * tenant, subject, scopes, audience = the service), the caller's own bearer token
     * (`forward`), or nothing (`none`).
     */
    identity: z.enum(['signed', 'forward', 'none']).default('signed'),
    /** `aud` of the signed identity; default the service's name. */
    audience: z.string().min(1).optional(),
    /** Headers sent with every call (API keys): secrets by reference only. */
    headers: z.record(headerName, secretRefSchema).default({}),
    /** A path answered 2xx when the service is up, probed by /readyz (default URL only). */
    healthPath: z.string().startsWith('/').optional(),
  })
  .strict();

export const inferenceBackendSchema = z.strictObject({
  /** Base URL of an OIP v2 server, e.g. http://127.0.0.1:8001 */
  url: z.string().url(),
  timeoutMs: z.number().int().positive().default(DEFAULT_INFER_TIMEOUT_MS),
  /** Pooled keep-alive connections to this backend. */
  connections: z.number().int().positive().default(16),
  /**
   * Inputs as raw FP32 bytes (the KServe/Triton binary tensor data extension, which Triton,
   * KServe and the reference model server speak) instead of JSON numbers.
   */
  binaryTensors: z.boolean().default(false),
});

const keySchema = z
  .strictObject({
    kid: z.string().optional(),
    alg: z.string().optional(),
    /** SPKI PEM public key. */
    pem: z.string().optional(),
    /** Public JWK. */
    jwk: z.record(z.string(), z.unknown()).optional(),
  })
  .refine((k) => (k.pem === undefined) !== (k.jwk === undefined), 'exactly one of pem or jwk');

export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'EdDSA',
] as const;

export const authSchema = z
  .strictObject({
    issuer: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    algorithms: z
      .array(z.enum([...ASYMMETRIC_ALGORITHMS, 'HS256']))
      .min(1)
      .default(['RS256', 'ES256', 'EdDSA']),
    /** Claims that may carry the tenant id, in order of preference. */
    tenantClaims: z
      .array(z.string().min(1))
      .min(1)
      .default([...DEFAULT_TENANT_CLAIMS]),
    clockToleranceSeconds: z
      .number()
      .int()
      .nonnegative()
      .max(300)
      .default(DEFAULT_CLOCK_TOLERANCE_SECONDS),
    /** Expected `typ` header, if any (e.g. "JWT" or "at+jwt"). */
    typ: z.string().optional(),
    keys: z.array(keySchema).default([]),
    /** Shared secret for HS256; only used when HS256 is listed in `algorithms`. */
    hs256Secret: z.string().min(32).optional(),
    jwks: z
      .strictObject({
        url: z.string().url(),
        timeoutMs: z.number().int().positive().default(DEFAULT_JWKS_TIMEOUT_MS),
        cooldownMs: z.number().int().nonnegative().default(DEFAULT_JWKS_COOLDOWN_MS),
        maxAgeMs: z.number().int().positive().default(DEFAULT_JWKS_MAX_AGE_MS),
        /** How long the last good key set may be used while the JWKS endpoint is failing. */
        maxStaleMs: z.number().int().nonnegative().default(DEFAULT_JWKS_MAX_STALE_MS),
      })
      .optional(),
    tokenCacheMax: z.number().int().nonnegative().default(DEFAULT_TOKEN_CACHE_MAX),
  })
  .refine(
    (a) => a.keys.length > 0 || a.jwks !== undefined || a.hs256Secret !== undefined,
    'at least one key source: keys, jwks or hs256Secret',
  )
  .refine(
    (a) => !a.algorithms.includes('HS256') || a.hs256Secret !== undefined,
    'HS256 is listed in algorithms but no hs256Secret is configured',
  );

export const corsSchema = z
  .strictObject({
    /**
     * Browser origins allowed to call the GraphQL endpoints, for every tenant: exact origins or
     * patterns (see CORS_ORIGIN_PATTERN), or `"*"` for any origin. Empty (the default) → only
     * the tenants' own `cors.origins`; none at all → no cross-origin access.
     */
    origins: z.array(z.union([z.literal('*'), corsOrigin])).default([]),
    /**
     * Send `Access-Control-Allow-Credentials: true`, letting front-ends use
     * `credentials: 'include'`. Atrium authenticates by bearer token only, so this is off.
     */
    credentials: z.boolean().default(false),
    maxAgeSeconds: z.number().int().nonnegative().max(86_400).default(DEFAULT_CORS_MAX_AGE_SECONDS),
    allowedHeaders: z
      .array(headerName)
      .min(1)
      .default([...DEFAULT_CORS_ALLOWED_HEADERS]),
    exposedHeaders: z.array(headerName).default([...DEFAULT_CORS_EXPOSED_HEADERS]),
  })
  .refine((c) => !(c.credentials && c.origins.includes('*')), {
    path: ['credentials'],
    message:
      'true cannot be combined with the origin "*" (any site could send credentials); list the origins',
  });

export const DEFAULT_MAX_TENANT_LABELS = 100;
export const DEFAULT_MAX_OPERATION_LABELS = 20;
export const DEFAULT_OTEL_SERVICE_NAME = 'atrium';

export const telemetrySchema = z.strictObject({
  /**
   * Distinct tenant label values in metrics. The first tenants seen keep their own label;
   * later ones are counted together as `other`, so a fleet of thousands of tenants cannot
   * blow up the scrape.
   */
  maxTenantLabels: z.number().int().nonnegative().default(DEFAULT_MAX_TENANT_LABELS),
  /** Distinct operation names per tenant label; later ones are counted as `other`. */
  maxOperationLabels: z.number().int().nonnegative().default(DEFAULT_MAX_OPERATION_LABELS),
  metrics: z
    .strictObject({
      /** Serve Prometheus metrics at `GET /metrics`. */
      enabled: z.boolean().default(true),
      /**
       * Serve `/metrics` on this port (its own listener, e.g. 9464), which the load balancer
       * never exposes. Unset → no metrics listener of its own.
       */
      port: z.number().int().min(0).max(65535).optional(),
      /** Listen address of the metrics port; default `server.host`. */
      host: z.string().optional(),
      /**
       * Who may read `/metrics` on the main port: nobody (`off`, the default: the text names
       * tenants and operations), clients on this host (`loopback`, demo mode's setting), or
       * anyone who reaches the gateway (`all`: only behind something that keeps it private).
       */
      onMainPort: z.enum(['off', 'loopback', 'all']).default(DEFAULT_METRICS_ON_MAIN_PORT),
    })
    .prefault({}),
  tracing: z
    .strictObject({
      /**
       * OTLP/HTTP base URL of a collector (e.g. http://otel-collector:4318); `/v1/traces` is
       * appended. OTEL_EXPORTER_OTLP_ENDPOINT overrides. Unset → tracing is a no-op.
       */
      otlpEndpoint: z.string().url().optional(),
      /** Full traces URL, used as is; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT overrides. */
      otlpTracesEndpoint: z.string().url().optional(),
      /** Extra headers for the collector (e.g. an API key). */
      headers: z.record(z.string(), z.string()).default({}),
      /** `service.name` of the spans; OTEL_SERVICE_NAME overrides. */
      serviceName: z.string().min(1).default(DEFAULT_OTEL_SERVICE_NAME),
      /** Share of new traces recorded; a sampled incoming `traceparent` is always followed. */
      sampleRatio: z.number().min(0).max(1).default(1),
    })
    .prefault({}),
});

export const configFileSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().default(DEFAULT_HOST),
      port: z.number().int().min(0).max(65535).default(DEFAULT_PORT),
      /** Subdomains of this domain name tenants (acme.api.example.com → acme). */
      baseDomain: z.string().optional(),
      bodyLimitBytes: z.number().int().positive().default(DEFAULT_BODY_LIMIT_BYTES),
      /**
       * How long reading a request body may take, from admission to its last byte: a slower
       * upload gets 408 (reason BODY_TIMEOUT) and its concurrency slot back.
       */
      bodyTimeoutMs: z.number().int().positive().max(60_000).default(DEFAULT_BODY_TIMEOUT_MS),
      drainTimeoutMs: z.number().int().nonnegative().default(DEFAULT_DRAIN_TIMEOUT_MS),
      /**
       * Overall deadline of one request's backend calls (data and models): past it, the fields
       * still waiting fail with BACKEND_TIMEOUT and the rest of the answer is sent.
       */
      requestDeadlineMs: z
        .number()
        .int()
        .positive()
        .max(25_000)
        .default(DEFAULT_REQUEST_DEADLINE_MS),
      playground: z.boolean().default(false),
      /**
       * Gateway processes on this host (node:cluster, sharing the port): a number, or `auto`
       * for one per core. With more than one, use Redis so they share limits and caches.
       */
      workers: z.union([z.number().int().min(1).max(256), z.literal('auto')]).default(1),
      /**
       * What executes operations: `graphql-jit` (the default: operations it answers like
       * graphql-js compiled once to JavaScript on their second use, up to
       * DEFAULT_JIT_MAX_COMPILE_FIELDS expanded fields, within a compile budget; graphql-js runs
       * the rest; see src/graphql/jit.ts and BENCHMARKS.md) or `graphql-js` (Apollo Server's own
       * execution for every operation, which also runs `willResolveField` plugin hooks).
       */
      executor: z.enum(['graphql-js', 'graphql-jit']).default(DEFAULT_EXECUTOR),
      cors: corsSchema.prefault({}),
    })
    .prefault({}),
  /** How tokens are verified; only a demo config (one with a `dev` section) may leave it out. */
  auth: authSchema.optional(),
  /** The operator's SDL and its resolver module (docs/schema-directives.md). */
  schema: z
    .strictObject({
      /**
       * SDL files or globs, relative to the config file (`schema/*.graphql`); default the
       * demo example's. Their source directives say where each field comes from.
       */
      files: z.array(z.string().min(1)).min(1).default([DEFAULT_SCHEMA_FILES]),
      /**
       * A TypeScript or JavaScript module whose `resolvers` export adds resolvers for fields
       * no directive expresses; relative to the config file.
       */
      resolvers: z.string().min(1).optional(),
    })
    .prefault({}),
  /**
   * Demo mode. A config file with a `dev` section and no `auth` runs as a laptop demo
   * (`ATRIUM_CONFIG=examples/<name>/atrium.yaml npm start`): dev keys, embedded PGlite unless
   * DATABASE_URL is set, and the reference model server started with the example's models.
   */
  dev: z
    .strictObject({
      /** A GraphQL query for the banner's curl line. */
      exampleQuery: z.string().min(1).default(DEFAULT_EXAMPLE_QUERY),
      /**
       * Reference services (services/<name>) demo mode starts and points the same-named
       * entry of `services` at: the demo's `tickets`; `realm` is started for the tenants with a
       * `realm`, whose URLs demo mode points at it.
       */
      referenceServices: z.array(z.enum(['tickets', 'realm'])).default([]),
      modelServer: z
        .strictObject({
          /** The example's recipe module (exports `recipes`); default the demo's models. */
          recipes: z.string().min(1).optional(),
          /** Where its Triton-layout repository is built; default next to the recipes. */
          repository: z.string().min(1).optional(),
        })
        .prefault({}),
    })
    .optional(),
  data: z
    .strictObject({
      /** Shared database (schema and row strategies); DATABASE_URL overrides. */
      url: z.string().optional(),
      poolMax: z.number().int().positive().default(DEFAULT_POOL_MAX),
      /**
       * Connections of the shared pool (schema and row tenants) one tenant may hold at once;
       * default half of `poolMax`, rounded up. Waiting tenants are served in turn.
       */
      tenantShareMax: z.number().int().positive().optional(),
      tenantPoolMax: z.number().int().positive().default(DEFAULT_TENANT_POOL_MAX),
      maxTenantPools: z.number().int().positive().default(DEFAULT_MAX_TENANT_POOLS),
      tenantPoolIdleMs: z.number().int().positive().default(DEFAULT_TENANT_POOL_IDLE_MS),
      statementTimeoutMs: z.number().int().positive().default(DEFAULT_STATEMENT_TIMEOUT_MS),
      rowRole: pgIdentifier.default(DEFAULT_ROW_ROLE),
      /**
       * The operator's migrations: a directory of plain `.sql` files, applied in name order to
       * each tenant in its isolation by `npm run db:migrate` (and at start on embedded PGlite).
       * Relative to the config file; default the demo example's.
       */
      migrations: z.string().min(1).default(DEFAULT_MIGRATIONS_DIR),
      /**
       * A module exporting `seed(session, target, options)` that fills one tenant's tables
       * with sample rows (`npm run db:seed`, and embedded PGlite at start). Relative to the
       * config file; unset → the demo's seed if `migrations` is the demo's too, else no seed.
       */
      seed: z.string().min(1).optional(),
      /**
       * A tenant whose catalog does not fit the schema's bindings is refused (`refuse`, 403
       * TENANT_MISCONFIGURED) or only logged and served (`warn`: its misfit fields then fail
       * on their own, e.g. while a migration rolls out).
       */
      bindingCheck: z.enum(['refuse', 'warn']).default('refuse'),
    })
    .superRefine((d, ctx) => {
      if (d.tenantShareMax !== undefined && d.tenantShareMax > d.poolMax) {
        ctx.addIssue({
          code: 'custom',
          path: ['tenantShareMax'],
          message: `at most data.poolMax (${d.poolMax})`,
          input: d.tenantShareMax,
        });
      }
    })
    .prefault({}),
  redis: z
    .strictObject({
      /** Single node; REDIS_URL overrides. */
      url: z.string().optional(),
      /** Redis Cluster seed nodes (host:port); REDIS_CLUSTER_NODES overrides. */
      cluster: z.array(z.string()).optional(),
      commandTimeoutMs: z.number().int().positive().default(DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
    })
    .prefault({}),
  telemetry: telemetrySchema.prefault({}),
  /** Tenant services (HTTP/JSON upstreams) by name; tenants override URL and credentials. */
  services: z.record(serviceName, serviceSchema).default({}),
  /**
   * The identity the gateway signs for services (`identity: signed`), published with its
   * public key at /.well-known/jwks.json.
   */
  identity: z
    .strictObject({
      /** `iss` of the tokens; default `atrium`. */
      issuer: z.string().min(1).default('atrium'),
      /**
       * The private signing key (a JWK JSON or PKCS#8 PEM, ES256), shared by every replica.
       * Unset → a key generated at start (one replica only: others could not verify).
       */
      signingKey: secretRefSchema.optional(),
      /** Lifetime of a token, at most 60 s. */
      ttlSeconds: z.number().int().min(5).max(60).default(DEFAULT_IDENTITY_TTL_SECONDS),
    })
    .prefault({}),
  inference: z
    .strictObject({
      backends: z.record(z.string().min(1), inferenceBackendSchema).default({}),
      microBatch: z
        .strictObject({
          enabled: z.boolean().default(true),
          windowMs: z.number().nonnegative().max(50).default(DEFAULT_MICRO_BATCH_WINDOW_MS),
          maxBatchSize: z.number().int().positive().default(DEFAULT_MICRO_BATCH_MAX_SIZE),
          /** Batches of one (tenant, model, version) out at once; more rows wait and join. */
          maxInFlight: z.number().int().positive().default(DEFAULT_MICRO_BATCH_MAX_IN_FLIGHT),
        })
        .prefault({}),
      cacheTtlSeconds: z.number().int().nonnegative().default(DEFAULT_PREDICTION_CACHE_TTL_SECONDS),
    })
    .prefault({}),
  limits: z
    .strictObject({
      /**
       * While the store (Redis) cannot answer: `local` limits per process, `refuse` answers
       * 503, `allow` admits without limiting.
       */
      fallback: z.enum(['local', 'refuse', 'allow']).default('local'),
      /** Lifetime of a concurrency lease: how long a crashed replica's slots can stay taken. */
      leaseTtlMs: z.number().int().positive().default(30_000),
    })
    .prefault({}),
  persistedQueries: z
    .strictObject({
      /** Automatic persisted queries (Apollo APQ protocol), stored per tenant. */
      enabled: z.boolean().default(true),
      /** How long a registered query is remembered after its last registration. */
      ttlSeconds: z.number().int().positive().default(DEFAULT_PERSISTED_QUERY_TTL_SECONDS),
      /**
       * A document larger than this is not registered (400 OPERATION_LIMIT). How many a tenant
       * may keep, and their bytes, is its plan's `persistedQueries`.
       */
      maxDocumentBytes: z
        .number()
        .int()
        .positive()
        .default(DEFAULT_PERSISTED_QUERY_MAX_DOCUMENT_BYTES),
    })
    .prefault({}),
  liveConfig: z
    .strictObject({
      /**
       * How often each replica checks the tenant config revision in the store, to catch up on
       * changes whose pub/sub message it missed (e.g. while disconnected).
       */
      pollIntervalMs: z.number().int().min(100).default(DEFAULT_LIVE_CONFIG_POLL_MS),
      /**
       * Schema of the shared database (DATABASE_URL) holding the durable copy of operator
       * decisions: tenant records, tombstones, trusted documents and their revision. No tenant
       * may use it. Two fleets sharing one database each need their own.
       */
      controlSchema: pgIdentifier.default(DEFAULT_CONTROL_SCHEMA),
    })
    .prefault({}),
  admin: z
    .strictObject({
      /**
       * The operator tenant: `/admin/*` accepts only tokens whose tenant claim is this id (and
       * that carry `scope`). Unset → the admin endpoint is off. Must not be a served tenant.
       */
      tenant: tenantId.optional(),
      scope: z.string().min(1).default(DEFAULT_ADMIN_SCOPE),
    })
    .prefault({}),
  plans: z.record(z.string().min(1), planLimitsSchema).default({ ...DEFAULT_PLANS }),
  tenants: z.array(tenantSchema).min(1),
});

/**
 * The config file with the rules that span fields: tenant ids are unique, and no two tenants
 * reach the same rows (a schema, a database; see config/isolation-targets.ts).
 */
export const checkedConfigFileSchema = configFileSchema.superRefine((file, context) => {
  if (file.auth === undefined && file.dev === undefined) {
    context.addIssue({
      code: 'custom',
      path: ['auth'],
      message:
        'required: how tokens are verified (keys, jwks or hs256Secret); only a demo config, with a `dev` section, may leave it out',
    });
  }
  const seen = new Set<string>();
  file.tenants.forEach((tenant, index) => {
    if (seen.has(tenant.id)) {
      context.addIssue({
        code: 'custom',
        path: ['tenants', index, 'id'],
        message: `tenant ${tenant.id} is declared twice`,
      });
    }
    seen.add(tenant.id);
  });
  const conflicts = findIsolationConflicts(file.tenants, {
    reservedSchemas: [file.liveConfig.controlSchema],
  });
  for (const conflict of conflicts) {
    context.addIssue({
      code: 'custom',
      path: ['tenants', conflict.index, ...conflict.field.split('.')],
      message: conflict.message,
    });
  }
});

export type ConfigFile = z.infer<typeof configFileSchema>;
export type TenantConfig = z.infer<typeof tenantSchema>;
export type DataSettings = z.infer<typeof dataSettingsSchema>;
export type TenantModelConfig = z.infer<typeof tenantModelSchema>;
export type PlanLimits = z.infer<typeof planLimitsSchema>;
export type PersistedQueryQuota = z.infer<typeof persistedQueryQuotaSchema>;
export type OperationLimits = z.infer<typeof operationLimitsSchema>;
export type AuthConfig = z.infer<typeof authSchema>;
export type InferenceBackendConfig = z.infer<typeof inferenceBackendSchema>;
export type TelemetryConfig = z.infer<typeof telemetrySchema>;
export type CorsConfig = z.infer<typeof corsSchema>;
export type ServiceConfig = z.infer<typeof serviceSchema>;
export type TenantServiceConfig = z.infer<typeof tenantServiceSchema>;
export type SecretRef = z.infer<typeof secretRefSchema>;
export type TenantRealmConfig = z.infer<typeof tenantRealmSchema>;
export type IdentityConfig = z.infer<typeof configFileSchema>['identity'];
