/**
 * What every reference service's `spawn.ts` shares: run `node --import tsx <main> <args>` from
 * the project root, wait for its `<name> listening on http://HOST:PORT` line, keep draining its
 * output, and stop it with SIGTERM (SIGKILL after a grace period, or when the parent exits).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface SpawnedProcess {
  /** Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash). */
  url: string;
  port: number;
  process: ChildProcess;
  /** SIGTERM, wait for exit (SIGKILL after a grace period). Idempotent. */
  stop(): Promise<void>;
}

export interface SpawnProcessOptions {
  /** The service's name as its ready line starts: `tickets`, `model-server`. */
  name: string;
  /** Absolute path of its entry point. */
  main: string;
  args: readonly string[];
  timeoutMs: number;
  stopTimeoutMs: number;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function spawnReadyProcess(options: SpawnProcessOptions): Promise<SpawnedProcess> {
  const readyLine = new RegExp(
    `^${escapeRegExp(options.name)} listening on (http:\\/\\/\\S+?):(\\d+)\\s*$`,
    'm',
  );
  // cwd = project root so that `--import tsx` resolves to this project's tsx.
  // A built main (dist/, `.js`) runs on plain node; only a TypeScript source needs tsx.
  const loader = options.main.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...loader, options.main, ...options.args], {
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
        const timer = setTimeout(() => child.kill('SIGKILL'), options.stopTimeoutMs);
        await exited;
        clearTimeout(timer);
      }
      process.off('exit', killOnExit);
    })();
    return stopping;
  };

  return new Promise<SpawnedProcess>((resolve, reject) => {
    const fail = (reason: string): void => {
      cleanup();
      void stop();
      reject(
        new Error(
          `${options.name} did not start: ${reason}\n--- stderr ---\n${stderr.trim() || '(empty)'}`,
        ),
      );
    };
    const onData = (): void => {
      const match = readyLine.exec(stdout);
      if (match?.[1] === undefined || match[2] === undefined) return;
      cleanup();
      resolve({ url: `${match[1]}:${match[2]}`, port: Number(match[2]), process: child, stop });
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      fail(`exited with ${signal ?? `code ${String(code)}`} before it was ready`);
    const onError = (err: Error): void => fail(err.message);
    const timer = setTimeout(
      () => fail(`no ready line within ${options.timeoutMs} ms`),
      options.timeoutMs,
    );
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
