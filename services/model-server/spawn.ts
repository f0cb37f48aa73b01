/**
 * Starts the reference model server as a child process, for tests and the gateway's demo
 * launcher. The gateway itself never imports this package; it talks to the server over HTTP.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnReadyProcess } from '../spawn-process.js';
import { DEFAULT_MODEL_REPOSITORY, DEMO_RECIPES } from './defaults.js';

export { DEFAULT_MODEL_REPOSITORY, DEMO_RECIPES };

// Built (dist/): the compiled main next to this compiled file; from sources: the .ts one.
const MAIN = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './src/main.ts' : './src/main.js', import.meta.url),
);

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
  /**
   * Per model name, the fixed milliseconds each infer call holds an instance of its device
   * (`--call-cost-ms <model>=<ms>`), replacing the config's `call_cost_ms`.
   */
  callCostMs?: Readonly<Record<string, number>>;
  /** Per model name, its instances per version (`--instances <model>=<n>`). */
  instances?: Readonly<Record<string, number>>;
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
  const args = ['--port', String(options.port ?? 0), '--repo', repo];
  if (recipes !== undefined) args.push('--recipes', path.resolve(recipes));
  if (options.host !== undefined) args.push('--host', options.host);
  if (options.workers !== undefined) args.push('--workers', String(options.workers));
  if (options.queue !== undefined) args.push('--queue', String(options.queue));
  if (options.maxBodyBytes !== undefined)
    args.push('--max-body-bytes', String(options.maxBodyBytes));
  for (const [model, ms] of Object.entries(options.callCostMs ?? {}))
    args.push('--call-cost-ms', `${model}=${ms}`);
  for (const [model, n] of Object.entries(options.instances ?? {}))
    args.push('--instances', `${model}=${n}`);

  return spawnReadyProcess({
    name: 'model-server',
    main: MAIN,
    args,
    timeoutMs,
    stopTimeoutMs: DEFAULT_STOP_TIMEOUT_MS,
  });
}
