/**
 * Metrics, the per-request log line and spans, attached to the request path through hooks
 * only: the HTTP handler's `observer`, an Apollo plugin, the data source's `onQuery`, the
 * predictor's `onInfer`, the prediction loaders' `onCacheLookup`, the breakers'
 * `onStateChange`, and decorators around the verifier and the admission control.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApolloServerPlugin, GraphQLRequestListener } from '@apollo/server';
import { type Context, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { TokenVerifier } from '../auth/verify-token.js';
import type { QueryEvent } from '../backends/data/types.js';
import type { CircuitState } from '../backends/resilience/breaker.js';
import type { InferEvent } from '../backends/inference/predictor.js';
import { isGatewayError } from '../errors.js';
import type { GatewayContext } from '../graphql/context.js';
import type { AdmissionControl } from '../limits/admission.js';
import type { PredictionCacheEvent } from '../sources/inference/prediction-loaders.js';
import { type Logger, REQUEST_LOG_MESSAGE, requestLogger } from '../telemetry/logger.js';
import { type GatewayMetrics, OK_OUTCOME } from '../telemetry/metrics.js';
import {
  NOOP_TRACING,
  parseTraceparent,
  type Tracing,
  upstreamTraceparent,
} from '../telemetry/tracing.js';
import type { Tenant } from '../tenancy/tenant.js';
import { clientCode } from './format-error.js';

/** What the HTTP handler reports about one GraphQL request. */
export interface RequestObservation {
  /** Runs the request inside its trace context (a plain call when tracing is off). */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** The `traceparent` the request's upstream calls carry (see `upstreamTraceparent`). */
  readonly traceparent: string | undefined;
  /** The verified tenant, as soon as it is known (before limits run). */
  readonly onTenant: (tenant: Tenant) => void;
  /** The request's GraphQL context, so the Apollo plugin can report the operation. */
  bind(context: GatewayContext): void;
  /** The request ended with this error before Apollo answered (auth, limits, body). */
  fail(error: unknown): void;
}

/**
 * Observes GraphQL requests: `start` when one arrives; the observation ends by itself when the
 * response closes (finished or aborted), recording metrics, the span and the log line.
 */
export interface RequestObserver {
  start(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    /** The route template (`/graphql`, `/t/{tenant}/graphql`), never the raw path. */
    route: string,
  ): RequestObservation;
}

export interface ObservabilityOptions {
  /** The per-request line goes here (the gateway's logger). */
  logger: Logger;
  /** Omitted → no metrics are recorded. */
  metrics?: GatewayMetrics | undefined;
  /** Omitted → `NOOP_TRACING`. */
  tracing?: Tracing | undefined;
}

export interface Observability {
  readonly observer: RequestObserver;
  /** Reports the operation name and type and the GraphQL error codes of each request. */
  readonly plugin: ApolloServerPlugin<GatewayContext>;
  /** For a DataSource's `onQuery`; `backend` names it in metrics (`postgres`, `pglite`). */
  onQuery(backend: string): (event: QueryEvent) => void;
  /** For the predictor's `onInfer`. */
  readonly onInfer: (event: InferEvent) => void;
  /** For the gateway's `onPredictionCacheLookup`. */
  readonly onPredictionCacheLookup: (event: PredictionCacheEvent) => void;
  /** For a limiter's `onStoreError` (counted; the caller still logs). */
  readonly onLimiterStoreError: (error: unknown, operation: string) => void;
  /** For a breaker's `onStateChange`: counted and logged. */
  onBreakerStateChange(backend: string): (from: CircuitState, to: CircuitState) => void;
  /** Exposes a backend's breaker state at every scrape. */
  watchBreaker(backend: string, breaker: { state(): CircuitState }): void;
  /** The verifier with an `auth` span around each verification (itself when tracing is off). */
  traceVerifier<V extends Pick<TokenVerifier, 'verifyAuthorizationHeader'>>(
    verifier: V,
  ): Pick<TokenVerifier, 'verifyAuthorizationHeader'>;
  /** The admission control with a `limits` span and the rate-limited counter. */
  instrumentAdmission(admission: AdmissionControl): AdmissionControl;
}

/** For requests that ended without a coded error (e.g. Apollo's own 400s and 405s). */
function outcomeOfStatus(status: number): string {
  if (status < 400) return OK_OUTCOME;
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 429) return 'RATE_LIMITED';
  if (status < 500) return 'BAD_USER_INPUT';
  return 'INTERNAL_SERVER_ERROR';
}

const MAX_LOGGED_OPERATION = 100;

export function createObservability(options: ObservabilityOptions): Observability {
  const { logger, metrics } = options;
  const requestLog = requestLogger(logger);
  const tracing = options.tracing ?? NOOP_TRACING;
  const { tracer } = tracing;
  // Finds the request a GraphQL context belongs to without adding a field to GatewayContext.
  // Apollo hands plugins a shallow clone of the context we built, so the key is the request's
  // own `loaders` object, which the clone shares. Entries go with their request.
  const records = new WeakMap<object, Observation>();

  class Observation implements RequestObservation {
    readonly started = performance.now();
    tenantId: string | undefined = undefined;
    /** `undefined`: not resolved; `null`: anonymous. */
    operation: string | null | undefined = undefined;
    operationType: string | undefined = undefined;
    codes: string[] | undefined = undefined;
    span: Span | undefined = undefined;
    context: Context | undefined = undefined;

    constructor(
      readonly req: IncomingMessage,
      readonly res: ServerResponse,
      readonly requestId: string,
      readonly route: string,
    ) {}

    readonly onTenant = (tenant: Tenant): void => {
      this.tenantId = tenant.id;
    };

    /** Bound once per request; runs when the response closes. */
    readonly finish = (): void => {
      try {
        this.end();
      } catch (error) {
        logger.error({ err: error, requestId: this.requestId }, 'observing a request failed');
      }
    };

    run<T>(fn: () => Promise<T>): Promise<T> {
      return this.context === undefined ? fn() : tracing.with(this.context, fn);
    }

    get traceparent(): string | undefined {
      return upstreamTraceparent(this.req.headers.traceparent, this.context);
    }

    bind(context: GatewayContext): void {
      records.set(context.loaders, this);
    }

    fail(error: unknown): void {
      this.addCode(clientCode(error));
    }

    addCode(code: string): void {
      if (this.codes === undefined) this.codes = [code];
      else if (!this.codes.includes(code)) this.codes.push(code);
    }

    end(): void {
      const durationMs = performance.now() - this.started;
      const { res, span } = this;
      const status = res.statusCode;
      const aborted = !res.writableFinished;
      const outcome = this.codes?.[0] ?? outcomeOfStatus(status);
      metrics?.requestFinished({
        tenantId: this.tenantId,
        operation: this.operation,
        outcome,
        durationMs,
      });
      let traceId: string | undefined;
      if (span !== undefined) {
        traceId = span.spanContext().traceId;
        span.setAttribute('http.response.status_code', status);
        if (this.tenantId !== undefined) span.setAttribute('atrium.tenant', this.tenantId);
        if (typeof this.operation === 'string') {
          span.setAttribute('graphql.operation.name', this.operation);
        }
        if (this.operationType !== undefined) {
          span.setAttribute('graphql.operation.type', this.operationType);
        }
        if (outcome !== OK_OUTCOME) span.setAttribute('error.type', outcome);
        if (this.codes !== undefined) span.setAttribute('atrium.error_codes', this.codes);
        // HTTP server semantics: only 5xx marks the server span as failed.
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
        span.end();
      } else {
        const header = this.req.headers.traceparent;
        traceId = parseTraceparent(typeof header === 'string' ? header : undefined)?.traceId;
      }
      const line = {
        requestId: this.requestId,
        traceId,
        method: this.req.method,
        route: this.route,
        tenant: this.tenantId,
        operation:
          typeof this.operation === 'string'
            ? this.operation.slice(0, MAX_LOGGED_OPERATION)
            : this.operation === null
              ? '(anonymous)'
              : undefined,
        operationType: this.operationType,
        status,
        outcome,
        errors: this.codes,
        durationMs: Math.round(durationMs * 10) / 10,
        aborted: aborted || undefined,
      };
      if (status >= 500) requestLog.error(line, REQUEST_LOG_MESSAGE);
      else requestLog.info(line, REQUEST_LOG_MESSAGE);
    }
  }

  const observer: RequestObserver = {
    start(req, res, requestId, route) {
      const observation = new Observation(req, res, requestId, route);
      metrics?.requestStarted();
      if (tracing.enabled) {
        const parent = tracing.extract(req.headers);
        const span = tracer.startSpan(
          `${req.method ?? 'GET'} ${route}`,
          {
            kind: SpanKind.SERVER,
            attributes: {
              'http.request.method': req.method ?? 'GET',
              'http.route': route,
              'atrium.request_id': requestId,
            },
          },
          parent,
        );
        observation.span = span;
        observation.context = trace.setSpan(parent, span);
      }
      res.once('close', observation.finish);
      return observation;
    },
  };

  // One listener object for every request: the request is found through the context.
  const listener: GraphQLRequestListener<GatewayContext> = {
    async didResolveOperation({ contextValue, operationName, operation }) {
      const observation = records.get(contextValue.loaders);
      if (observation === undefined) return;
      observation.operation = operationName;
      observation.operationType = operation?.operation;
    },
    async didEncounterErrors({ contextValue, errors }) {
      const observation = records.get(contextValue.loaders);
      if (observation === undefined) return;
      for (const error of errors) observation.addCode(clientCode(error));
    },
  };
  const plugin: ApolloServerPlugin<GatewayContext> = {
    async requestDidStart({ contextValue }) {
      return records.has(contextValue.loaders) ? listener : undefined;
    },
  };

  /** A span that ended `durationMs` ago just now, under the running request's span. */
  function pastSpan(name: string, durationMs: number, attributes: Record<string, string | number>) {
    const end = performance.now();
    return {
      span: tracer.startSpan(
        name,
        { kind: SpanKind.CLIENT, startTime: end - durationMs, attributes },
        tracing.active(),
      ),
      end,
    };
  }

  async function inSpan<T>(name: string, tenantId: string | undefined, fn: () => Promise<T>) {
    const span = tracer.startSpan(name, { kind: SpanKind.INTERNAL }, tracing.active());
    if (tenantId !== undefined) span.setAttribute('atrium.tenant', tenantId);
    try {
      return await fn();
    } catch (error) {
      const code = clientCode(error);
      span.setAttribute('error.type', code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: code });
      throw error;
    } finally {
      span.end();
    }
  }

  return {
    observer,
    plugin,

    onQuery(backend) {
      return (event) => {
        metrics?.backendCall({
          tenantId: event.tenantId,
          kind: 'data',
          backend,
          target: event.operation,
          outcome: event.ok ? OK_OUTCOME : 'error',
          durationMs: event.durationMs,
          rows: event.rowCount,
        });
        if (!tracing.enabled) return;
        const { span, end } = pastSpan(`data ${event.operation}`, event.durationMs, {
          'db.system.name': 'postgresql',
          'db.operation.name': event.operation,
          'db.response.returned_rows': event.rowCount,
          'atrium.tenant': event.tenantId,
          'atrium.data.backend': backend,
          'atrium.data.strategy': event.strategy,
          'atrium.data.round_trips': event.roundTrips,
        });
        if (!event.ok) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end(end);
      };
    },

    onInfer(event) {
      const outcome = event.outcome === 'success' ? OK_OUTCOME : (event.errorCode ?? 'error');
      metrics?.backendCall({
        tenantId: event.tenantId,
        kind: 'inference',
        backend: event.backend,
        target: `${event.model}/${event.version}`,
        outcome,
        durationMs: event.durationMs,
        rows: event.rows,
      });
      if (!tracing.enabled) return;
      const { span, end } = pastSpan(`infer ${event.model}`, event.durationMs, {
        'atrium.tenant': event.tenantId,
        'atrium.inference.backend': event.backend,
        'atrium.inference.model': event.model,
        'atrium.inference.version': event.version,
        'atrium.inference.rows': event.rows,
      });
      if (outcome !== OK_OUTCOME) {
        span.setAttribute('error.type', outcome);
        span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      }
      span.end(end);
    },

    onPredictionCacheLookup(event) {
      metrics?.cacheLookup(event);
    },

    onLimiterStoreError(_error, operation) {
      metrics?.limiterStoreError(operation);
    },

    onBreakerStateChange(backend) {
      return (from, to) => {
        metrics?.breakerTransition(backend, to);
        const fields = { backend, from, to };
        if (to === 'open') logger.warn(fields, 'circuit breaker opened');
        else logger.info(fields, 'circuit breaker state changed');
      };
    },

    watchBreaker(backend, breaker) {
      metrics?.watchBreaker(backend, () => breaker.state());
    },

    traceVerifier(verifier) {
      if (!tracing.enabled) return verifier;
      return {
        verifyAuthorizationHeader: (header) =>
          inSpan('auth', undefined, () => verifier.verifyAuthorizationHeader(header)),
      };
    },

    instrumentAdmission(admission) {
      const admit: AdmissionControl['admit'] = tracing.enabled
        ? (tenant, principal) =>
            inSpan('limits', tenant.id, () => admission.admit(tenant, principal))
        : (tenant, principal) => admission.admit(tenant, principal);
      return {
        async admit(tenant, principal) {
          try {
            return await admit(tenant, principal);
          } catch (error) {
            if (isGatewayError(error) && error.code === 'RATE_LIMITED') {
              const reason = error.extensions.reason;
              metrics?.rateLimited(tenant.id, typeof reason === 'string' ? reason : undefined);
            }
            throw error;
          }
        },
      };
    },
  };
}
