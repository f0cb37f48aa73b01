import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createLabelBound, type LabelBound, OVERFLOW_LABEL } from './labels.js';

/** Tenant label of requests refused before a tenant was verified (bad or missing token). */
export const NO_TENANT_LABEL = 'none';
/** Operation label of requests that never resolved an operation (refused, unparsable). */
export const NO_OPERATION_LABEL = 'none';
/** Operation label of an operation without a name. */
export const ANONYMOUS_OPERATION_LABEL = 'anonymous';
/** Outcome label of a request or backend call without errors; otherwise the error code. */
export const OK_OUTCOME = 'ok';

const GRAPHQL_NAME = /^[_A-Za-z][_0-9A-Za-z]{0,63}$/;
const REASON = /^[A-Z][A-Z_]{0,31}$/;

/** Request latency buckets (seconds): a cached answer is ~1 ms, a cold batch tens of ms. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BACKEND_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Rows per backend call: 1 means batching did nothing; the default page is 20. */
const BATCH_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500];

export type CircuitStateName = 'closed' | 'open' | 'half-open';
const CIRCUIT_STATES: readonly CircuitStateName[] = ['closed', 'open', 'half-open'];

export interface GatewayMetricsOptions {
  /** The registry to register into: one per gateway (tests run several in one process). */
  registry: Registry;
  /** Distinct tenant label values; later tenants count as `other`. */
  maxTenantLabels: number;
  /** Distinct operation names per tenant label; later names count as `other`. */
  maxOperationLabels: number;
  /** Also collect the Node.js process metrics (CPU, memory, event loop lag, GC). Default true. */
  processMetrics?: boolean;
}

/** One finished GraphQL request. */
export interface RequestSample {
  /** The verified tenant; `undefined` when the request was refused before that. */
  tenantId: string | undefined;
  /** `undefined`: no operation was resolved; `null`: an anonymous operation. */
  operation: string | null | undefined;
  /** `ok` or the request's first error code. */
  outcome: string;
  durationMs: number;
}

/** One call to a data or inference backend. */
export interface BackendCallSample {
  tenantId: string;
  kind: 'data' | 'inference';
  /** The backend's name: `postgres`/`pglite` for data, the configured name for inference. */
  backend: string;
  /** What was called: the data statement (`Query.books`) or `model/version`. */
  target: string;
  /** `ok` or the error code. */
  outcome: string;
  durationMs: number;
  /** Rows in the call: rows returned by a data statement, rows scored by an infer call. */
  rows: number;
}

/** One prediction-cache lookup (one MGET for a batch of rows). */
export interface CacheSample {
  tenantId: string;
  /** The tenant's logical model name (e.g. `risk`). */
  model: string;
  hits: number;
  misses: number;
  /** The store did not answer: every row was a miss. */
  failed: boolean;
}

/**
 * The gateway's Prometheus metrics. Every per-request and per-call series carries the tenant,
 * through one shared bound, so a tenant has the same label in every family and the number of
 * tenant label values never exceeds `maxTenantLabels` (+ `other`, + `none` for refused
 * requests).
 */
export interface GatewayMetrics {
  readonly registry: Registry;
  /** The bounded label of a tenant id (`none` for `undefined`). */
  tenantLabel(tenantId: string | undefined): string;
  requestStarted(): void;
  requestFinished(sample: RequestSample): void;
  backendCall(sample: BackendCallSample): void;
  cacheLookup(sample: CacheSample): void;
  /** A request refused by the limits; `reason` as in the error's `extensions.reason`. */
  rateLimited(tenantId: string, reason: string | undefined): void;
  /** The limiter's store failed and its fallback decided. */
  limiterStoreError(operation: string): void;
  /** Reports `state()` of a backend's circuit breaker at every scrape. */
  watchBreaker(backend: string, state: () => CircuitStateName): void;
  breakerTransition(backend: string, to: CircuitStateName): void;
  /** The exposition text and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

function boundedCount(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new TypeError(
      `createGatewayMetrics: ${name} must be a non-negative integer, got ${value}`,
    );
  }
  return value;
}

export function createGatewayMetrics(options: GatewayMetricsOptions): GatewayMetrics {
  const { registry } = options;
  const maxOperations = boundedCount('maxOperationLabels', options.maxOperationLabels);
  const tenants = createLabelBound(boundedCount('maxTenantLabels', options.maxTenantLabels));
  // One operation bound per tenant label (a Map of at most maxTenantLabels + 2 entries): one
  // tenant's clients inventing operation names cannot use up the labels of the others.
  const operations = new Map<string, LabelBound>();
  const registers = [registry];
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: 'atrium_graphql_requests_total',
    help: 'GraphQL requests by tenant, operation name and outcome (ok or the first error code).',
    labelNames: ['tenant', 'operation', 'outcome'] as const,
    registers,
  });
  const requestDuration = new Histogram({
    name: 'atrium_graphql_request_duration_seconds',
    help: 'GraphQL request latency, from the request line to the last byte of the answer.',
    labelNames: ['tenant', 'operation'] as const,
    buckets: REQUEST_BUCKETS,
    registers,
  });
  const inFlight = new Gauge({
    name: 'atrium_graphql_requests_in_flight',
    help: 'GraphQL requests being answered now.',
    registers,
  });
  const backendCalls = new Counter({
    name: 'atrium_backend_calls_total',
    help: 'Calls to data (one SQL statement per batch) and inference (one infer call per batch) backends.',
    labelNames: ['tenant', 'kind', 'backend', 'target', 'outcome'] as const,
    registers,
  });
  const backendDuration = new Histogram({
    name: 'atrium_backend_call_duration_seconds',
    help: 'Backend call latency: the data statement, or the infer call with its retries.',
    labelNames: ['tenant', 'kind', 'backend'] as const,
    buckets: BACKEND_BUCKETS,
    registers,
  });
  const batchRows = new Histogram({
    name: 'atrium_backend_batch_rows',
    help: 'Rows per backend call: rows scored per infer call, rows returned per data statement.',
    labelNames: ['tenant', 'kind', 'backend'] as const,
    buckets: BATCH_BUCKETS,
    registers,
  });
  const cache = new Counter({
    name: 'atrium_prediction_cache_lookups_total',
    help: 'Prediction cache lookups per row: hit, miss, or error (store down, counted as a miss).',
    labelNames: ['tenant', 'model', 'result'] as const,
    registers,
  });
  const limited = new Counter({
    name: 'atrium_rate_limited_requests_total',
    help: 'Requests refused by the tenant limits, by reason (RATE, CONCURRENCY, LIMITER_UNAVAILABLE).',
    labelNames: ['tenant', 'reason'] as const,
    registers,
  });
  const storeErrors = new Counter({
    name: 'atrium_limiter_store_errors_total',
    help: 'Limiter calls the store could not answer (the configured fallback decided).',
    labelNames: ['operation'] as const,
    registers,
  });
  const breakers = new Map<string, () => CircuitStateName>();
  new Gauge({
    name: 'atrium_breaker_state',
    help: 'Circuit breaker state per inference backend: 1 for the current state, 0 otherwise.',
    labelNames: ['backend', 'state'] as const,
    registers,
    collect() {
      for (const [backend, state] of breakers) {
        let current: CircuitStateName | undefined;
        try {
          current = state();
        } catch {
          current = undefined;
        }
        for (const s of CIRCUIT_STATES) this.set({ backend, state: s }, s === current ? 1 : 0);
      }
    },
  });
  const transitions = new Counter({
    name: 'atrium_breaker_transitions_total',
    help: 'Circuit breaker state changes per inference backend, by the state entered.',
    labelNames: ['backend', 'to'] as const,
    registers,
  });

  function tenantLabel(tenantId: string | undefined): string {
    return tenantId === undefined ? NO_TENANT_LABEL : tenants(tenantId);
  }

  function operationLabel(tenant: string, operation: string | null | undefined): string {
    if (operation === undefined) return NO_OPERATION_LABEL;
    if (operation === null || operation === '') return ANONYMOUS_OPERATION_LABEL;
    if (!GRAPHQL_NAME.test(operation)) return OVERFLOW_LABEL;
    let bound = operations.get(tenant);
    if (bound === undefined) {
      bound = createLabelBound(maxOperations);
      operations.set(tenant, bound);
    }
    return bound(operation);
  }

  return {
    registry,
    tenantLabel,
    requestStarted: () => inFlight.inc(),
    requestFinished(sample) {
      inFlight.dec();
      const tenant = tenantLabel(sample.tenantId);
      const operation = operationLabel(tenant, sample.operation);
      requests.inc({ tenant, operation, outcome: sample.outcome });
      requestDuration.observe({ tenant, operation }, sample.durationMs / 1000);
    },
    backendCall(sample) {
      const tenant = tenantLabel(sample.tenantId);
      const { kind, backend } = sample;
      backendCalls.inc({ tenant, kind, backend, target: sample.target, outcome: sample.outcome });
      backendDuration.observe({ tenant, kind, backend }, sample.durationMs / 1000);
      batchRows.observe({ tenant, kind, backend }, sample.rows);
    },
    cacheLookup(sample) {
      const tenant = tenantLabel(sample.tenantId);
      const { model } = sample;
      if (sample.failed) {
        cache.inc({ tenant, model, result: 'error' }, sample.hits + sample.misses);
        return;
      }
      if (sample.hits > 0) cache.inc({ tenant, model, result: 'hit' }, sample.hits);
      if (sample.misses > 0) cache.inc({ tenant, model, result: 'miss' }, sample.misses);
    },
    rateLimited(tenantId, reason) {
      const label = reason !== undefined && REASON.test(reason) ? reason : 'OTHER';
      limited.inc({ tenant: tenantLabel(tenantId), reason: label });
    },
    limiterStoreError: (operation) => storeErrors.inc({ operation }),
    watchBreaker(backend, state) {
      breakers.set(backend, state);
    },
    breakerTransition: (backend, to) => transitions.inc({ backend, to }),
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
