import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createGatewayMetrics, type GatewayMetrics } from '../../../src/telemetry/metrics.js';

function metricsWith(maxTenantLabels = 100, maxOperationLabels = 20): GatewayMetrics {
  return createGatewayMetrics({
    registry: new Registry(),
    maxTenantLabels,
    maxOperationLabels,
    processMetrics: false,
  });
}

/** `name{labels} value` lines of one family. */
async function samples(metrics: GatewayMetrics, name: string): Promise<Map<string, number>> {
  const { body } = await metrics.render();
  const out = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

function tenantValues(body: string): Set<string> {
  return new Set([...body.matchAll(/tenant="([^"]*)"/g)].map((m) => m[1]!));
}

describe('gateway metrics', () => {
  it('counts requests by tenant, operation and outcome, with latency histograms', async () => {
    const metrics = metricsWith();
    for (const [tenantId, operation, outcome] of [
      ['acme', 'Customers', 'ok'],
      ['acme', 'Customers', 'ok'],
      ['globex', null, 'BACKEND_UNAVAILABLE'],
      [undefined, undefined, 'UNAUTHENTICATED'],
    ] as const) {
      metrics.requestStarted();
      metrics.requestFinished({ tenantId, operation, outcome, durationMs: 12 });
    }
    const counts = await samples(metrics, 'atrium_graphql_requests_total');
    expect(
      counts.get('atrium_graphql_requests_total{tenant="acme",operation="Customers",outcome="ok"}'),
    ).toBe(2);
    expect(
      counts.get(
        'atrium_graphql_requests_total{tenant="globex",operation="anonymous",outcome="BACKEND_UNAVAILABLE"}',
      ),
    ).toBe(1);
    expect(
      counts.get(
        'atrium_graphql_requests_total{tenant="none",operation="none",outcome="UNAUTHENTICATED"}',
      ),
    ).toBe(1);
    const latency = await samples(metrics, 'atrium_graphql_request_duration_seconds_bucket');
    expect(
      latency.get(
        'atrium_graphql_request_duration_seconds_bucket{le="0.01",tenant="acme",operation="Customers"}',
      ),
    ).toBe(0);
    expect(
      latency.get(
        'atrium_graphql_request_duration_seconds_bucket{le="0.025",tenant="acme",operation="Customers"}',
      ),
    ).toBe(2);
    const inFlight = await samples(metrics, 'atrium_graphql_requests_in_flight');
    expect(inFlight.get('atrium_graphql_requests_in_flight')).toBe(0);
  });

  it('bounds tenant labels: 500 tenants give at most maxTenantLabels + 1 values', async () => {
    const metrics = metricsWith(100);
    for (let i = 0; i < 500; i++) {
      const tenantId = `tenant-${i}`;
      metrics.requestFinished({ tenantId, operation: 'Q', outcome: 'ok', durationMs: 1 });
      metrics.backendCall({
        tenantId,
        kind: 'data',
        backend: 'postgres',
        target: 'customersByIds',
        outcome: 'ok',
        durationMs: 1,
        rows: 3,
      });
      metrics.cacheLookup({ tenantId, model: 'churn', hits: 1, misses: 1, failed: false });
      metrics.rateLimited(tenantId, 'RATE');
    }
    const { body } = await metrics.render();
    const tenants = tenantValues(body);
    expect(tenants.size).toBe(101);
    expect(tenants.has('other')).toBe(true);
    expect(tenants.has('tenant-0')).toBe(true);
    expect(tenants.has('tenant-99')).toBe(true);
    expect(tenants.has('tenant-100')).toBe(false);
    const counts = await samples(metrics, 'atrium_graphql_requests_total');
    expect(
      counts.get('atrium_graphql_requests_total{tenant="other",operation="Q",outcome="ok"}'),
    ).toBe(400);
    // Every family uses the same bound: a tenant is `other` everywhere or nowhere.
    const calls = await samples(metrics, 'atrium_backend_calls_total');
    expect(
      calls.get(
        'atrium_backend_calls_total{tenant="other",kind="data",backend="postgres",target="customersByIds",outcome="ok"}',
      ),
    ).toBe(400);
  });

  it('bounds operation names per tenant and refuses names that are not GraphQL names', async () => {
    const metrics = metricsWith(10, 3);
    for (let i = 0; i < 50; i++) {
      metrics.requestFinished({
        tenantId: 'acme',
        operation: `Op${i}`,
        outcome: 'ok',
        durationMs: 1,
      });
    }
    metrics.requestFinished({
      tenantId: 'globex',
      operation: 'Op49',
      outcome: 'ok',
      durationMs: 1,
    });
    metrics.requestFinished({
      tenantId: 'globex',
      operation: 'x'.repeat(65),
      outcome: 'ok',
      durationMs: 1,
    });
    const counts = await samples(metrics, 'atrium_graphql_requests_total');
    const acme = [...counts.keys()].filter((k) => k.includes('tenant="acme"'));
    expect(acme).toHaveLength(4);
    expect(
      counts.get('atrium_graphql_requests_total{tenant="acme",operation="other",outcome="ok"}'),
    ).toBe(47);
    // One tenant's invented names do not use up another's.
    expect(
      counts.get('atrium_graphql_requests_total{tenant="globex",operation="Op49",outcome="ok"}'),
    ).toBe(1);
    expect(
      counts.get('atrium_graphql_requests_total{tenant="globex",operation="other",outcome="ok"}'),
    ).toBe(1);
  });

  it('records backend calls, batch rows, cache results, refusals and breaker state', async () => {
    const metrics = metricsWith();
    metrics.backendCall({
      tenantId: 'acme',
      kind: 'inference',
      backend: 'models',
      target: 'churn/2',
      outcome: 'ok',
      durationMs: 4,
      rows: 20,
    });
    metrics.backendCall({
      tenantId: 'acme',
      kind: 'inference',
      backend: 'models',
      target: 'churn/2',
      outcome: 'BACKEND_TIMEOUT',
      durationMs: 2000,
      rows: 5,
    });
    metrics.cacheLookup({ tenantId: 'acme', model: 'churn', hits: 15, misses: 5, failed: false });
    metrics.cacheLookup({ tenantId: 'acme', model: 'churn', hits: 0, misses: 4, failed: true });
    metrics.rateLimited('acme', 'CONCURRENCY');
    metrics.rateLimited('acme', 'not a reason');
    metrics.limiterStoreError('rateLimit');
    let state: 'closed' | 'open' | 'half-open' = 'closed';
    metrics.watchBreaker('models', () => state);
    metrics.breakerTransition('models', 'open');

    const calls = await samples(metrics, 'atrium_backend_calls_total');
    expect(
      calls.get(
        'atrium_backend_calls_total{tenant="acme",kind="inference",backend="models",target="churn/2",outcome="ok"}',
      ),
    ).toBe(1);
    expect(
      calls.get(
        'atrium_backend_calls_total{tenant="acme",kind="inference",backend="models",target="churn/2",outcome="BACKEND_TIMEOUT"}',
      ),
    ).toBe(1);
    const rows = await samples(metrics, 'atrium_backend_batch_rows_bucket');
    expect(
      rows.get(
        'atrium_backend_batch_rows_bucket{le="5",tenant="acme",kind="inference",backend="models"}',
      ),
    ).toBe(1);
    expect(
      rows.get(
        'atrium_backend_batch_rows_bucket{le="20",tenant="acme",kind="inference",backend="models"}',
      ),
    ).toBe(2);
    const cache = await samples(metrics, 'atrium_prediction_cache_lookups_total');
    expect(
      cache.get('atrium_prediction_cache_lookups_total{tenant="acme",model="churn",result="hit"}'),
    ).toBe(15);
    expect(
      cache.get('atrium_prediction_cache_lookups_total{tenant="acme",model="churn",result="miss"}'),
    ).toBe(5);
    expect(
      cache.get(
        'atrium_prediction_cache_lookups_total{tenant="acme",model="churn",result="error"}',
      ),
    ).toBe(4);
    const limited = await samples(metrics, 'atrium_rate_limited_requests_total');
    expect(
      limited.get('atrium_rate_limited_requests_total{tenant="acme",reason="CONCURRENCY"}'),
    ).toBe(1);
    expect(limited.get('atrium_rate_limited_requests_total{tenant="acme",reason="OTHER"}')).toBe(1);
    expect(
      (await samples(metrics, 'atrium_limiter_store_errors_total')).get(
        'atrium_limiter_store_errors_total{operation="rateLimit"}',
      ),
    ).toBe(1);

    let breaker = await samples(metrics, 'atrium_breaker_state');
    expect(breaker.get('atrium_breaker_state{backend="models",state="closed"}')).toBe(1);
    expect(breaker.get('atrium_breaker_state{backend="models",state="open"}')).toBe(0);
    state = 'open';
    breaker = await samples(metrics, 'atrium_breaker_state');
    expect(breaker.get('atrium_breaker_state{backend="models",state="closed"}')).toBe(0);
    expect(breaker.get('atrium_breaker_state{backend="models",state="open"}')).toBe(1);
    expect(
      (await samples(metrics, 'atrium_breaker_transitions_total')).get(
        'atrium_breaker_transitions_total{backend="models",to="open"}',
      ),
    ).toBe(1);
  });

  it('uses the registry it is given, so two gateways in one process do not collide', async () => {
    const a = metricsWith();
    const b = metricsWith();
    a.requestFinished({ tenantId: 'acme', operation: 'Q', outcome: 'ok', durationMs: 1 });
    expect((await a.render()).body).toContain('tenant="acme"');
    expect((await b.render()).body).not.toContain('tenant="acme"');
    expect((await a.render()).contentType).toMatch(/^text\/plain; version=0.0.4/);
  });

  it('collects the Node.js process metrics when asked', async () => {
    const metrics = createGatewayMetrics({
      registry: new Registry(),
      maxTenantLabels: 1,
      maxOperationLabels: 1,
    });
    const { body } = await metrics.render();
    expect(body).toContain('process_cpu_user_seconds_total');
    expect(body).toContain('nodejs_eventloop_lag_seconds');
  });

  it('refuses bad bounds', () => {
    expect(() => metricsWith(-1)).toThrow(/maxTenantLabels must be a non-negative integer/);
    expect(() => metricsWith(1, 0.5)).toThrow(/maxOperationLabels/);
  });
});
