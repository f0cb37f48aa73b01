import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgliteDataSource } from '../../../src/backends/data/pglite.js';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import { createObservability } from '../../../src/server/observability.js';
import { createLogger } from '../../../src/telemetry/logger.js';
import { createGatewayMetrics } from '../../../src/telemetry/metrics.js';
import { createMetricsHandler } from '../../../src/telemetry/metrics-endpoint.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner, type TestSigner } from '../../support/tokens.js';
import { eventually, sample } from './stack.js';

const TENANTS = 500;
const MAX_TENANT_LABELS = 100;
const ids = Array.from({ length: TENANTS }, (_, i) => `tenant-${String(i).padStart(3, '0')}`);

let signer: TestSigner;
let gateway: TestGateway;
let dataSource: SqlDataSource;

beforeAll(async () => {
  signer = await createTestSigner();
  const metrics = createGatewayMetrics({
    registry: new Registry(),
    maxTenantLabels: MAX_TENANT_LABELS,
    maxOperationLabels: 20,
    processMetrics: false,
  });
  const logger = createLogger({ level: 'silent' });
  // The query below never reaches the data layer; an unused embedded source costs nothing.
  dataSource = createPgliteDataSource();
  gateway = await startTestGateway({
    signer,
    tenants: ids.map((id) => ({ id, data: { strategy: 'row' as const } })),
    dataSource,
    observability: createObservability({ logger, metrics }),
    logger,
    routes: { '/metrics': createMetricsHandler(metrics) },
  });
});

afterAll(async () => {
  await gateway?.stop();
  await dataSource?.close();
});

describe('tenant label cardinality', () => {
  it(`${TENANTS} tenants' requests give at most maxTenantLabels + 1 tenant label values`, async () => {
    const tokens = await Promise.all(ids.map((tenant) => signer.sign({ tenant })));
    // 20 at a time: the order in which tenants first appear is not fixed, as in production.
    for (let i = 0; i < tokens.length; i += 20) {
      const answers = await Promise.all(
        tokens
          .slice(i, i + 20)
          .map((token) => gateway.query('query Who { viewer { tenant { id } } }', { token })),
      );
      for (const answer of answers) expect(answer.status).toBe(200);
    }
    const body = await eventually(async () => {
      const text = await (await fetch(`${gateway.url}/metrics`)).text();
      const total = [...text.matchAll(/^atrium_graphql_requests_total\{.*\} (\d+)$/gm)].reduce(
        (sum, m) => sum + Number(m[1]),
        0,
      );
      expect(total).toBe(TENANTS);
      return text;
    });

    const labels = new Set([...body.matchAll(/tenant="([^"]*)"/g)].map((m) => m[1]!));
    expect(labels.size).toBeLessThanOrEqual(MAX_TENANT_LABELS + 1);
    expect(labels.size).toBe(MAX_TENANT_LABELS + 1);
    expect(labels.has('other')).toBe(true);
    const own = [...labels].filter((l) => l !== 'other');
    for (const tenant of own) {
      expect(ids).toContain(tenant);
      expect(
        sample(
          body,
          `atrium_graphql_requests_total{tenant="${tenant}",operation="Who",outcome="ok"}`,
        ),
      ).toBe(1);
    }
    expect(
      sample(body, 'atrium_graphql_requests_total{tenant="other",operation="Who",outcome="ok"}'),
    ).toBe(TENANTS - MAX_TENANT_LABELS);
    // The first tenants keep their labels: more traffic from a labelled tenant stays its own.
    const kept = own[0]!;
    await gateway.query('query Who { viewer { tenant { id } } }', {
      token: tokens[ids.indexOf(kept)]!,
    });
    await eventually(async () => {
      const text = await (await fetch(`${gateway.url}/metrics`)).text();
      expect(
        sample(
          text,
          `atrium_graphql_requests_total{tenant="${kept}",operation="Who",outcome="ok"}`,
        ),
      ).toBe(2);
    });
  });
});
