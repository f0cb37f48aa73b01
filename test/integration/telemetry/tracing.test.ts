import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTracing } from '../../../src/telemetry/tracing.js';
import { CUSTOMERS_QUERY, eventually, type ObservedStack, startObservedStack } from './stack.js';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_ID = 'b7ad6b7169203331';

const exporter = new InMemorySpanExporter();
const tracing = createTracing({ serviceName: 'atrium-test', exporter, processor: 'simple' });
let stack: ObservedStack;

beforeAll(async () => {
  stack = await startObservedStack({ tracing });
});

afterAll(async () => {
  await stack?.stop();
  await tracing.shutdown();
});

beforeEach(() => exporter.reset());

/** The spans of the request with this id, once its server span has ended. */
function requestSpans(requestId: string): Promise<{ root: ReadableSpan; all: ReadableSpan[] }> {
  return eventually(() => {
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.attributes['atrium.request_id'] === requestId);
    expect(root).toBeDefined();
    const traceId = root!.spanContext().traceId;
    return { root: root!, all: spans.filter((s) => s.spanContext().traceId === traceId) };
  });
}

function childrenOf(parent: ReadableSpan, spans: ReadableSpan[]): ReadableSpan[] {
  return spans.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
}

describe('OpenTelemetry spans', () => {
  it('continue an incoming traceparent: request → auth, limits, data statement, infer call', async () => {
    const answer = await stack.gateway.query(CUSTOMERS_QUERY, {
      token: stack.tokens.a,
      variables: { first: 4 },
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'x-request-id': 'traced-1' },
    });
    expect(answer.status).toBe(200);
    expect(answer.body.errors).toBeUndefined();
    const { root, all } = await requestSpans('traced-1');

    expect(root.name).toBe('POST /graphql');
    expect(root.kind).toBe(SpanKind.SERVER);
    expect(root.spanContext().traceId).toBe(TRACE_ID);
    expect(root.parentSpanContext?.spanId).toBe(PARENT_ID);
    expect(root.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/graphql',
      'http.response.status_code': 200,
      'atrium.tenant': stack.tenants.a,
      'graphql.operation.name': 'Customers',
      'graphql.operation.type': 'query',
    });
    expect(root.status.code).toBe(SpanStatusCode.UNSET);

    const children = childrenOf(root, all);
    const names = children.map((s) => s.name).sort();
    expect(names).toEqual(['auth', 'data Query.customers', 'infer churn', 'limits']);
    const data = children.find((s) => s.name === 'data Query.customers')!;
    expect(data.kind).toBe(SpanKind.CLIENT);
    expect(data.attributes).toMatchObject({
      'db.system.name': 'postgresql',
      'db.operation.name': 'Query.customers',
      'atrium.tenant': stack.tenants.a,
      'atrium.data.strategy': 'schema',
    });
    const infer = children.find((s) => s.name === 'infer churn')!;
    expect(infer.attributes).toMatchObject({
      'atrium.tenant': stack.tenants.a,
      'atrium.inference.backend': 'models',
      'atrium.inference.version': '2',
      'atrium.inference.rows': 4,
    });
    // Backend spans sit inside the request span.
    for (const child of [data, infer]) {
      const start = child.startTime[0] * 1e9 + child.startTime[1];
      const rootStart = root.startTime[0] * 1e9 + root.startTime[1];
      const end = child.endTime[0] * 1e9 + child.endTime[1];
      const rootEnd = root.endTime[0] * 1e9 + root.endTime[1];
      expect(start).toBeGreaterThanOrEqual(rootStart);
      expect(end).toBeLessThanOrEqual(rootEnd);
    }
    // The model server was called as part of this trace, under the gateway's request span.
    const served = (await (await fetch(`${stack.modelServer.url}/stats`)).json()) as {
      recentCalls: { requestId?: string; traceparent?: string }[];
    };
    const calls = served.recentCalls.filter((c) => c.requestId === 'traced-1');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.traceparent).toBe(`00-${TRACE_ID}-${root.spanContext().spanId}-01`);

    // The log line names the same trace.
    const line = await eventually(() => {
      const found = stack.log.requests().find((l) => l.requestId === 'traced-1');
      expect(found).toBeDefined();
      return found!;
    });
    expect(line.traceId).toBe(TRACE_ID);
  });

  it('start a new trace without traceparent; concurrent requests keep their own spans', async () => {
    await Promise.all(
      ['a', 'b'].map((who) =>
        stack.gateway.query(CUSTOMERS_QUERY, {
          token: who === 'a' ? stack.tokens.a : stack.tokens.b,
          variables: { first: 2 },
          headers: { 'x-request-id': `concurrent-${who}` },
        }),
      ),
    );
    const a = await requestSpans('concurrent-a');
    const b = await requestSpans('concurrent-b');
    expect(a.root.parentSpanContext).toBeUndefined();
    expect(a.root.spanContext().traceId).not.toBe(b.root.spanContext().traceId);
    for (const [trace, tenant] of [
      [a, stack.tenants.a],
      [b, stack.tenants.b],
    ] as const) {
      const data = childrenOf(trace.root, trace.all).filter((s) => s.name.startsWith('data '));
      expect(data.length).toBeGreaterThan(0);
      for (const span of data) expect(span.attributes['atrium.tenant']).toBe(tenant);
    }
  });

  it('mark a refused request: the auth span fails, the request span carries the code', async () => {
    const answer = await stack.gateway.query('{ viewer { subject } }', {
      token: 'not-a-jwt',
      headers: { 'x-request-id': 'traced-401' },
    });
    expect(answer.status).toBe(401);
    const { root, all } = await requestSpans('traced-401');
    expect(root.attributes['http.response.status_code']).toBe(401);
    expect(root.attributes['error.type']).toBe('UNAUTHENTICATED');
    const auth = childrenOf(root, all).find((s) => s.name === 'auth')!;
    expect(auth.status.code).toBe(SpanStatusCode.ERROR);
    expect(auth.attributes['error.type']).toBe('UNAUTHENTICATED');
    expect(childrenOf(root, all).map((s) => s.name)).toEqual(['auth']);
  });
});
