import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createGatewayMetrics } from '../../../src/telemetry/metrics.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createMetricsHandler,
  startMetricsServer,
} from '../../../src/telemetry/metrics-endpoint.js';

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

  it('answers 404 to those its `allow` refuses, as if nothing were there', async () => {
    const handler = createMetricsHandler(
      { render: () => Promise.resolve({ contentType: 'text/plain', body: 'atrium_x 1\n' }) },
      { allow: (req) => req.headers['x-scraper'] === 'yes' },
    );
    const server = createServer((req, res) => void handler(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
    try {
      const refused = await fetch(url);
      expect(refused.status).toBe(404);
      expect(await refused.text()).not.toContain('atrium_');
      expect((await fetch(url, { headers: { 'x-scraper': 'yes' } })).status).toBe(200);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
