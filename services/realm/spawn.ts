/**
 * Starts the reference realm service (a tenant's own GraphQL service) as a child process, for
 * tests and the gateway's demo launcher. The gateway itself never imports this package; it
 * talks to the service over HTTP (GraphQL at `<url>/graphql`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./src/main.ts', import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const READY_LINE = /^realm listening on (http:\/\/\S+?):(\d+)\s*$/m;

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
    '--import',
    'tsx',
    MAIN,
    '--port',
    String(options.port ?? 0),
    '--jwks',
    options.jwks,
    '--audience',
    options.audience ?? 'realm',
  ];
  if (options.host !== undefined) args.push('--host', options.host);
  if (options.issuer !== undefined) args.push('--issuer', options.issuer);

  // cwd = project root so that `--import tsx` resolves to this project's tsx.
  const child = spawn(process.execPath, args, {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  // Keep draining after start-up so a chatty child never blocks on a full pipe.
  child.stdout.on('data', (chunk: string) => {
    if (stdout.length < 64 * 1024) stdout += chunk;
  });
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-16 * 1024);
  });

  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  // A crashed test runner must not leave services behind.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), DEFAULT_STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      process.off('exit', killOnExit);
    })();
    return stopping;
  };

  return new Promise<SpawnedRealmService>((resolve, reject) => {
    const fail = (reason: string): void => {
      cleanup();
      void stop();
      reject(
        new Error(
          `realm service did not start: ${reason}\n--- stderr ---\n${stderr.trim() || '(empty)'}`,
        ),
      );
    };
    const onData = (): void => {
      const match = READY_LINE.exec(stdout);
      if (match === null) return;
      cleanup();
      resolve({ url: `${match[1]!}:${match[2]!}`, port: Number(match[2]), process: child, stop });
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      fail(`exited with ${signal ?? `code ${String(code)}`} before it was ready`);
    const onError = (err: Error): void => fail(err.message);
    const timer = setTimeout(() => fail(`no ready line within ${timeoutMs} ms`), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    };
    child.stdout.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}
