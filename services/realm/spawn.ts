/**
 * Starts the reference realm service (a tenant's own GraphQL service) as a child process, for
 * tests and the gateway's demo launcher. The gateway itself never imports this package; it
 * talks to the service over HTTP (GraphQL at `<url>/graphql`).
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

/** Options of {@link spawnRealmService}. */
export interface SpawnRealmServiceOptions {
  /** The gateway's JWKS URL (`…/.well-known/jwks.json`) the tokens are verified against. */
  jwks: string;
  /** The `aud` the gateway signs for its realms (default `realm`). */
  audience?: string;
  /** The gateway's `iss`; unchecked when absent. */
  issuer?: string;
  /** 0 (the default) lets the OS pick a free port. */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** How long to wait for the ready line. */
  timeoutMs?: number;
}

/** A running realm service child process. */
export interface SpawnedRealmService {
  /** Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash); GraphQL at `${url}/graphql`. */
  url: string;
  port: number;
  process: ChildProcess;
  /** SIGTERM, wait for exit (SIGKILL after a grace period). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `node --import tsx services/realm/src/main.ts …` and resolves once it prints
 * `realm listening on http://HOST:PORT`. Rejects with the child's stderr if it exits first
 * or does not become ready within `timeoutMs`.
 */
export function spawnRealmService(options: SpawnRealmServiceOptions): Promise<SpawnedRealmService> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_SPAWN_TIMEOUT_MS;
  const args = [
    '--port',
    String(options.port ?? 0),
    '--jwks',
    options.jwks,
    '--audience',
    options.audience ?? 'realm',
  ];
  if (options.host !== undefined) args.push('--host', options.host);
  if (options.issuer !== undefined) args.push('--issuer', options.issuer);

  return spawnReadyProcess({
    name: 'realm',
    main: MAIN,
    args,
    timeoutMs,
    stopTimeoutMs: DEFAULT_STOP_TIMEOUT_MS,
  });
}
