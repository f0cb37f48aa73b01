import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateDevKeys, mintDevToken } from '../../src/auth/dev-keys.js';
import { spawnGateway, type SpawnedGateway } from '../support/spawn-gateway.js';
import { processAlive } from '../support/exclusive.js';

// Graceful shutdown of the real process (`node --import tsx src/main.ts`, demo mode, with
// Redis): SIGTERM under load → every request the gateway had accepted completes, new
// connections are refused, the process exits 0 within the grace period, and its model server
// child and Redis connections are gone.

const run = promisify(execFile);
const REDIS_DB = 11;
// Well within the plans' concurrency limits (pro 50, free 10), so none is refused as RATE_LIMITED
// even when a slow Redis makes a lease outlive its request.
const ACME_REQUESTS = 36;
const GLOBEX_REQUESTS = 6;
const IN_FLIGHT = ACME_REQUESTS + GLOBEX_REQUESTS;
const GRACE_MS = 15_000;
/**
 * Heavy enough to keep requests in flight for a while (50 customers, 300 orders, churn and
 * fraud scores each), light enough that 42 of them drain well within the 10 s grace period on
 * a loaded 2-core machine.
 */
const HEAVY_ACME =
  '{ customers(first: 50) { edges { node { id name email churnRisk { score label } orders(first: 6) { id amount currency fraudRisk { score label } } } } } }';
const HEAVY_GLOBEX =
  '{ customers(first: 50) { edges { node { id name email churnRisk { score label } orders(first: 6) { id amount currency } } } } }';

let home: string;
let gateway: SpawnedGateway;
let tokens: { acme: string; globex: string };
let redis: Redis;

/** The pid of the reference model server the demo gateway started as its child. */
async function modelServerPid(pid: number): Promise<number | undefined> {
  const { stdout } = await run('ps', ['-o', 'pid=,args=', '--ppid', String(pid)]).catch(() => ({
    stdout: '',
  }));
  const line = stdout.split('\n').find((l) => l.includes('model-server'));
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
}

function connectionRefused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

async function redisClientsOfDb(): Promise<number> {
  const list = (await redis.call('CLIENT', 'LIST')) as string;
  // Our own connection (on db 0) is not counted.
  return list.split('\n').filter((line) => line.includes(` db=${REDIS_DB} `)).length;
}

/** In-flight and finished GraphQL requests, from one scrape of the gateway's /metrics. */
async function counts(pool: Pool): Promise<{ inFlight: number; finished: number }> {
  const res = await pool.request({ method: 'GET', path: '/metrics' });
  const text = await res.body.text();
  const sum = (name: string) =>
    text
      .split('\n')
      .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      .reduce((total, line) => total + Number(line.split(' ').at(-1)), 0);
  return {
    inFlight: sum('atrium_graphql_requests_in_flight'),
    finished: sum('atrium_graphql_requests_total'),
  };
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'atrium-shutdown-'));
  const keys = await loadOrCreateDevKeys(home);
  tokens = {
    acme: await mintDevToken(keys, { tenant: 'acme', sub: 'e2e', scope: 'read predict' }),
    globex: await mintDevToken(keys, { tenant: 'globex', sub: 'e2e', scope: 'read predict' }),
  };
  redis = new Redis('redis://127.0.0.1:6379/0');
  gateway = await spawnGateway({
    // NODE_ENV as in a real run, not vitest's `test` (Apollo Server installs its own signal
    // handlers outside `test`, and they once cut the drain short).
    env: { ATRIUM_HOME: home, REDIS_URL: `redis://127.0.0.1:6379/${REDIS_DB}`, NODE_ENV: '' },
  });
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  const keys = await redis.select(REDIS_DB).then(() => redis.keys('atrium:*'));
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  rmSync(home, { recursive: true, force: true });
});

describe('graceful shutdown', () => {
  it('finishes every accepted request, refuses new connections, exits 0 and leaves nothing behind', async () => {
    const pid = gateway.process.pid ?? 0;
    // The demo banner (with the model server's URL) follows the "listening" line.
    let modelServerUrl: string | undefined;
    for (const until = Date.now() + 10_000; !modelServerUrl && Date.now() < until;) {
      modelServerUrl = /Model server: (http:\/\/\S+)/.exec(gateway.output())?.[1];
      if (!modelServerUrl) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(modelServerUrl).toBeDefined();
    const modelServer = await modelServerPid(pid);
    expect(modelServer).toBeDefined();
    expect(await redisClientsOfDb()).toBeGreaterThan(0);

    const pool = new Pool(gateway.url, { connections: IN_FLIGHT + 2 });
    const send = (tenant: 'acme' | 'globex') =>
      pool
        .request({
          method: 'POST',
          path: '/graphql',
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${tokens[tenant]}`,
          },
          body: JSON.stringify({ query: tenant === 'acme' ? HEAVY_ACME : HEAVY_GLOBEX }),
        })
        .then(async (res) => ({ status: res.statusCode, body: await res.body.text() }));
    // Warm up (first model calls, document cache), and note how many requests finished so far.
    for (const answer of await Promise.all([send('acme'), send('globex')])) {
      expect(answer.status, answer.body.slice(0, 200)).toBe(200);
    }
    // Send a burst and signal once the gateway has accepted all of it (in flight or finished,
    // by its own count) while many are still in flight. A burst that finishes too fast to catch
    // is checked and followed by another.
    let inFlight: Promise<{ status: number; body: string }>[] = [];
    let inFlightAtSignal = 0;
    for (let attempt = 0; attempt < 5 && inFlightAtSignal < 5; attempt += 1) {
      const before = (await counts(pool)).finished;
      inFlight = [
        ...Array.from({ length: ACME_REQUESTS }, () => send('acme')),
        ...Array.from({ length: GLOBEX_REQUESTS }, () => send('globex')),
      ];
      for (const until = Date.now() + 20_000; Date.now() < until;) {
        const now = await counts(pool);
        if (now.inFlight + now.finished - before >= IN_FLIGHT) {
          inFlightAtSignal = now.inFlight;
          break;
        }
      }
      if (inFlightAtSignal < 5) {
        for (const answer of await Promise.all(inFlight)) expect(answer.status).toBe(200);
      }
    }
    const signalled = Date.now();
    gateway.process.kill('SIGTERM');
    const exited = new Promise<number | null>((resolve) => gateway.process.once('exit', resolve));

    // New connections are refused once draining starts.
    let refused = false;
    for (const until = Date.now() + 5_000; Date.now() < until && !refused;) {
      refused = await connectionRefused(gateway.url);
      if (!refused) await new Promise((resolve) => setTimeout(resolve, 20));
    }

    const answers = await Promise.allSettled(inFlight);
    const failed = answers
      .filter((a) => a.status === 'rejected' || a.value.status !== 200)
      .map((a) =>
        a.status === 'rejected'
          ? String(a.reason)
          : `${a.value.status} ${a.value.body.slice(0, 200)}`,
      );
    const code = await Promise.race([
      exited,
      new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), GRACE_MS)),
    ]);
    const exitMs = Date.now() - signalled;
    await pool.close();
    console.log(
      `shutdown: ${IN_FLIGHT} requests accepted (${inFlightAtSignal} in flight at SIGTERM), ${failed.length} failed ${failed.slice(0, 3).join(' | ')}, new connections refused: ${refused}, exit ${String(code)} after ${exitMs} ms`,
    );

    // Not vacuous: the signal came while the gateway was still answering many of them.
    expect(inFlightAtSignal).toBeGreaterThanOrEqual(5);
    expect(failed).toEqual([]);
    expect(refused).toBe(true);
    expect(code).toBe(0);
    expect(gateway.output()).toMatch(/"msg":"draining"/);
    expect(gateway.output()).not.toMatch(/shutdown failed|unhandled rejection/);
    // The model server child is gone (not orphaned), and so are the Redis connections.
    expect(processAlive(modelServer ?? 0), `model server ${modelServer}`).toBe(false);
    expect(await connectionRefused(modelServerUrl ?? '')).toBe(true);
    expect(await redisClientsOfDb()).toBe(0);
  }, 90_000);
});
