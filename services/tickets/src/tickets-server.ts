import { createServer } from 'node:http';
import { createFaults, type Faults } from './faults.js';
import { createTicketsHandler } from './http-handler.js';
import { createIdentityVerifier } from './identity.js';
import { createRequestLog, type RequestLog } from './request-log.js';
import { listenDrainable } from '../../lifecycle.js';

/** How long `close()` waits for in-flight requests before cutting connections. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/** Options of {@link startTicketsServer}. */
export interface TicketsServerOptions {
  host: string;
  /** 0 lets the OS pick a free port. */
  port: number;
  /** The gateway's JWKS URL. */
  jwks: URL;
  /** The `aud` tokens must carry (this service's name). */
  audience: string;
  /** The `iss` tokens must carry; unchecked when absent. */
  issuer?: string;
  /** Per-tenant API keys (tenant → key); when given, each request needs its tenant's key. */
  keys?: ReadonlyMap<string, string>;
  drainTimeoutMs?: number;
  /** Diagnostics (internal errors). */
  log: (message: string) => void;
}

/** A listening tickets service. */
export interface RunningTicketsServer {
  url: string;
  host: string;
  port: number;
  requests: RequestLog;
  faults: Faults;
  /** Stops accepting, drains in-flight requests (cut after the drain timeout). Idempotent. */
  close(): Promise<void>;
}

export async function startTicketsServer(
  options: TicketsServerOptions,
): Promise<RunningTicketsServer> {
  const requests = createRequestLog();
  const faults = createFaults();
  const server = createServer(
    createTicketsHandler({
      verify: createIdentityVerifier({
        jwks: options.jwks,
        audience: options.audience,
        issuer: options.issuer,
        keys: options.keys,
      }),
      log: requests,
      faults,
      onInternalError: (err) =>
        options.log(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
    }),
  );
  const listening = await listenDrainable(
    server,
    options.host,
    options.port,
    options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
  );
  return {
    url: listening.url,
    host: options.host,
    port: listening.port,
    requests,
    faults,
    close: listening.close,
  };
}
