import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentHash } from '../../src/server/persisted-queries.js';
import { startRedisCluster, type RedisClusterProcesses } from '../support/redis-cluster.js';
import { spawnGateway, type SpawnedGateway } from '../support/spawn-gateway.js';
import { dropSchema, uniqueControlSchema } from '../support/control-schema.js';
import { holdExclusive } from '../support/exclusive.js';
import { createTestSigner, type TestSigner } from '../support/tokens.js';
import {
  countBy,
  drive,
  send,
  type Target,
  untilReady,
  writeGatewayConfig,
} from '../support/traffic.js';
import { uniqueTenant } from '../unit/store/store-contract.js';

const run = promisify(execFile);

/** L: the tenant's sustained rate. */
const LIMIT_PER_SECOND = 20;
/**
 * Requests an idle bucket admits at once on top of the steady one. Not 0: with burst 0 every
 * pause of more than 1/L s in the offered load (a client or gateway stalled by the scheduler)
 * wastes capacity for good, and the count would measure the machine rather than the limit.
 * A second of slack absorbs that; the initial `burst + 1` is subtracted from the count.
 */
const BURST = 20;
const WINDOW_MS = 10_000;
/** Offered load: 5 × L, spread round-robin over the three replicas. */
const OFFERED_PER_SECOND = 100;

const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Three gateway processes (`node --import tsx src/main.ts`, production config) on one 3-master
 * Redis Cluster, acting as one gateway: one rate limit, one tenant config.
 */
describe('three gateway processes on a 3-node Redis Cluster', () => {
  const rated = uniqueTenant('e2e-rate');
  const live = uniqueTenant('e2e-live');
  const shared = uniqueTenant('e2e-workers');
  const operator = uniqueTenant('e2e-ops');
  const controlSchema = uniqueControlSchema('replicas');
  let signer: TestSigner;
  let cluster: RedisClusterProcesses;
  let dir: string;
  let configPath: string;
  const gateways: SpawnedGateway[] = [];

  let release: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    // One load-driving multi-process suite at a time (see test/support/exclusive.ts).
    release = await holdExclusive('gateway-processes');
    signer = await createTestSigner();
    dir = await mkdtemp(join(tmpdir(), 'atrium-replicas-'));
    cluster = await startRedisCluster(3);
    configPath = await writeGatewayConfig(dir, 'gateway', signer, {
      // A broken store must show as 503s here, not hide behind per-process limits; the
      // deadline is generous because this test measures the limit, not outages, on a small
      // machine that runs other suites at the same time.
      limits: { fallback: 'refuse' },
      redis: { commandTimeoutMs: 1_000 },
      admin: { tenant: operator },
      // The durable copy of operator decisions in a schema of this file's own.
      liveConfig: { pollIntervalMs: 500, controlSchema },
      tenants: [
        {
          id: rated,
          displayName: 'Rate-limited',
          data: { strategy: 'row' },
          limits: {
            rateLimit: { perSecond: LIMIT_PER_SECOND, burst: BURST },
            // Only the rate may refuse in this test.
            maxConcurrent: 10_000,
          },
        },
        { id: live, displayName: 'Live', data: { strategy: 'row' } },
        {
          id: shared,
          displayName: 'Workers',
          data: { strategy: 'row' },
          limits: { rateLimit: { perSecond: 1, burst: 4 } },
        },
      ],
    });
    const env = {
      ATRIUM_CONFIG: configPath,
      REDIS_CLUSTER_NODES: cluster.nodes.join(','),
      DATABASE_URL,
    };
    gateways.push(...(await Promise.all([0, 1, 2].map(() => spawnGateway({ env })))));
    // What a load balancer waits for: listening is not enough, the store must be connected.
    await Promise.all(gateways.map((g) => untilReady(g.url)));
  }, 180_000);

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop(5_000)));
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    await dropSchema(controlSchema);
    await release?.();
  });

  it(`admits L ± 5% across the replicas (L = ${LIMIT_PER_SECOND}/s, ${WINDOW_MS / 1000} s at ${OFFERED_PER_SECOND}/s)`, async () => {
    const token = await signer.sign({ tenant: rated });
    const targets: Target[] = gateways.map((g, i) => ({
      label: `replica-${i}`,
      url: g.url,
      token,
    }));
    const samples = await drive({
      targets,
      perSecond: OFFERED_PER_SECOND,
      durationMs: WINDOW_MS,
    });
    const byStatus = countBy(samples, (s) => String(s.status));
    const accepted = byStatus['200'] ?? 0;
    // The idle bucket's burst + 1 at the start, then L per second.
    const expected = (LIMIT_PER_SECOND * WINDOW_MS) / 1000;
    const steady = accepted - (BURST + 1);
    const perReplica = countBy(
      samples.filter((s) => s.status === 200),
      (s) => s.target,
    );
    // eslint-disable-next-line no-console -- the measured figures, for the acceptance report
    console.info(
      `sent ${samples.length}, accepted ${accepted} = ${BURST + 1} (burst + 1) + ${steady} ` +
        `(L×T = ${expected}, ±5% = ${expected * 0.95}–${expected * 1.05}), ` +
        `statuses ${JSON.stringify(byStatus)}, accepted per replica ${JSON.stringify(perReplica)}, ` +
        `max latency ${Math.max(...samples.map((s) => s.latencyMs)).toFixed(0)} ms`,
    );
    expect(samples.length).toBe((OFFERED_PER_SECOND * WINDOW_MS) / 1000);
    // Every request answered, by the limiter (never a 503: the store did not fail).
    expect(Object.keys(byStatus).sort()).toEqual(['200', '429']);
    expect(steady).toBeGreaterThanOrEqual(expected * 0.95);
    expect(steady).toBeLessThanOrEqual(expected * 1.05);
    // Each replica admitted some: one shared bucket, not three.
    expect(Object.keys(perReplica)).toHaveLength(3);
    const refused = samples.filter((s) => s.status === 429);
    expect(new Set(refused.map((s) => `${s.code}/${s.reason}`))).toEqual(
      new Set(['RATE_LIMITED/RATE']),
    );
    expect(
      refused.every((s) => s.retryAfter === '1' && /^tenant;r=0;t=1$/.test(s.rateLimit ?? '')),
    ).toBe(true);
  });

  it('refuses a tenant suspended through one replica on every replica within 1 s', async () => {
    const token = await signer.sign({ tenant: live });
    const adminToken = await signer.sign({ tenant: operator, scope: 'atrium:admin' });
    const targets = gateways.map((g, i) => ({ label: `replica-${i}`, url: g.url, token }));
    for (const target of targets)
      expect((await send(target, '{ viewer { subject } }', 5_000)).status).toBe(200);

    const admin = (action: string) =>
      fetch(`${gateways[1]!.url}/admin/tenants/${live}/${action}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}` },
      });
    const until = async (status: number): Promise<number> => {
      const started = performance.now();
      const open = new Set(targets.map((t) => t.label));
      while (open.size > 0 && performance.now() - started < 5_000) {
        const answers = await Promise.all(
          targets
            .filter((t) => open.has(t.label))
            .map((t) => send(t, '{ viewer { subject } }', 5_000)),
        );
        for (const answer of answers) if (answer.status === status) open.delete(answer.target);
      }
      expect([...open]).toEqual([]);
      return performance.now() - started;
    };

    expect((await admin('suspend')).status).toBe(200);
    const suspendedAfter = await until(403);
    expect((await admin('resume')).status).toBe(200);
    const resumedAfter = await until(200);
    // eslint-disable-next-line no-console -- the measured figures, for the acceptance report
    console.info(
      `suspension refused by all 3 replicas after ${suspendedAfter.toFixed(0)} ms; resume served after ${resumedAfter.toFixed(0)} ms`,
    );
    expect(suspendedAfter).toBeLessThan(1_000);
    expect(resumedAfter).toBeLessThan(1_000);
  });

  it("keeps all of a tenant's keys in one slot, on one node", async () => {
    // Give the rate-limited tenant a persisted query and a config record as well (after the
    // bucket refilled, so the registration is admitted).
    const token = await signer.sign({ tenant: rated });
    const query = '{ viewer { tenant { id } } }';
    await new Promise((resolve) => setTimeout(resolve, 600));
    const registered = await fetch(`${gateways[2]!.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        query,
        extensions: { persistedQuery: { version: 1, sha256Hash: documentHash(query) } },
      }),
    });
    expect(registered.status).toBe(200);
    const adminToken = await signer.sign({ tenant: operator, scope: 'atrium:admin' });
    const resumed = await fetch(`${gateways[0]!.url}/admin/tenants/${rated}/resume`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(resumed.status).toBe(200);

    // Traffic while scanning: the GCRA state expires once the bucket is full again (0.55 s).
    const targets = gateways.map((g, i) => ({ label: `replica-${i}`, url: g.url, token }));
    const background = drive({ targets, perSecond: 50, durationMs: 2_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const found: { node: string; key: string; slot: number }[] = [];
    for (const node of cluster.nodes) {
      const [host, port] = node.split(':') as [string, string];
      const client = new Redis({ host, port: Number(port), lazyConnect: true });
      await client.connect();
      try {
        let cursor = '0';
        do {
          const [next, keys] = await client.scan(
            cursor,
            'MATCH',
            `atrium:{${rated}}:*`,
            'COUNT',
            1000,
          );
          for (const key of keys) {
            found.push({ node, key, slot: Number(await client.cluster('KEYSLOT', key)) });
          }
          cursor = next;
        } while (cursor !== '0');
      } finally {
        client.disconnect();
      }
    }
    await background;
    const kinds = found.map((f) => f.key.split(':')[2]).sort();
    expect(kinds).toEqual(expect.arrayContaining(['config', 'pq', 'rl']));
    const { stdout } = await run('redis-cli', [
      '-p',
      cluster.nodes[0]!.split(':')[1]!,
      'cluster',
      'keyslot',
      `{${rated}}`,
    ]);
    const tagSlot = Number(stdout.trim());
    expect(new Set(found.map((f) => f.slot))).toEqual(new Set([tagSlot]));
    expect(new Set(found.map((f) => f.node)).size).toBe(1);
    // eslint-disable-next-line no-console -- the measured figures, for the acceptance report
    console.info(
      `keys of ${rated}: ${found.map((f) => f.key).join(', ')} — all in slot ${tagSlot} on ${found[0]?.node}`,
    );
  });

  it('runs one gateway as a primary with two workers that share the port and the limits', async () => {
    const primary = await spawnGateway({
      env: {
        ATRIUM_CONFIG: configPath,
        ATRIUM_WORKERS: '2',
        REDIS_CLUSTER_NODES: cluster.nodes.join(','),
        DATABASE_URL,
      },
    });
    try {
      const pid = primary.process.pid as number;
      // The primary's children that run the gateway (tsx may also run an esbuild service).
      const workers = async (): Promise<number[]> => {
        const { stdout } = await run('ps', ['-o', 'pid=,args=', '--ppid', String(pid)]).catch(
          () => ({ stdout: '' }),
        );
        return stdout
          .split('\n')
          .filter((line) => line.includes('src/main.ts'))
          .map((line) => Number.parseInt(line.trim(), 10));
      };
      // Both workers listen on the one port (the second may log after the first).
      await expect.poll(workers, { timeout: 30_000, interval: 200 }).toHaveLength(2);
      await expect
        .poll(() => (primary.output().match(/Atrium is listening/g) ?? []).length, {
          timeout: 30_000,
          interval: 200,
        })
        .toBe(2);

      // One bucket for both workers: burst 4 + 1 admitted of 20 quick requests, not 2 × 5.
      const token = await signer.sign({ tenant: shared });
      const target = { label: 'workers', url: primary.url, token };
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => send(target, '{ viewer { subject } }', 5_000)),
      );
      expect(countBy(answers, (a) => String(a.status))).toEqual({ '200': 5, '429': 15 });

      // A worker that dies is replaced; the port keeps answering meanwhile.
      const [victim] = await workers();
      process.kill(victim as number, 'SIGKILL');
      // Replaced: a new worker is serving on the port.
      await expect
        .poll(() => (primary.output().match(/Atrium is listening/g) ?? []).length, {
          timeout: 30_000,
          interval: 200,
        })
        .toBe(3);
      const now = await workers();
      expect(now).toHaveLength(2);
      expect(now).not.toContain(victim);
      expect((await fetch(`${primary.url}/healthz`)).status).toBe(200);
      const before = await workers();
      expect(await primary.stop(10_000)).toBe(0);
      for (const worker of before) expect(() => process.kill(worker, 0)).toThrow();
    } finally {
      await primary.stop(2_000);
    }
  }, 60_000);
});
