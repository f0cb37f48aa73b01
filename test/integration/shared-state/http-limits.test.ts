import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/backends/data/types.js';
import { concurrencyKey, rateLimitKey } from '../../../src/store/keys.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner, type TestSigner } from '../../support/tokens.js';
import { uniqueTenant } from '../../unit/store/store-contract.js';
import {
  admissionOn,
  closeReplica,
  connectReplica,
  deleteTenantKeys,
  eventually,
  recordingPredictor,
  REDIS_HOST_URL,
  type Replica,
  TWO_FEATURE_MODEL,
  unusedDataSource,
} from './support.js';

// Two gateways, each with its own Redis connection (as two replicas have), on database 14.
const REDIS_URL = `${REDIS_HOST_URL}/14`;

describe('rate and concurrency limits over HTTP, shared by two gateways through Redis', () => {
  const rated = uniqueTenant('rate');
  const busy = uniqueTenant('conc');
  const other = uniqueTenant('other');
  const lean = uniqueTenant('lean');
  const predictor = recordingPredictor();
  let signer: TestSigner;
  let dataSource: DataSource;
  const replicas: Replica[] = [];
  const gateways: TestGateway[] = [];

  beforeAll(async () => {
    signer = await createTestSigner();
    dataSource = unusedDataSource();
    for (let i = 0; i < 2; i += 1) {
      const replica = await connectReplica(REDIS_URL);
      replicas.push(replica);
      gateways.push(
        await startTestGateway({
          signer,
          dataSource,
          predictor,
          admission: admissionOn(replica.store),
          tenants: [
            {
              id: rated,
              data: { strategy: 'row' },
              limits: { rateLimit: { perSecond: 1, burst: 2 } },
            },
            {
              id: busy,
              data: { strategy: 'row' },
              models: TWO_FEATURE_MODEL,
              limits: { maxConcurrent: 2, rateLimit: { perSecond: 1_000, burst: 1_000 } },
            },
            { id: other, data: { strategy: 'row' } },
            {
              id: lean,
              data: { strategy: 'row' },
              limits: { maxConcurrent: 4, rateLimit: { perSecond: 1_000, burst: 1_000 } },
            },
          ],
        }),
      );
    }
  });

  afterAll(async () => {
    predictor.release();
    await Promise.all(gateways.map((g) => g.stop()));
    if (replicas[0]) await deleteTenantKeys(replicas[0].client, [rated, busy, other, lean]);
    await Promise.all(replicas.map((r) => closeReplica(r)));
    await dataSource?.close();
  });

  const viewer = '{ viewer { tenant { id } } }';

  it('admits burst + 1 across both replicas, then answers 429 with Retry-After and RateLimit', async () => {
    const token = await signer.sign({ tenant: rated });
    const [a, b] = gateways as [TestGateway, TestGateway];
    // Alternating replicas: one bucket in Redis, not one per process.
    const answers = [];
    for (const gateway of [a, b, a, b]) answers.push(await gateway.query(viewer, { token }));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 429]);

    const first = answers[0]!;
    expect(first.headers.get('ratelimit-policy')).toBe('tenant;q=3;w=3');
    expect(first.headers.get('ratelimit')).toMatch(/^tenant;r=2;t=\d+$/);
    expect(first.headers.get('retry-after')).toBeNull();
    expect(answers[2]!.headers.get('ratelimit')).toMatch(/^tenant;r=0;t=\d+$/);

    const refused = answers[3]!;
    expect(refused.body.errors?.[0]?.extensions).toMatchObject({
      code: 'RATE_LIMITED',
      reason: 'RATE',
      retryAfterSeconds: 1,
    });
    expect(refused.body.data).toBeUndefined();
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.headers.get('ratelimit')).toBe('tenant;r=0;t=1');
    expect(refused.headers.get('ratelimit-policy')).toBe('tenant;q=3;w=3');

    // The state lives under the tenant's key in Redis; another tenant was never charged.
    expect(await replicas[0]!.client.get(rateLimitKey(rated))).toMatch(/^\d+$/);
    const elsewhere = await b.query(viewer, { token: await signer.sign({ tenant: other }) });
    expect(elsewhere.status).toBe(200);
    expect(elsewhere.headers.get('ratelimit')).toMatch(/^tenant;r=40;/);

    // One interval later (1 s at 1/s) exactly one more request fits.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await b.query(viewer, { token })).status).toBe(200);
    expect((await a.query(viewer, { token })).status).toBe(429);
  });

  it('holds the in-flight limit across replicas and frees slots when requests end', async () => {
    const token = await signer.sign({ tenant: busy });
    const [a, b] = gateways as [TestGateway, TestGateway];
    const predict = (x: number) => `{ predict(model: "churn", inputs: [[${x}, 1]]) { score } }`;
    predictor.hold();
    const slow = [a.query(predict(1), { token }), b.query(predict(2), { token })];
    await eventually(() => expect(predictor.pending()).toBe(2), 5_000);
    expect(await replicas[0]!.client.zcard(concurrencyKey(busy))).toBe(2);

    // A third request, on either replica, finds both of the tenant's slots taken.
    for (const gateway of [a, b]) {
      const refused = await gateway.query(predict(3), { token });
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(refused.body.errors?.[0]?.extensions).toMatchObject({
        code: 'RATE_LIMITED',
        reason: 'CONCURRENCY',
      });
    }
    // Other tenants are not starved by this one.
    expect((await a.query(viewer, { token: await signer.sign({ tenant: other }) })).status).toBe(
      200,
    );

    predictor.release();
    const done = await Promise.all(slow);
    expect(done.map((r) => r.status)).toEqual([200, 200]);
    expect(done.map((r) => r.body.data)).toEqual([
      { predict: [{ score: 1 }] },
      { predict: [{ score: 1.5 }] },
    ]);
    // Leases are given back when the responses end.
    await eventually(async () =>
      expect(await replicas[0]!.client.zcard(concurrencyKey(busy))).toBe(0),
    );
    expect((await b.query(predict(4), { token })).status).toBe(200);
  });

  it('costs an admitted request one admission script; its release goes with a later one or alone', async () => {
    const token = await signer.sign({ tenant: lean });
    const gateway = gateways[0]!;
    // The first call on a connection may load the script (NOSCRIPT, then EVAL): not counted.
    expect((await gateway.query(viewer, { token })).status).toBe(200);
    const monitor = await replicas[1]!.client.duplicate().monitor();
    const seen: string[][] = [];
    // What clients sent; the commands a script runs inside Redis show as source `lua`.
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((arg) => arg.includes(lean))) seen.push(args);
    });
    try {
      // One at a time, then four callers back to back.
      const requests = 10 + 4 * 10;
      for (let i = 0; i < 10; i += 1) {
        expect((await gateway.query(viewer, { token })).status).toBe(200);
      }
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          for (let i = 0; i < 10; i += 1) {
            expect((await gateway.query(viewer, { token })).status).toBe(200);
          }
        }),
      );
      const scripts = () => seen.filter((args) => args[0]!.toLowerCase() === 'evalsha');
      const released = () =>
        seen.flatMap((args) => {
          const command = args[0]!.toLowerCase();
          // EVALSHA sha 2 rateKey leaseKey perSecond burst cost limit ttlMs leaseId …released
          if (command === 'evalsha') return args.slice(11);
          return command === 'zrem' ? args.slice(2) : [];
        });
      await eventually(() => expect(released()).toHaveLength(requests));
      expect(scripts()).toHaveLength(requests);
      // Each script call carries both keys: the rate and the lease decided in one round trip.
      for (const args of scripts()) {
        expect(args.slice(2, 5)).toEqual(['2', rateLimitKey(lean), concurrencyKey(lean)]);
      }
      // Nothing but the scripts and the releases no script could carry.
      const others = seen.filter((args) => !['evalsha', 'zrem'].includes(args[0]!.toLowerCase()));
      expect(others).toEqual([]);
      expect(seen.length).toBeLessThanOrEqual(2 * requests);
      // Every lease admitted was given back exactly once.
      const leases = scripts().map((args) => args[10]!);
      expect(new Set(leases).size).toBe(requests);
      const givenBack = released();
      expect(new Set(givenBack).size).toBe(givenBack.length);
      expect(new Set(givenBack)).toEqual(new Set(leases));
      // Every lease was given back.
      expect(await replicas[1]!.client.zcard(concurrencyKey(lean))).toBe(0);
    } finally {
      monitor.disconnect();
    }
  });
});
