import { z } from 'zod';

/** Tenant ids are DNS labels: they appear in subdomains, paths, schema names and Redis keys. */
export const TENANT_ID_PATTERN = /^[a-z][a-z0-9-]{0,61}[a-z0-9]$/;

export const DEFAULT_PORT = 4000;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
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
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 250;
export const DEFAULT_INFER_TIMEOUT_MS = 2_000;
export const DEFAULT_MICRO_BATCH_WINDOW_MS = 2;
export const DEFAULT_MICRO_BATCH_MAX_SIZE = 256;
export const DEFAULT_PREDICTION_CACHE_TTL_SECONDS = 300;

const tenantId = z.string().regex(TENANT_ID_PATTERN, 'a lowercase DNS label such as "acme"');
const pgIdentifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lowercase SQL identifier');

export const dataSettingsSchema = z.discriminatedUnion('strategy', [
  z.object({
    strategy: z.literal('schema'),
    /** Postgres schema holding the tenant's tables; default `tenant_<id>` (hyphens → `_`). */
    schema: pgIdentifier.optional(),
  }),
  z.object({
    strategy: z.literal('row'),
  }),
  z.object({
    strategy: z.literal('database'),
    /** The tenant's own database. */
    url: z.string().min(1),
    /** Connections in this tenant's pool (default `data.tenantPoolMax`). */
    poolMax: z.number().int().min(1).max(100).optional(),
  }),
]);

export const operationLimitsSchema = z.object({
  depth: z.number().int().positive(),
  aliases: z.number().int().nonnegative(),
  rootFields: z.number().int().positive(),
  directives: z.number().int().nonnegative(),
  tokens: z.number().int().positive(),
  cost: z.number().int().positive(),
});

export const planLimitsSchema = z.object({
  /** GCRA: sustained requests per second and the burst allowed on top. */
  rateLimit: z.object({ perSecond: z.number().positive(), burst: z.number().int().nonnegative() }),
  /** In-flight requests per tenant across all replicas. */
  maxConcurrent: z.number().int().positive(),
  operation: operationLimitsSchema,
  introspection: z.boolean(),
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
      cost: 2_000,
    },
    introspection: true,
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
      cost: 5_000,
    },
    introspection: true,
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
      cost: 5_000,
    },
    introspection: true,
  },
};

/** Thresholds map a score to a label: the label with the highest `min` not above the score. */
export const thresholdsSchema = z
  .record(z.string().min(1), z.number().min(0).max(1))
  .refine((t) => Object.values(t).includes(0), 'one label must start at 0');

export const tenantModelSchema = z.object({
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

export const tenantSchema = z.object({
  id: tenantId,
  displayName: z.string().min(1),
  plan: z.string().min(1).default('free'),
  status: z.enum(['active', 'suspended']).default('active'),
  data: dataSettingsSchema,
  /** Logical model name (`churn`, `fraud`) → where and how to score it. */
  models: z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/), tenantModelSchema).default({}),
  /** Overrides of the plan's limits. */
  limits: planLimitsSchema.partial().default({}),
  features: z.array(z.string().min(1)).default([]),
});

export const inferenceBackendSchema = z.object({
  /** Base URL of an OIP v2 server, e.g. http://127.0.0.1:8001 */
  url: z.string().url(),
  timeoutMs: z.number().int().positive().default(DEFAULT_INFER_TIMEOUT_MS),
  /** Pooled keep-alive connections to this backend. */
  connections: z.number().int().positive().default(16),
});

const keySchema = z
  .object({
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
  .object({
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
      .object({
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

export const configFileSchema = z.object({
  server: z
    .object({
      host: z.string().default(DEFAULT_HOST),
      port: z.number().int().min(0).max(65535).default(DEFAULT_PORT),
      /** Subdomains of this domain name tenants (acme.api.example.com → acme). */
      baseDomain: z.string().optional(),
      bodyLimitBytes: z.number().int().positive().default(DEFAULT_BODY_LIMIT_BYTES),
      drainTimeoutMs: z.number().int().nonnegative().default(DEFAULT_DRAIN_TIMEOUT_MS),
      playground: z.boolean().default(false),
    })
    .prefault({}),
  auth: authSchema,
  data: z
    .object({
      /** Shared database (schema and row strategies); DATABASE_URL overrides. */
      url: z.string().optional(),
      poolMax: z.number().int().positive().default(DEFAULT_POOL_MAX),
      tenantPoolMax: z.number().int().positive().default(DEFAULT_TENANT_POOL_MAX),
      maxTenantPools: z.number().int().positive().default(DEFAULT_MAX_TENANT_POOLS),
      tenantPoolIdleMs: z.number().int().positive().default(DEFAULT_TENANT_POOL_IDLE_MS),
      statementTimeoutMs: z.number().int().positive().default(DEFAULT_STATEMENT_TIMEOUT_MS),
      rowRole: pgIdentifier.default(DEFAULT_ROW_ROLE),
    })
    .prefault({}),
  redis: z
    .object({
      /** Single node; REDIS_URL overrides. */
      url: z.string().optional(),
      /** Redis Cluster seed nodes (host:port); REDIS_CLUSTER_NODES overrides. */
      cluster: z.array(z.string()).optional(),
      commandTimeoutMs: z.number().int().positive().default(DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
    })
    .prefault({}),
  inference: z
    .object({
      backends: z.record(z.string().min(1), inferenceBackendSchema).default({}),
      microBatch: z
        .object({
          enabled: z.boolean().default(true),
          windowMs: z.number().nonnegative().max(50).default(DEFAULT_MICRO_BATCH_WINDOW_MS),
          maxBatchSize: z.number().int().positive().default(DEFAULT_MICRO_BATCH_MAX_SIZE),
        })
        .prefault({}),
      cacheTtlSeconds: z.number().int().nonnegative().default(DEFAULT_PREDICTION_CACHE_TTL_SECONDS),
    })
    .prefault({}),
  limits: z
    .object({
      /**
       * While the store (Redis) cannot answer: `local` limits per process, `refuse` answers
       * 503, `allow` admits without limiting.
       */
      fallback: z.enum(['local', 'refuse', 'allow']).default('local'),
      /** Lifetime of a concurrency lease: how long a crashed replica's slots can stay taken. */
      leaseTtlMs: z.number().int().positive().default(30_000),
    })
    .prefault({}),
  plans: z.record(z.string().min(1), planLimitsSchema).default({ ...DEFAULT_PLANS }),
  tenants: z.array(tenantSchema).min(1),
});

export type ConfigFile = z.infer<typeof configFileSchema>;
export type TenantConfig = z.infer<typeof tenantSchema>;
export type DataSettings = z.infer<typeof dataSettingsSchema>;
export type TenantModelConfig = z.infer<typeof tenantModelSchema>;
export type PlanLimits = z.infer<typeof planLimitsSchema>;
export type OperationLimits = z.infer<typeof operationLimitsSchema>;
export type AuthConfig = z.infer<typeof authSchema>;
export type InferenceBackendConfig = z.infer<typeof inferenceBackendSchema>;
