/**
 * The processes a benchmark measures: the real gateway (`node --import tsx src/main.ts`, as
 * `npm start` runs it, with a config file) and the baseline servers under bench/servers/. Every
 * server runs in its own process, apart from the load generator and from this orchestrator.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  spawnGateway,
  type SpawnedGateway,
  type SpawnGatewayOptions,
} from '../../test/support/spawn-gateway.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OUTPUT_TAIL = 16 * 1024;

/** A server under test. */
export interface ServerProcess {
  name: string;
  /** Base URL, e.g. http://127.0.0.1:40123. */
  url: string;
  pid: number;
  /** From spawn to "listening". */
  startupMs: number;
  /** What the process wrote so far (start-up diagnostics). */
  output(): string;
  /** SIGTERM, wait for exit (SIGKILL after a grace period). */
  stop(): Promise<void>;
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / ticksPerSecond();
}

/** Resident set size of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match?.[1]) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

export interface AtriumProcessOptions {
  name: string;
  /** The config file's content (written as JSON). */
  config: unknown;
  /** Where to write the config file. */
  dir: string;
  databaseUrl: string;
  /** Empty string: the in-process memory store. */
  redisUrl: string;
  /** Extra Node.js options for the gateway process (e.g. --cpu-prof). */
  nodeOptions?: string[] | undefined;
  /** Preload the memory probe (see `liveMemory`): `--expose-gc` and a SIGUSR2 handler. */
  memoryProbe?: boolean | undefined;
  timeoutMs?: number | undefined;
  /**
   * Another checkout of Atrium to run (its own `src/main.ts` and node_modules, e.g. an older
   * commit measured side by side); default this one.
   */
  root?: string | undefined;
  /**
   * A built entry point of this checkout to run on plain `node` instead of `src/main.ts` under
   * tsx (as `npm run start:prod` runs dist/src/main.js); see bench/lib/build.ts.
   */
  main?: string | undefined;
}

/**
 * Starts the real gateway with a config file, NODE_ENV=production and the default log level
 * (info), exactly as an operator would: `ATRIUM_CONFIG=… DATABASE_URL=… REDIS_URL=… npm start`.
 */
export async function startAtrium(options: AtriumProcessOptions): Promise<ServerProcess> {
  await mkdir(options.dir, { recursive: true });
  const configPath = join(options.dir, `${options.name}.config.json`);
  await writeFile(configPath, JSON.stringify(options.config));
  const started = performance.now();
  const spawnOne = options.root === undefined ? spawnGateway : spawnGatewayIn(options.root);
  const gateway = await spawnOne({
    env: {
      ATRIUM_CONFIG: configPath,
      NODE_ENV: 'production',
      DATABASE_URL: options.databaseUrl,
      REDIS_URL: options.redisUrl,
      REDIS_CLUSTER_NODES: '',
    },
    nodeArgs: [...(options.memoryProbe ? MEMORY_PROBE_ARGS : []), ...(options.nodeOptions ?? [])],
    ...(options.main === undefined ? {} : { main: options.main }),
    timeoutMs: options.timeoutMs ?? 120_000,
  });
  const startupMs = performance.now() - started;
  const pid = gateway.process.pid;
  if (pid === undefined) throw new Error(`${options.name}: no pid`);
  // The gateway logs every request at info (its default level, kept: that is production). Keep
  // draining its pipes, but only a tail of them, or this process would hold every log line.
  let tail = gateway.output().slice(-OUTPUT_TAIL);
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
  };
  for (const stream of [gateway.process.stdout, gateway.process.stderr]) {
    stream?.removeAllListeners('data');
    stream?.on('data', keep);
  }
  return {
    name: options.name,
    url: gateway.url,
    pid,
    startupMs,
    output: () => tail,
    async stop() {
      await gateway.stop(20_000);
    },
  };
}

/**
 * `spawnGateway` for another checkout: `node --import tsx <root>/src/main.ts` with `root` as the
 * working directory (so `tsx` and every package come from that checkout's node_modules, as
 * with `npm start` there), ready at the same "Atrium is listening" log line.
 */
function spawnGatewayIn(root: string) {
  return async (options: SpawnGatewayOptions): Promise<SpawnedGateway> => {
    const home = await mkdtemp(join(tmpdir(), 'atrium-home-'));
    const child = spawn(
      process.execPath,
      [...(options.nodeArgs ?? []), '--import', 'tsx', join(root, 'src/main.ts')],
      {
        cwd: root,
        env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ATRIUM_HOME: home, ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    const timeoutMs = options.timeoutMs ?? 60_000;
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`gateway in ${root} did not start within ${timeoutMs} ms:\n${output}`));
      }, timeoutMs);
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
        reject(new Error(`gateway in ${root} exited with ${code} before listening:\n${output}`));
      });
    });
    let exited: Promise<number | null> | undefined;
    return {
      url,
      process: child,
      output: () => output,
      stop(graceMs = 15_000) {
        exited ??= new Promise<number | null>((resolve) => {
          const done = (code: number | null) => {
            void rm(home, { recursive: true, force: true }).finally(() => resolve(code));
          };
          if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode);
          const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          child.once('exit', (code) => {
            clearTimeout(timer);
            done(code);
          });
          child.kill('SIGTERM');
        });
        return exited;
      },
    };
  };
}

/**
 * Runs in the gateway process when preloaded (nothing added to src/): on SIGUSR2 it collects all
 * garbage and writes `process.memoryUsage()` to /tmp/atrium-bench-memory-<pid>.json. After a full
 * GC `heapUsed` is the live heap, which says what the tenants cost; RSS also holds whatever the
 * heap grew to under load and has not given back.
 */
const MEMORY_PROBE = `
import { writeFileSync } from 'node:fs';
process.on('SIGUSR2', () => {
  globalThis.gc?.();
  writeFileSync('/tmp/atrium-bench-memory-' + process.pid + '.json', JSON.stringify(process.memoryUsage()));
});
`;
const MEMORY_PROBE_ARGS = [
  '--expose-gc',
  '--import',
  `data:text/javascript,${encodeURIComponent(MEMORY_PROBE)}`,
];

/** `process.memoryUsage()` of a gateway started with `memoryProbe`, right after a full GC. */
export async function liveMemory(pid: number): Promise<NodeJS.MemoryUsage> {
  const file = `/tmp/atrium-bench-memory-${pid}.json`;
  await rm(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 100; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    try {
      const usage = JSON.parse(await readFile(file, 'utf8')) as NodeJS.MemoryUsage;
      await rm(file, { force: true });
      return usage;
    } catch {
      // Not written (completely) yet.
    }
  }
  throw new Error(`no memory report from pid ${pid}`);
}

function waitForExit(child: ChildProcess, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Starts one of bench/servers/*.ts (a baseline) with the same runtime as the gateway
 * (`node --import tsx`, NODE_ENV=production); it prints `listening <url>` when ready.
 */
export function startScript(name: string, script: string): Promise<ServerProcess> {
  return startListening(name, ['--import', 'tsx', join(ROOT, script)], {});
}

/**
 * Starts a plain JavaScript server (e.g. a peer of bench/peers/, built by bench/lib/build.ts)
 * on `node` without tsx, NODE_ENV=production and PORT=0 plus `env`; it prints
 * `listening <url>` when ready.
 */
export function startNodeScript(
  name: string,
  file: string,
  env: Record<string, string>,
): Promise<ServerProcess> {
  return startListening(name, [file], env);
}

async function startListening(
  name: string,
  args: string[],
  env: Record<string, string>,
): Promise<ServerProcess> {
  const started = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'production', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start within 60 s:\n${output}`));
    }, 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match = /^listening (http:\/\/\S+)$/m.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1].replace(/\/$/, ''));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before listening:\n${output}`));
    });
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: no pid`);
  return {
    name,
    url,
    pid,
    startupMs: performance.now() - started,
    output: () => output,
    stop: () => waitForExit(child, 10_000),
  };
}
