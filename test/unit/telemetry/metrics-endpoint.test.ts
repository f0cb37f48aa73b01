import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createGatewayMetrics } from '../../../src/telemetry/metrics.js';
import { startMetricsServer } from '../../../src/telemetry/metrics-endpoint.js';

describe('the metrics listener on its own port', () => {
  it('serves /metrics and nothing else, and closes', async () => {
    const metrics = createGatewayMetrics({
      registry: new Registry(),
      maxTenantLabels: 10,
      maxOperationLabels: 10,
      processMetrics: false,
    });
    metrics.requestFinished({ tenantId: 'acme', operation: 'Q', outcome: 'ok', durationMs: 3 });
    const server = await startMetricsServer({ metrics, port: 0, host: '127.0.0.1' });
    try {
      const scraped = await fetch(`${server.url}/metrics`);
      expect(scraped.status).toBe(200);
      expect(scraped.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await scraped.text()).toContain(
        'atrium_graphql_requests_total{tenant="acme",operation="Q",outcome="ok"} 1',
      );
      expect((await fetch(`${server.url}/metrics?x=1`)).status).toBe(200);
      expect((await fetch(`${server.url}/graphql`)).status).toBe(404);
      const post = await fetch(`${server.url}/metrics`, { method: 'POST' });
      expect(post.status).toBe(405);
    } finally {
      await server.close();
    }
    await expect(fetch(`${server.url}/metrics`)).rejects.toThrow();
  });

  it('answers 500, not a crash, when rendering fails', async () => {
    const server = await startMetricsServer({
      metrics: { render: () => Promise.reject(new Error('collector threw')) },
      port: 0,
      host: '127.0.0.1',
    });
    try {
      const response = await fetch(`${server.url}/metrics`);
      expect(response.status).toBe(500);
      expect(await response.text()).not.toContain('collector threw');
    } finally {
      await server.close();
    }
  });
});
