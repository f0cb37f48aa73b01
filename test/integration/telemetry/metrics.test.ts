import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CUSTOMERS_QUERY,
  eventually,
  type ObservedStack,
  sample,
  startObservedStack,
} from './stack.js';

let stack: ObservedStack;

beforeAll(async () => {
  stack = await startObservedStack();
});

afterAll(async () => {
  await stack?.stop();
});

describe('GET /metrics after traffic from two tenants', () => {
  it('shows each tenant’s requests, backend calls, batch sizes, cache and refusals', async () => {
    const { gateway, tokens, tenants } = stack;
    const ask = (token: string) =>
      gateway.query(CUSTOMERS_QUERY, { token, variables: { first: 5 } });

    // Tenant a twice (the second answer comes from the prediction cache), tenant b once.
    for (const token of [tokens.a, tokens.a, tokens.b]) {
      const answer = await ask(token);
      expect(answer.status).toBe(200);
      expect(answer.body.errors).toBeUndefined();
    }
    // Refusals: no token at all, and the busy tenant past its rate limit.
    expect((await gateway.query('{ viewer { subject } }', { token: null })).status).toBe(401);
    const busy = [];
    for (let i = 0; i < 4; i++) busy.push((await ask(tokens.busy)).status);
    expect(busy.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);

    const { status, contentType, body } = await eventually(async () => {
      const scraped = await stack.scrape();
      expect(
        sample(
          scraped.body,
          `atrium_graphql_requests_total{tenant="${tenants.b}",operation="Customers",outcome="ok"}`,
        ),
      ).toBe(1);
      return scraped;
    });
    expect(status).toBe(200);
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);

    const requests = (tenant: string, outcome: string, operation = 'Customers') =>
      sample(
        body,
        `atrium_graphql_requests_total{tenant="${tenant}",operation="${operation}",outcome="${outcome}"}`,
      );
    expect(requests(tenants.a, 'ok')).toBe(2);
    expect(requests(tenants.b, 'ok')).toBe(1);
    expect(requests('none', 'UNAUTHENTICATED', 'none')).toBe(1);
    // A rate-limited request never reaches Apollo: no operation, but its tenant is known.
    expect(requests(tenants.busy, 'RATE_LIMITED', 'none')).toBe(
      busy.filter((s) => s === 429).length,
    );
    expect(
      sample(body, `atrium_rate_limited_requests_total{tenant="${tenants.busy}",reason="RATE"}`),
    ).toBe(busy.filter((s) => s === 429).length);

    // Latency histogram per tenant and operation.
    expect(
      sample(
        body,
        `atrium_graphql_request_duration_seconds_count{tenant="${tenants.a}",operation="Customers"}`,
      ),
    ).toBe(2);
    expect(sample(body, 'atrium_graphql_requests_in_flight')).toBe(0);

    // Data: one statement per batch, labelled with the tenant.
    expect(
      sample(
        body,
        `atrium_backend_calls_total{tenant="${tenants.a}",kind="data",backend="postgres",target="Query.customers",outcome="ok"}`,
      ),
    ).toBe(2);
    expect(
      sample(
        body,
        `atrium_backend_calls_total{tenant="${tenants.b}",kind="data",backend="postgres",target="Query.customers",outcome="ok"}`,
      ),
    ).toBe(1);

    // Inference: 5 customers → one infer call of 5 rows per tenant (a's second request is cached).
    const infer = (tenant: string, target: string) =>
      sample(
        body,
        `atrium_backend_calls_total{tenant="${tenant}",kind="inference",backend="models",target="${target}",outcome="ok"}`,
      );
    expect(infer(tenants.a, 'churn/2')).toBe(1);
    expect(infer(tenants.b, 'churn/1')).toBe(1);
    const rows = (tenant: string, le: string) =>
      sample(
        body,
        `atrium_backend_batch_rows_bucket{le="${le}",tenant="${tenant}",kind="inference",backend="models"}`,
      );
    expect(rows(tenants.a, '2')).toBe(0);
    expect(rows(tenants.a, '5')).toBe(1);
    expect(
      sample(
        body,
        `atrium_backend_call_duration_seconds_count{tenant="${tenants.a}",kind="inference",backend="models"}`,
      ),
    ).toBe(1);

    // Prediction cache: a missed 5 rows, then hit 5.
    const cache = (tenant: string, result: string) =>
      sample(
        body,
        `atrium_prediction_cache_lookups_total{tenant="${tenant}",model="churn",result="${result}"}`,
      );
    expect(cache(tenants.a, 'miss')).toBe(5);
    expect(cache(tenants.a, 'hit')).toBe(5);
    expect(cache(tenants.b, 'miss')).toBe(5);
    expect(cache(tenants.b, 'hit')).toBeUndefined();

    // Breaker state of the backend, read at scrape time.
    expect(sample(body, 'atrium_breaker_state{backend="models",state="closed"}')).toBe(1);
    expect(sample(body, 'atrium_breaker_state{backend="models",state="open"}')).toBe(0);

    // Every per-tenant series names one of the tenants that sent traffic (or `none`).
    const labelled = new Set([...body.matchAll(/tenant="([^"]*)"/g)].map((m) => m[1]));
    expect([...labelled].sort()).toEqual([tenants.a, tenants.b, tenants.busy, 'none'].sort());
  });

  it('answers only GET and HEAD', async () => {
    const response = await fetch(`${stack.gateway.url}/metrics`, { method: 'POST' });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, HEAD');
    const head = await fetch(`${stack.gateway.url}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('records the breaker opening when the model server goes away', async () => {
    const { gateway, tokens } = stack;
    await stack.modelServer.stop();
    // Fresh feature rows (more customers) so the cache cannot answer; each failed batch counts.
    for (let i = 0; i < 8; i++) {
      const answer = await gateway.query(CUSTOMERS_QUERY, {
        token: tokens.b,
        variables: { first: 6 + i },
      });
      expect(answer.status).toBe(200);
      if (stack.client.breaker.state() === 'open') break;
    }
    const { body } = await stack.scrape();
    expect(sample(body, 'atrium_breaker_state{backend="models",state="open"}')).toBe(1);
    expect(sample(body, 'atrium_breaker_transitions_total{backend="models",to="open"}')).toBe(1);
    expect(
      sample(
        body,
        `atrium_backend_calls_total{tenant="${stack.tenants.b}",kind="inference",backend="models",target="churn/1",outcome="BACKEND_UNAVAILABLE"}`,
      ),
    ).toBeGreaterThanOrEqual(1);
    // The data fields still answered, and the requests count the field error as their outcome.
    expect(
      sample(
        body,
        `atrium_graphql_requests_total{tenant="${stack.tenants.b}",operation="Customers",outcome="BACKEND_UNAVAILABLE"}`,
      ),
    ).toBeGreaterThanOrEqual(1);
  });
});
