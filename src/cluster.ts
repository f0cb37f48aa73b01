import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { createClusterMetricsSource } from './telemetry/cluster-metrics.js';
import type { Logger } from './telemetry/logger.js';
import { METRICS_PATH, startMetricsServer } from './telemetry/metrics-endpoint.js';

/**
 * One gateway worker per core (or a configured number) with `node:cluster`: the workers share
 * the listening port (the primary hands connections out round-robin) and nothing else, so
 * they need the Redis store to act as one gateway — exactly like replicas on other hosts.
 *
 * The primary only supervises: it forks the workers, replaces one that dies (with a backoff,
 * giving up when they keep dying at start), and on SIGTERM/SIGINT asks each worker to drain
 * (an IPC message, see {@link onShutdownRequest}) and exits when they have.
 */

/** The IPC message a primary sends a worker to make it drain and exit. */
const SHUTDOWN_MESSAGE = 'atrium:shutdown';
/** A worker that dies sooner than this after its start counts as a failed start. */
const MIN_HEALTHY_UPTIME_MS = 5_000;
/** Failed starts in a row after which the primary gives up (a broken config or port). */
const MAX_FAILED_STARTS = 5;

export interface WorkersOptions {
  /** Worker processes: a number, or `auto` for one per core. 1 → no cluster at all. */
  workers: number | 'auto';
  logger: Logger;
  /** How long workers get to drain after a shutdown request before they are killed. */
  shutdownTimeoutMs: number;
  /**
   * Metrics are on (`telemetry.metrics`): the primary serves the sum of its workers' registries
   * on `port`. Omitted → no metrics listener.
   */
  metrics?: { port: number | undefined; host: string } | undefined;
}

/** The number of workers `workers` means on this host. */
export function resolveWorkerCount(workers: number | 'auto'): number {
  if (workers === 'auto') return availableParallelism();
  if (!(Number.isInteger(workers) && workers >= 1)) {
    throw new TypeError(`workers must be an integer ≥ 1 or "auto"; received ${workers}`);
  }
  return workers;
}

/**
 * Starts the worker processes when this is the primary and more than one is configured.
 * Returns `gateway` when this process should run the gateway itself (a worker, or a single
 * process), `primary` when it has forked workers and only supervises them from now on.
 */
export function startWorkers(options: WorkersOptions): 'primary' | 'gateway' {
  const count = resolveWorkerCount(options.workers);
  if (!cluster.isPrimary || count <= 1) return 'gateway';
  const { logger } = options;
  const started = new Map<Worker, number>();
  let failedStarts = 0;
  let stopping = false;

  function fork(): void {
    const worker = cluster.fork();
    started.set(worker, Date.now());
  }

  cluster.on('exit', (worker, code, signal) => {
    const startedAt = started.get(worker) ?? Date.now();
    started.delete(worker);
    if (stopping) {
      if (started.size === 0) process.exit(0);
      return;
    }
    const uptime = Date.now() - startedAt;
    failedStarts = uptime < MIN_HEALTHY_UPTIME_MS ? failedStarts + 1 : 0;
    logger.error(
      { pid: worker.process.pid, code, signal, uptimeMs: uptime },
      'gateway worker exited; replacing it',
    );
    if (failedStarts >= MAX_FAILED_STARTS) {
      logger.fatal({ failedStarts }, 'gateway workers keep failing at start; giving up');
      stopping = true;
      for (const other of started.keys()) other.process.kill('SIGKILL');
      process.exit(1);
    }
    const delay = Math.min(5_000, 100 * 2 ** failedStarts);
    setTimeout(() => {
      if (!stopping) fork();
    }, delay).unref();
  });

  const shutdown = (signal: string): void => {
    if (stopping) {
      // A second signal: do not wait for the drain.
      for (const worker of started.keys()) worker.process.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, workers: started.size }, 'stopping gateway workers');
    if (started.size === 0) process.exit(0);
    for (const worker of started.keys()) {
      if (worker.isConnected()) worker.send(SHUTDOWN_MESSAGE);
    }
    setTimeout(() => {
      logger.warn({ workers: started.size }, 'workers did not drain in time; killing them');
      for (const worker of started.keys()) worker.process.kill('SIGKILL');
      process.exit(1);
    }, options.shutdownTimeoutMs).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  logger.info({ workers: count }, 'starting gateway workers');
  for (let i = 0; i < count; i += 1) fork();
  if (options.metrics) serveWorkerMetrics(options.metrics, logger);
  return 'primary';
}

/**
 * Workers share the gateway port, so a scrape there would see one worker's share: the primary
 * serves the sum of all workers' registries on the metrics port instead.
 */
function serveWorkerMetrics(metrics: NonNullable<WorkersOptions['metrics']>, logger: Logger): void {
  const { port, host } = metrics;
  if (port === undefined) {
    logger.warn('server.workers > 1 without telemetry.metrics.port: /metrics shows one worker');
    return;
  }
  startMetricsServer({ metrics: createClusterMetricsSource(), port, host }).then(
    (server) => logger.info({ url: `${server.url}${METRICS_PATH}` }, 'metrics listening'),
    (error: unknown) => logger.error({ err: error }, 'metrics listener failed'),
  );
}

let shutdownRequested = false;
const shutdownListeners = new Set<() => void>();
if (cluster.isWorker) {
  // Listening from the start: a request that arrives while the gateway is still starting
  // is kept and honoured as soon as it registers its listener.
  process.on('message', (message: unknown) => {
    if (message !== SHUTDOWN_MESSAGE || shutdownRequested) return;
    shutdownRequested = true;
    for (const listener of shutdownListeners) listener();
  });
}

/**
 * In a worker: calls `listener` when the primary asks this worker to drain and exit (at once
 * if it already has). A no-op in a process that is not a cluster worker.
 */
export function onShutdownRequest(listener: () => void): void {
  if (!cluster.isWorker) return;
  shutdownListeners.add(listener);
  if (shutdownRequested) listener();
}
