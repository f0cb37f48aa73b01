/**
 * Run by cluster-metrics.test.ts: a node:cluster primary with two workers. Each worker records
 * one request of tenant `acme` and one of its own tenant, then tells the primary; the primary
 * serves the aggregated metrics on a free port and prints its URL.
 */
import cluster from 'node:cluster';
import { Registry } from 'prom-client';
import {
  createClusterMetricsSource,
  shareMetricsWithPrimary,
} from '../../../src/telemetry/cluster-metrics.js';
import { createGatewayMetrics } from '../../../src/telemetry/metrics.js';
import { startMetricsServer } from '../../../src/telemetry/metrics-endpoint.js';

const WORKERS = 2;

if (cluster.isPrimary) {
  let ready = 0;
  cluster.on('message', (_worker, message: unknown) => {
    if (message !== 'recorded' || ++ready < WORKERS) return;
    void startMetricsServer({
      metrics: createClusterMetricsSource(),
      port: 0,
      host: '127.0.0.1',
    }).then((server) => process.stdout.write(`metrics ${server.url}/metrics\n`));
  });
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill();
    process.exit(0);
  });
} else {
  const metrics = createGatewayMetrics({
    registry: new Registry(),
    maxTenantLabels: 10,
    maxOperationLabels: 10,
    processMetrics: false,
  });
  shareMetricsWithPrimary(metrics.registry);
  const own = `worker-${cluster.worker?.id ?? 0}`;
  for (const tenantId of ['acme', own]) {
    metrics.requestStarted();
    metrics.requestFinished({ tenantId, operation: 'Q', outcome: 'ok', durationMs: 2 });
  }
  process.send?.('recorded');
}
