/**
 * Starts the reference model server as a child process, for tests and the gateway's demo
 * launcher. The gateway itself never imports this package; it talks to the server over HTTP.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MODEL_REPOSITORY, DEMO_RECIPES } from './defaults.js';

export { DEFAULT_MODEL_REPOSITORY, DEMO_RECIPES };

const MAIN = fileURLToPath(new URL('./src/main.ts', import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const READY_LINE = /^model-server listening on (http:\/\/\S+?):(\d+)\s*$/m;

/** Default time to wait for the ready line (covers building the models on a fresh clone). */
export const DEFAULT_SPAWN_TIMEOUT_MS = 60_000;
/** Time `stop()` waits after SIGTERM before SIGKILL. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

/** Options of {@link spawnModelServer}. */
export interface SpawnModelServerOptions {
  /** 0 (the default) lets the OS pick a free port. */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /**
   * Model repository, served as it is unless `recipes` is given. With neither option: the
   * demo's repository, `services/model-server/models`, built from the demo's recipes.
   */
  repo?: string;
  /**
   * A recipe module (exports `recipes: ModelRecipe[]`) to build `repo` from when it is missing
   * or stale; needs `repo`. Relative paths (both) are resolved from the current directory.
   */
  recipes?: string;
  /** Inference worker threads (server default 2). */
  workers?: number;
  /** Requests allowed to wait for a busy pool (server default 256). */
  queue?: number;
  /** Request body limit in bytes (server default 8 MiB). */
  maxBodyBytes?: number;
  /** How long to wait for the ready line. */
  timeoutMs?: number;
}

/** A running model server child process. */
export interface SpawnedModelServer {
  /** Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash). */
  url: string;
  port: number;
  process: ChildProcess;
  /** SIGTERM, wait for exit (SIGKILL after a grace period). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `node --import tsx services/model-server/src/main.ts …` and resolves once it prints
 * `model-server listening on http://HOST:PORT`. Rejects with the child's stderr if it exits
 * first or does not become ready within `timeoutMs`.
 */
export function spawnModelServer(
  options: SpawnModelServerOptions = {},
): Promise<SpawnedModelServer> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_SPAWN_TIMEOUT_MS;
  if (options.recipes !== undefined && options.repo === undefined) {
    // The default repository is the demo's: another module's models must not replace it.
    throw new TypeError(
      `SpawnModelServerOptions.repo is required with recipes (got recipes=${options.recipes})`,
    );
  }
  const { repo, recipes } =
    options.repo === undefined
      ? { repo: DEFAULT_MODEL_REPOSITORY, recipes: DEMO_RECIPES }
      : { repo: path.resolve(options.repo), recipes: options.recipes };
  const args = ['--import', 'tsx', MAIN, '--port', String(options.port ?? 0), '--repo', repo];
  if (recipes !== undefined) args.push('--recipes', path.resolve(recipes));
  if (options.host !== undefined) args.push('--host', options.host);
  if (options.workers !== undefined) args.push('--workers', String(options.workers));
  if (options.queue !== undefined) args.push('--queue', String(options.queue));
  if (options.maxBodyBytes !== undefined)
    args.push('--max-body-bytes', String(options.maxBodyBytes));

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
  // A crashed test runner must not leave servers behind.
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

  return new Promise<SpawnedModelServer>((resolve, reject) => {
    const fail = (reason: string): void => {
      cleanup();
      void stop();
      reject(
        new Error(
          `model server did not start: ${reason}\n--- stderr ---\n${stderr.trim() || '(empty)'}`,
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
