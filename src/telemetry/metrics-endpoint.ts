import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GatewayMetrics } from './metrics.js';

export const METRICS_PATH = '/metrics';

function sendText(res: ServerResponse, status: number, text: string, type: string): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

export interface MetricsHandlerOptions {
  /**
   * Who may scrape (e.g. loopback clients only); others get 404, as if it were not served.
   * Default: anyone who reaches the listener.
   */
  allow?: ((req: IncomingMessage) => boolean) | undefined;
}

/**
 * `GET /metrics` in the Prometheus text format. Unauthenticated, as scrapers expect, and it
 * names tenants and operations: keep it off public listeners (`telemetry.metrics.port` gives
 * it a port of its own; `telemetry.metrics.onMainPort` says who may read it on the main one).
 */
export function createMetricsHandler(
  metrics: Pick<GatewayMetrics, 'render'>,
  options: MetricsHandlerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    if (options.allow && !options.allow(req)) {
      sendText(res, 404, 'Not Found\n', 'text/plain; charset=utf-8');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendText(res, 405, 'Method Not Allowed\n', 'text/plain; charset=utf-8');
      return;
    }
    let rendered: { contentType: string; body: string };
    try {
      rendered = await metrics.render();
    } catch {
      sendText(res, 500, 'metrics unavailable\n', 'text/plain; charset=utf-8');
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': rendered.contentType, 'cache-control': 'no-store' });
      res.end();
      return;
    }
    sendText(res, 200, rendered.body, rendered.contentType);
  };
}

export interface MetricsServer {
  /** e.g. `http://127.0.0.1:9464` */
  readonly url: string;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  metrics: Pick<GatewayMetrics, 'render'>;
  port: number;
  host: string;
}

/**
 * A listener of its own that answers `/metrics` and nothing else: for a private scrape port
 * that the load balancer never exposes.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const handler = createMetricsHandler(options.metrics);
  const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== METRICS_PATH) {
      sendText(res, 404, 'Not Found\n', 'text/plain; charset=utf-8');
      return;
    }
    void handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
