/**
 * Runs bench/lib/load-client.mjs (autocannon) in a child process against one server and
 * returns its summary, with the server's CPU use over the measured part of the run.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { cpuSeconds, ROOT } from './processes.js';

const CLIENT = join(ROOT, 'bench/lib/load-client.mjs');

export interface LoadSpec {
  /** Full URL of the GraphQL endpoint. */
  url: string;
  headers: Record<string, string>;
  /** Request bodies, sent in turn across all connections. */
  bodies: string[];
  /** How `bodies` are written: text as is (default), or base64 of bytes sent as they are. */
  bodyEncoding?: 'utf8' | 'base64' | undefined;
  connections: number;
  warmupSeconds: number;
  durationSeconds: number;
  timeoutSeconds?: number;
  /**
   * Send exactly this many requests (all answered, none cut off) instead of running for
   * `durationSeconds`: for server-side counters, which then divide exactly.
   */
  amount?: number;
}

export interface LoadResult {
  seconds: number;
  connections: number;
  /** Requests sent, including those still in flight when the run stopped. */
  requests: number;
  completed: number;
  /** 2xx answers without GraphQL errors. */
  ok: number;
  okPerSecond: number;
  non2xx: number;
  graphqlErrors: number;
  errors: number;
  timeouts: number;
  firstError?: string;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
  clientCpuSeconds: number;
  /** Requests sent (answered or still in flight at the end) during the warm-up. */
  warmupSent: number;
  /** Answers (any status) and good answers during the warm-up. */
  warmupCompleted: number;
  warmupOk: number;
  /** CPU cores the server process used over the measured seconds (1.0 = one core busy). */
  serverCores?: number | undefined;
  /** The same for other processes of the setup (e.g. the model server). */
  otherCores?: Record<string, number>;
}

/**
 * One warm-up plus one measured run from a separate process. `serverPid` and `otherPids`
 * (optional) are sampled from /proc when the measured part starts and ends.
 */
export async function runLoad(
  spec: LoadSpec,
  serverPid?: number,
  otherPids: Readonly<Record<string, number>> = {},
): Promise<LoadResult> {
  const pids: [string, number][] = [
    ...(serverPid === undefined ? [] : [['server', serverPid] as [string, number]]),
    ...Object.entries(otherPids),
  ];
  const sample = () => ({
    at: performance.now(),
    cpu: Object.fromEntries(pids.map(([name, pid]) => [name, cpuSeconds(pid)])),
  });
  const child = spawn(process.execPath, [CLIENT], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let cpuStart: ReturnType<typeof sample> | undefined;
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    if (cpuStart === undefined && stderr.includes('measure\n')) cpuStart = sample();
  });
  child.stdin.end(JSON.stringify(spec));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const end = sample();
  if (code !== 0) throw new Error(`load client exited with ${code}: ${stderr.slice(-2000)}`);
  const result = JSON.parse(stdout) as LoadResult;
  if (cpuStart) {
    const seconds = (end.at - cpuStart.at) / 1000;
    const cores = Object.fromEntries(
      pids.map(([name]) => [name, ((end.cpu[name] ?? 0) - (cpuStart?.cpu[name] ?? 0)) / seconds]),
    );
    result.serverCores = cores.server;
    delete cores.server;
    if (Object.keys(cores).length > 0) result.otherCores = cores;
  }
  return result;
}
