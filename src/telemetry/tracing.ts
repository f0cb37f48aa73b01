import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingHttpHeaders } from 'node:http';
import {
  type Context,
  defaultTextMapGetter,
  isSpanContextValid,
  ROOT_CONTEXT,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';

export const TRACER_NAME = 'atrium';
/** How long spans wait in the batch before an export; the SDK's default is 5 s. */
export const DEFAULT_EXPORT_DELAY_MS = 1_000;
export const DEFAULT_EXPORT_TIMEOUT_MS = 10_000;

export interface TracingOptions {
  /** `service.name` of every span. */
  serviceName: string;
  serviceVersion?: string | undefined;
  /** Full OTLP/HTTP traces URL (`…/v1/traces`); see `otlpTracesUrl`. */
  otlpTracesUrl?: string | undefined;
  /** Extra headers sent to the collector (e.g. an API key). */
  headers?: Readonly<Record<string, string>> | undefined;
  /** Export here instead of OTLP (tests: an `InMemorySpanExporter`). */
  exporter?: SpanExporter | undefined;
  /**
   * `batch` (default) exports in the background every `exportDelayMs`; `simple` exports each
   * span as it ends (tests, where an assertion must not wait for a batch).
   */
  processor?: 'batch' | 'simple' | undefined;
  exportDelayMs?: number | undefined;
  /** Limit of one export, retries included. Default 10 s. */
  exportTimeoutMs?: number | undefined;
  /** Share of new root traces recorded (0..1). A sampled incoming parent is always followed. */
  sampleRatio?: number | undefined;
}

/**
 * The gateway's tracer and the request context it propagates. The active context is kept in
 * an `AsyncLocalStorage` of this instance rather than OpenTelemetry's global context manager,
 * so two gateways in one process (tests) never see each other's spans, and nothing global is
 * registered. When tracing is off, `enabled` is false and callers skip span work altogether.
 */
export interface Tracing {
  readonly enabled: boolean;
  readonly tracer: Tracer;
  /** The remote parent named by W3C `traceparent`/`tracestate`; ROOT_CONTEXT when absent or bad. */
  extract(headers: IncomingHttpHeaders): Context;
  /** The context of the request running now (across awaits); ROOT_CONTEXT outside one. */
  active(): Context;
  /** Runs `fn` with `context` active. */
  with<T>(context: Context, fn: () => T): T;
  /** Exports what is buffered; rejects when the export fails. */
  forceFlush(): Promise<void>;
  /** Flushes and stops exporting. Never rejects: a collector outage must not fail a shutdown. */
  shutdown(): Promise<void>;
}

const NOOP_TRACER = trace.getTracer('noop');

/** Tracing turned off: no spans, no context propagation, no cost. */
export const NOOP_TRACING: Tracing = {
  enabled: false,
  tracer: NOOP_TRACER,
  extract: () => ROOT_CONTEXT,
  active: () => ROOT_CONTEXT,
  with: (_context, fn) => fn(),
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

/**
 * The traces URL from OpenTelemetry's two settings, as the OTLP exporter specification reads
 * them: the signal-specific endpoint is used as is; the base endpoint gets `/v1/traces`.
 */
export function otlpTracesUrl(settings: {
  otlpEndpoint?: string | undefined;
  otlpTracesEndpoint?: string | undefined;
}): string | undefined {
  if (settings.otlpTracesEndpoint) return settings.otlpTracesEndpoint;
  if (!settings.otlpEndpoint) return undefined;
  return `${settings.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The ids of a valid W3C `traceparent` header (for log correlation when tracing is off). */
export function parseTraceparent(
  header: string | undefined,
): { traceId: string; spanId: string; sampled: boolean } | undefined {
  if (header === undefined || header.length > 512) return undefined;
  const match = TRACEPARENT.exec(header.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  return { traceId: traceId!, spanId: spanId!, sampled: (parseInt(flags!, 16) & 1) === 1 };
}

/** Which request an upstream call is made for: what ties the call to it in logs and traces. */
export interface RequestOrigin {
  readonly requestId: string;
  /** The W3C trace context the call continues (see {@link upstreamTraceparent}). */
  readonly traceparent?: string | undefined;
}

/** Request ids one upstream call names at most: a batch merging more names its first ones. */
export const MAX_ORIGIN_REQUEST_IDS = 16;

/**
 * The `traceparent` a request's upstream calls carry: the gateway's own span when `context`
 * holds one (tracing on: the upstream's spans become children of the request span), else the
 * caller's header as it came, if valid (tracing off: the caller's trace goes on through the
 * gateway), else none.
 */
export function upstreamTraceparent(
  incoming: string | readonly string[] | undefined,
  context?: Context,
): string | undefined {
  const span = context === undefined ? undefined : trace.getSpanContext(context);
  if (span !== undefined && isSpanContextValid(span)) {
    return `00-${span.traceId}-${span.spanId}-${(span.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  }
  const header = typeof incoming === 'string' ? incoming : incoming?.[0];
  return parseTraceparent(header) === undefined ? undefined : header?.trim();
}

/**
 * The headers that tie one upstream call to the requests it serves: `x-request-id`, their
 * distinct ids comma-separated (at most {@link MAX_ORIGIN_REQUEST_IDS}; request ids hold no
 * comma), and `traceparent`, the first origin's when it has one. A call for one request gets
 * that request's id and trace context; a merged batch, those of all its rows' requests.
 */
export function originHeaders(origins: readonly RequestOrigin[]): Record<string, string> {
  const headers: Record<string, string> = {};
  const ids = new Set<string>();
  for (const { requestId } of origins) {
    if (ids.size === MAX_ORIGIN_REQUEST_IDS) break;
    ids.add(requestId);
  }
  if (ids.size > 0) headers['x-request-id'] = [...ids].join(',');
  const traceparent = origins[0]?.traceparent;
  if (traceparent !== undefined) headers.traceparent = traceparent;
  return headers;
}

/**
 * Tracing exported by OTLP/HTTP to `otlpTracesUrl` (or to `exporter`), or `NOOP_TRACING` when
 * neither is given.
 */
export function createTracing(options: TracingOptions): Tracing {
  const exporter =
    options.exporter ??
    (options.otlpTracesUrl
      ? new OTLPTraceExporter({
          url: options.otlpTracesUrl,
          headers: { ...options.headers },
          timeoutMillis: options.exportTimeoutMs ?? DEFAULT_EXPORT_TIMEOUT_MS,
        })
      : undefined);
  if (exporter === undefined) return NOOP_TRACING;
  const exportTimeoutMs = options.exportTimeoutMs ?? DEFAULT_EXPORT_TIMEOUT_MS;
  const ratio = options.sampleRatio ?? 1;
  if (!(ratio >= 0 && ratio <= 1)) {
    throw new TypeError(`createTracing: sampleRatio must be in [0, 1], got ${ratio}`);
  }
  const processor =
    options.processor === 'simple'
      ? new SimpleSpanProcessor(exporter)
      : new BatchSpanProcessor(exporter, {
          scheduledDelayMillis: options.exportDelayMs ?? DEFAULT_EXPORT_DELAY_MS,
          exportTimeoutMillis: exportTimeoutMs,
        });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': options.serviceName,
      ...(options.serviceVersion ? { 'service.version': options.serviceVersion } : {}),
    }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer(TRACER_NAME, options.serviceVersion);
  const propagator = new W3CTraceContextPropagator();
  const store = new AsyncLocalStorage<Context>();
  let stopped: Promise<void> | undefined;

  return {
    enabled: true,
    tracer,
    extract(headers) {
      if (headers.traceparent === undefined) return ROOT_CONTEXT;
      return propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
    },
    active: () => store.getStore() ?? ROOT_CONTEXT,
    with: (context, fn) => store.run(context, fn),
    forceFlush: () => provider.forceFlush(),
    shutdown() {
      stopped ??= provider.shutdown().catch(() => undefined);
      return stopped;
    },
  };
}
