import { AggregatorRegistry, type Registry } from 'prom-client';
import type { GatewayMetrics } from './metrics.js';

/**
 * With `node:cluster` workers sharing the gateway's port, a scrape of any one worker would see
 * only its share of the traffic. The primary answers instead: it asks every worker for its
 * registry over IPC and serves the sum (prom-client's AggregatorRegistry: counters and
 * histograms add up; gauges add up too, so `atrium_breaker_state{state="open"}` counts the
 * workers whose breaker is open). The label bound stays per process: a cluster scrape shows at
 * most workers × maxTenantLabels tenants, and in practice the same ones come first everywhere.
 */

/** In a worker: answers the primary's metrics requests with `registry`. Call once per process. */
export function shareMetricsWithPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one installs the worker's IPC listener (idempotent).
  new AggregatorRegistry();
}

/** In the primary: the workers' metrics, aggregated, for `startMetricsServer`. */
export function createClusterMetricsSource(): Pick<GatewayMetrics, 'render'> {
  const aggregator = new AggregatorRegistry();
  return {
    async render() {
      return { contentType: aggregator.contentType, body: await aggregator.clusterMetrics() };
    },
  };
}
