import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import {
  createTracing,
  MAX_ORIGIN_REQUEST_IDS,
  NOOP_TRACING,
  originHeaders,
  otlpTracesUrl,
  parseTraceparent,
  upstreamTraceparent,
} from '../../../src/telemetry/tracing.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

describe('tracing', () => {
  it('is a no-op when no endpoint or exporter is configured', () => {
    const tracing = createTracing({ serviceName: 'atrium' });
    expect(tracing).toBe(NOOP_TRACING);
    expect(tracing.enabled).toBe(false);
    expect(tracing.extract({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` })).toBe(ROOT_CONTEXT);
    const span = tracing.tracer.startSpan('x');
    expect(span.isRecording()).toBe(false);
  });

  it('builds the traces URL the way the OTLP exporter specification does', () => {
    expect(otlpTracesUrl({})).toBeUndefined();
    expect(otlpTracesUrl({ otlpEndpoint: 'http://collector:4318' })).toBe(
      'http://collector:4318/v1/traces',
    );
    expect(otlpTracesUrl({ otlpEndpoint: 'http://collector:4318/otlp/' })).toBe(
      'http://collector:4318/otlp/v1/traces',
    );
    expect(
      otlpTracesUrl({
        otlpEndpoint: 'http://collector:4318',
        otlpTracesEndpoint: 'http://traces.example/custom',
      }),
    ).toBe('http://traces.example/custom');
  });

  it('parses W3C traceparent headers and refuses malformed ones', () => {
    expect(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-01`)).toEqual({
      traceId: TRACE_ID,
      spanId: PARENT_ID,
      sampled: true,
    });
    expect(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-00`)?.sampled).toBe(false);
    // A future version may append fields; version 00 may not.
    expect(parseTraceparent(`01-${TRACE_ID}-${PARENT_ID}-01-extra`)?.traceId).toBe(TRACE_ID);
    for (const bad of [
      undefined,
      '',
      `00-${TRACE_ID}-${PARENT_ID}-01-extra`,
      `ff-${TRACE_ID}-${PARENT_ID}-01`,
      `00-${'0'.repeat(32)}-${PARENT_ID}-01`,
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
      `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`,
      `00-${TRACE_ID}-${PARENT_ID}`,
      'x'.repeat(600),
    ]) {
      expect(parseTraceparent(bad)).toBeUndefined();
    }
  });

  it("sends upstream the gateway's span when one is active, else the caller's valid header", () => {
    const incoming = `00-${TRACE_ID}-${PARENT_ID}-01`;
    expect(upstreamTraceparent(incoming)).toBe(incoming);
    expect(upstreamTraceparent([` ${incoming} `, 'other'])).toBe(incoming);
    expect(upstreamTraceparent('00-nonsense-01')).toBeUndefined();
    expect(upstreamTraceparent(undefined)).toBeUndefined();
    // Tracing off: the context holds no span, and the caller's header goes on.
    expect(upstreamTraceparent(incoming, ROOT_CONTEXT)).toBe(incoming);

    const tracing = createTracing({
      serviceName: 'atrium',
      exporter: new InMemorySpanExporter(),
      processor: 'simple',
    });
    const parent = tracing.extract({ traceparent: incoming });
    const span = tracing.tracer.startSpan('POST /graphql', {}, parent);
    const own = upstreamTraceparent(incoming, trace.setSpan(parent, span));
    expect(own).toBe(`00-${TRACE_ID}-${span.spanContext().spanId}-01`);
    expect(span.spanContext().spanId).not.toBe(PARENT_ID);
    span.end();
  });

  it('names the distinct request ids of an upstream call (at most 16) and the first trace context', () => {
    expect(originHeaders([])).toEqual({});
    expect(originHeaders([{ requestId: 'a' }])).toEqual({ 'x-request-id': 'a' });
    const first = `00-${TRACE_ID}-${PARENT_ID}-01`;
    expect(
      originHeaders([
        { requestId: 'a', traceparent: first },
        { requestId: 'b', traceparent: `00-${'1'.repeat(32)}-${PARENT_ID}-01` },
        { requestId: 'a', traceparent: first },
      ]),
    ).toEqual({ 'x-request-id': 'a,b', traceparent: first });
    // The first origin's trace context only, even when a later one has one.
    expect(originHeaders([{ requestId: 'a' }, { requestId: 'b', traceparent: first }])).toEqual({
      'x-request-id': 'a,b',
    });
    const many = Array.from({ length: 40 }, (_, i) => ({ requestId: `r${i % 20}` }));
    const ids = originHeaders(many)['x-request-id']!.split(',');
    expect(MAX_ORIGIN_REQUEST_IDS).toBe(16);
    expect(ids).toEqual(Array.from({ length: 16 }, (_, i) => `r${i}`));
  });

  it('continues an incoming trace and keeps the request context across awaits', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = createTracing({ serviceName: 'atrium-test', exporter, processor: 'simple' });
    expect(tracing.enabled).toBe(true);
    const parent = tracing.extract({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` });
    const root = tracing.tracer.startSpan('request', {}, parent);
    const context = trace.setSpan(parent, root);
    await tracing.with(context, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      tracing.tracer.startSpan('child', {}, tracing.active()).end();
    });
    root.end();
    expect(tracing.active()).toBe(ROOT_CONTEXT);
    const [child, request] = exporter.getFinishedSpans();
    expect(request?.spanContext().traceId).toBe(TRACE_ID);
    expect(request?.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(child?.parentSpanContext?.spanId).toBe(request?.spanContext().spanId);
    expect(request?.resource.attributes['service.name']).toBe('atrium-test');
    await tracing.shutdown();
  });

  it('follows the parent sampling decision and the ratio for new traces', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = createTracing({
      serviceName: 'atrium',
      exporter,
      processor: 'simple',
      sampleRatio: 0,
    });
    tracing.tracer.startSpan('new root', {}, ROOT_CONTEXT).end();
    const sampledParent = tracing.extract({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` });
    tracing.tracer.startSpan('continued', {}, sampledParent).end();
    const unsampled = tracing.extract({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` });
    tracing.tracer.startSpan('not sampled upstream', {}, unsampled).end();
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['continued']);
    expect(() => createTracing({ serviceName: 'a', exporter, sampleRatio: 2 })).toThrow(
      /sampleRatio must be in \[0, 1\]/,
    );
    await tracing.shutdown();
  });

  it('keeps two instances apart: no global context manager', async () => {
    const a = createTracing({ serviceName: 'a', exporter: new InMemorySpanExporter() });
    const b = createTracing({ serviceName: 'b', exporter: new InMemorySpanExporter() });
    const span = a.tracer.startSpan('in a');
    await a.with(trace.setSpan(ROOT_CONTEXT, span), async () => {
      expect(trace.getSpan(a.active())).toBe(span);
      expect(b.active()).toBe(ROOT_CONTEXT);
    });
    span.end();
    await Promise.all([a.shutdown(), b.shutdown()]);
  });
});
