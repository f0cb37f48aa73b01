import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTracing, otlpTracesUrl, type Tracing } from '../../../src/telemetry/tracing.js';
import { CUSTOMERS_QUERY, eventually, type ObservedStack, startObservedStack } from './stack.js';

interface ExportRequest {
  path: string;
  contentType: string | undefined;
  authorization: string | undefined;
  body: {
    resourceSpans: {
      resource: { attributes: { key: string; value: { stringValue?: string } }[] };
      scopeSpans: { spans: { name: string; traceId: string; attributes: { key: string }[] }[] }[];
    }[];
  };
}

/** A local OTLP/HTTP collector: records every export request and answers 200. */
async function startCollector() {
  const received: ExportRequest[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        authorization: req.headers.authorization,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as ExportRequest['body'],
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

let collector: Awaited<ReturnType<typeof startCollector>>;
let tracing: Tracing;
let stack: ObservedStack;

beforeAll(async () => {
  collector = await startCollector();
  tracing = createTracing({
    serviceName: 'atrium-otlp-test',
    // As src/main.ts builds it from OTEL_EXPORTER_OTLP_ENDPOINT or telemetry.tracing.
    otlpTracesUrl: otlpTracesUrl({ otlpEndpoint: collector.endpoint }),
    headers: { authorization: 'Bearer collector-key' },
    // Long enough that only forceFlush exports: the test counts export requests.
    exportDelayMs: 60_000,
    exportTimeoutMs: 1_500,
  });
  stack = await startObservedStack({ tracing });
});

afterAll(async () => {
  await stack?.stop();
  await tracing?.shutdown();
  await collector?.close();
});

async function tracedRequest(requestId: string): Promise<void> {
  const answer = await stack.gateway.query(CUSTOMERS_QUERY, {
    token: stack.tokens.a,
    variables: { first: 3 },
    headers: { 'x-request-id': requestId },
  });
  expect(answer.status).toBe(200);
  // The request span ends with the request's log line.
  await eventually(() =>
    expect(stack.log.requests().some((l) => l.requestId === requestId)).toBe(true),
  );
}

describe('OTLP/HTTP export to a collector', () => {
  it('sends the spans of each request in one export request to /v1/traces', async () => {
    // What the gateway did before traffic (each tenant's catalog check at start) goes first.
    await tracing.forceFlush();
    collector.received.length = 0;
    await tracedRequest('otlp-1');
    await tracing.forceFlush();
    expect(collector.received).toHaveLength(1);
    await tracedRequest('otlp-2');
    await tracing.forceFlush();
    expect(collector.received).toHaveLength(2);
    // Nothing pending: another flush sends nothing.
    await tracing.forceFlush();
    expect(collector.received).toHaveLength(2);

    const [first] = collector.received;
    expect(first!.path).toBe('/v1/traces');
    expect(first!.contentType).toBe('application/json');
    expect(first!.authorization).toBe('Bearer collector-key');
    const resource = first!.body.resourceSpans[0]!.resource.attributes;
    expect(resource).toContainEqual({
      key: 'service.name',
      value: { stringValue: 'atrium-otlp-test' },
    });
    const spans = first!.body.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
    expect(spans.map((s) => s.name).sort()).toEqual(
      ['POST /graphql', 'auth', 'data Query.customers', 'infer churn', 'limits'].sort(),
    );
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
    expect(spans[0]!.traceId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('a collector outage never affects requests', async () => {
    await collector.close();
    await tracedRequest('otlp-down');
    // The failed export is reported to whoever flushes (within the export timeout) and dropped;
    // shutting down still succeeds.
    await expect(tracing.forceFlush()).rejects.toThrow();
    expect(collector.received).toHaveLength(2);
    await expect(tracing.shutdown()).resolves.toBeUndefined();
  });
});
