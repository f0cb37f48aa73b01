import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  startRedisServer,
  type RedisServer,
} from '../integration/store/redis-process.js';
import { spawnGateway, type SpawnedGateway } from '../support/spawn-gateway.js';
import { dropSchema, uniqueControlSchema } from '../support/control-schema.js';
import { holdExclusive } from '../support/exclusive.js';
import { createTestSigner, type TestSigner } from '../support/tokens.js';
import {
  countBy,
  drive,
  type Sample,
  type Target,
  untilReady,
  writeGatewayConfig,
} from '../support/traffic.js';
import { uniqueTenant } from '../unit/store/store-contract.js';

/** The configured Redis deadline: no store call of a request may wait longer. */
const COMMAND_TIMEOUT_MS = 250;
/**
 * "Answered within the configured timeout": a request makes at most two store calls that can
 * wait (rate check, lease) before a fallback decides, so 2 × the deadline, plus 1.5 s of
 * slack for a 2-core machine that runs other suites meanwhile. A hang would show as the
 * client's own 10 s timeout (status 0).
 */
const ANSWER_BOUND_MS = 2 * COMMAND_TIMEOUT_MS + 1_500;
const LIMIT = { perSecond: 10, burst: 5 };
const RECOVERY_BOUND_MS = 10_000;

// The timeline of the run (ms after the traffic starts).
const HANG_AT = 4_000;
const KILL_AT = 7_000;
const RESTART_AT = 10_000;
const TRAFFIC_MS = 20_000;
/** Requests this close after a transition are not counted in either phase. */
const SETTLE_MS = 400;

const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Three gateway processes on one Redis of their own (`redis-server` on a free port), which the
 * test first freezes (SIGSTOP: connections stay open, nothing answers), then kills, then
 * starts again on the same port. Two gateways fall back to per-process limits (`local`), one
 * refuses (`refuse`), as configured.
 */
describe('gateways through a Redis outage: bounded answers, configured fallback, recovery', () => {
  const shared = uniqueTenant('out-shared');
  const strict = uniqueTenant('out-strict');
  const controlSchema = uniqueControlSchema('outage');
  let signer: TestSigner;
  let dir: string;
  let port: number;
  let redis: RedisServer | undefined;
  const gateways: SpawnedGateway[] = [];

  let release: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    // One load-driving multi-process suite at a time (see test/support/exclusive.ts).
    release = await holdExclusive('gateway-processes');
    signer = await createTestSigner();
    dir = await mkdtemp(join(tmpdir(), 'atrium-outage-'));
    port = await freePort();
    redis = await startRedisServer(port);
    const tenants = [
      {
        id: shared,
        displayName: 'Shared limit',
        data: { strategy: 'row' },
        limits: { rateLimit: LIMIT, maxConcurrent: 10_000 },
      },
      {
        id: strict,
        displayName: 'Refused while the limiter is down',
        data: { strategy: 'row' },
        limits: { rateLimit: { perSecond: 1_000, burst: 1_000 }, maxConcurrent: 10_000 },
      },
    ];
    const base = {
      redis: { commandTimeoutMs: COMMAND_TIMEOUT_MS },
      // The durable copy of operator decisions in a schema of this file's own.
      liveConfig: { pollIntervalMs: 500, controlSchema },
      tenants,
    };
    const local = await writeGatewayConfig(dir, 'local', signer, {
      ...base,
      limits: { fallback: 'local' },
    });
    const refuse = await writeGatewayConfig(dir, 'refuse', signer, {
      ...base,
      limits: { fallback: 'refuse' },
    });
    const env = (config: string) => ({
      ATRIUM_CONFIG: config,
      REDIS_URL: `redis://127.0.0.1:${port}`,
      DATABASE_URL,
    });
    gateways.push(
      ...(await Promise.all([local, local, refuse].map((c) => spawnGateway({ env: env(c) })))),
    );
    await Promise.all(gateways.map((g) => untilReady(g.url)));
  }, 180_000);

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop(5_000)));
    await redis?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
    await dropSchema(controlSchema);
    await release?.();
  });

  it('answers every request in bounded time, limits as configured, and recovers without a restart', async () => {
    const sharedToken = await signer.sign({ tenant: shared });
    const strictToken = await signer.sign({ tenant: strict });
    const [a, b, c] = gateways as [SpawnedGateway, SpawnedGateway, SpawnedGateway];
    const targets: Target[] = [
      { label: 'local-a', url: a.url, token: sharedToken },
      { label: 'local-b', url: b.url, token: sharedToken },
      { label: 'local-a', url: a.url, token: sharedToken },
      { label: 'local-b', url: b.url, token: sharedToken },
      { label: 'refuse', url: c.url, token: strictToken },
    ];
    // 40/s for the shared tenant (20/s per local gateway, 4 × L), 10/s to the refusing one.
    const start = performance.now();
    const traffic = drive({ targets, perSecond: 50, durationMs: TRAFFIC_MS, timeoutMs: 10_000 });
    const at = (ms: number) =>
      new Promise((resolve) => setTimeout(resolve, start + ms - performance.now()));

    await at(HANG_AT);
    redis!.signal('SIGSTOP');
    await at(KILL_AT);
    await redis!.kill();
    await at(RESTART_AT);
    redis = await startRedisServer(port);
    const restarted = performance.now();
    await Promise.all(gateways.map((g) => untilReady(g.url, RECOVERY_BOUND_MS + 5_000)));
    const recoveredMs = performance.now() - restarted;
    const samples = await traffic;

    const rel = (s: Sample) => s.sentAt - start;
    const within = (from: number, to: number) =>
      samples.filter((s) => rel(s) >= from + SETTLE_MS && rel(s) < to);
    const normal = within(0, HANG_AT);
    const outage = within(HANG_AT, RESTART_AT);
    const recoveredAt = restarted - start + recoveredMs;
    const after = within(recoveredAt, TRAFFIC_MS);
    const seconds = (list: Sample[]) =>
      list.length === 0 ? 0 : (Math.max(...list.map(rel)) - Math.min(...list.map(rel))) / 1000;
    const accepted = (list: Sample[], target?: string) =>
      list.filter(
        (s) => s.status === 200 && s.target !== 'refuse' && (!target || s.target === target),
      ).length;
    const statuses = (list: Sample[], target: string) =>
      countBy(
        list.filter((s) => s.target === target),
        (s) => String(s.status),
      );
    const maxLatency = Math.max(...samples.map((s) => s.latencyMs));
    const outageSeconds = seconds(outage.filter((s) => s.target !== 'refuse'));
    const afterSeconds = seconds(after.filter((s) => s.target !== 'refuse'));
    // eslint-disable-next-line no-console -- the measured figures, for the acceptance report
    console.info(
      [
        `requests ${samples.length}, max latency ${maxLatency.toFixed(0)} ms (bound ${ANSWER_BOUND_MS} ms), ` +
          `recovered ${recoveredMs.toFixed(0)} ms after the restart (bound ${RECOVERY_BOUND_MS} ms)`,
        `normal:  shared tenant accepted ${accepted(normal)} in ${seconds(normal).toFixed(1)} s; refuse gateway ${JSON.stringify(statuses(normal, 'refuse'))}`,
        `outage:  accepted local-a ${accepted(outage, 'local-a')}, local-b ${accepted(outage, 'local-b')} in ${outageSeconds.toFixed(1)} s ` +
          `(each ≤ L×T + burst + 1 = ${(LIMIT.perSecond * outageSeconds + LIMIT.burst + 1).toFixed(0)}); refuse gateway ${JSON.stringify(statuses(outage, 'refuse'))}`,
        `after:   shared tenant accepted ${accepted(after)} in ${afterSeconds.toFixed(1)} s (L×T = ${(LIMIT.perSecond * afterSeconds).toFixed(0)}); refuse gateway ${JSON.stringify(statuses(after, 'refuse'))}`,
      ].join('\n'),
    );

    // No hang: everything answered, none slower than the bound.
    expect(samples.filter((s) => s.status === 0)).toEqual([]);
    expect(maxLatency).toBeLessThan(ANSWER_BOUND_MS);
    expect(recoveredMs).toBeLessThan(RECOVERY_BOUND_MS);

    // `local`: never an error; each process limits on its own while Redis is away.
    for (const target of ['local-a', 'local-b']) {
      const seen = Object.keys(
        countBy(
          samples.filter((s) => s.target === target),
          (s) => String(s.status),
        ),
      );
      expect(seen.sort()).toEqual(['200', '429']);
      const own = accepted(outage, target);
      expect(own).toBeLessThanOrEqual(LIMIT.perSecond * outageSeconds * 1.1 + LIMIT.burst + 1);
      expect(own).toBeGreaterThanOrEqual(LIMIT.perSecond * outageSeconds * 0.8);
    }
    // Together the two admitted about twice the shared limit: that is the documented cost.
    expect(accepted(outage)).toBeGreaterThan(LIMIT.perSecond * outageSeconds * 1.5);

    // `refuse`: served before and after, a retryable 503 while the limiter cannot decide.
    expect(statuses(normal, 'refuse')).toEqual({ '200': expect.any(Number) });
    expect(statuses(outage, 'refuse')).toEqual({ '503': expect.any(Number) });
    const refusals = outage.filter((s) => s.target === 'refuse');
    expect(
      refusals.every(
        (s) =>
          s.code === 'RATE_LIMITED' && s.reason === 'LIMITER_UNAVAILABLE' && s.retryAfter === '1',
      ),
    ).toBe(true);
    expect(statuses(after, 'refuse')).toEqual({ '200': expect.any(Number) });

    // Shared again after recovery: the two gateways together keep to one limit, not two.
    const sharedAfter = accepted(after);
    expect(sharedAfter).toBeLessThanOrEqual(LIMIT.perSecond * afterSeconds * 1.1 + LIMIT.burst + 1);
    expect(sharedAfter).toBeGreaterThanOrEqual(LIMIT.perSecond * afterSeconds * 0.8);
    expect(accepted(normal)).toBeLessThanOrEqual(
      LIMIT.perSecond * seconds(normal) * 1.1 + LIMIT.burst + 1,
    );
  }, 60_000);
});
