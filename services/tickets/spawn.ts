/**
 * Starts the reference tickets service as a child process, for tests and the gateway's demo
 * launcher. The gateway itself never imports this package; it talks to the service over HTTP.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnReadyProcess } from '../spawn-process.js';

// Built (dist/): the compiled main next to this compiled file; from sources: the .ts one.
const MAIN = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './src/main.ts' : './src/main.js', import.meta.url),
);

/** Default time to wait for the ready line. */
export const DEFAULT_SPAWN_TIMEOUT_MS = 30_000;
/** Time `stop()` waits after SIGTERM before SIGKILL. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

/** Options of {@link spawnTicketsService}. */
export interface SpawnTicketsServiceOptions {
  /** The gateway's JWKS URL (`…/.well-known/jwks.json`) the tokens are verified against. */
  jwks: string;
  /** The `aud` the gateway signs for this service (default `tickets`). */
  audience?: string;
  /** The gateway's `iss`; unchecked when absent. */
  issuer?: string;
  /**
   * Per-tenant API keys (tenant → key): each data request must then carry its tenant's key in
   * `x-api-key`. Keys may not contain "," (they are passed as `--keys`).
   */
  keys?: Readonly<Record<string, string>>;
  /** 0 (the default) lets the OS pick a free port. */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** How long to wait for the ready line. */
  timeoutMs?: number;
}

/** A running tickets service child process. */
export interface SpawnedTicketsService {
  /** Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash). */
  url: string;
  port: number;
  process: ChildProcess;
  /** SIGTERM, wait for exit (SIGKILL after a grace period). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `node --import tsx services/tickets/src/main.ts …` and resolves once it prints
 * `tickets listening on http://HOST:PORT`. Rejects with the child's stderr if it exits first
 * or does not become ready within `timeoutMs`.
 */
export function spawnTicketsService(
  options: SpawnTicketsServiceOptions,
): Promise<SpawnedTicketsService> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_SPAWN_TIMEOUT_MS;
  const args = [
    '--port',
    String(options.port ?? 0),
    '--jwks',
    options.jwks,
    '--audience',
    options.audience ?? 'tickets',
  ];
  if (options.host !== undefined) args.push('--host', options.host);
  if (options.issuer !== undefined) args.push('--issuer', options.issuer);
  if (options.keys !== undefined) {
    const pairs = Object.entries(options.keys);
    for (const [tenant, key] of pairs) {
      if (/[,=]/.test(tenant) || key === '' || key.includes(',')) {
        // The key itself stays out of the message: it is a secret.
        throw new TypeError(
          `SpawnTicketsServiceOptions.keys: tenant "${tenant}" needs a name without "," or "=" ` +
            'and a non-empty key without ","',
        );
      }
    }
    args.push('--keys', pairs.map(([tenant, key]) => `${tenant}=${key}`).join(','));
  }

  return spawnReadyProcess({
    name: 'tickets',
    main: MAIN,
    args,
    timeoutMs,
    stopTimeoutMs: DEFAULT_STOP_TIMEOUT_MS,
  });
}
