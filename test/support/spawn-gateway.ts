import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

export interface SpawnedGateway {
  url: string;
  process: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then waits for exit; resolves to the exit code (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<number | null>;
}

export interface SpawnGatewayOptions {
  /** Extra environment (ATRIUM_CONFIG, REDIS_URL, …). PORT defaults to 0, ATRIUM_HOME to a temp dir. */
  env?: Record<string, string>;
  /** Extra Node.js options before the entry point (e.g. `--cpu-prof`, not allowed in NODE_OPTIONS). */
  nodeArgs?: string[];
  /** Entry point: `src/main.ts` (under tsx) by default; a built `.js` one runs on plain node. */
  main?: string;
  timeoutMs?: number;
}

/**
 * Runs the gateway as `npm start` does (`tsx src/main.ts`), or the built entry point given as
 * `main` as `npm run start:prod` does, and resolves once it logs "Atrium is listening" with its
 * URL.
 */
export async function spawnGateway(options: SpawnGatewayOptions = {}): Promise<SpawnedGateway> {
  const home = options.env?.ATRIUM_HOME ?? mkdtempSync(join(tmpdir(), 'atrium-home-'));
  const main = options.main ?? MAIN;
  const loader = main.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, main], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ATRIUM_HOME: home, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`gateway did not start within ${options.timeoutMs ?? 60_000} ms:\n${output}`),
      );
    }, options.timeoutMs ?? 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match = /"url":"(http:\/\/[^"]+)".*"msg":"Atrium is listening"/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening:\n${output}`));
    });
  });
  let exited: Promise<number | null> | undefined;
  return {
    url,
    process: child,
    output: () => output,
    stop(graceMs = 15_000) {
      exited ??= new Promise<number | null>((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.once('exit', (code) => {
          clearTimeout(timer);
          if (!options.env?.ATRIUM_HOME) rmSync(home, { recursive: true, force: true });
          resolve(code);
        });
        child.kill('SIGTERM');
      });
      return exited;
    },
  };
}
