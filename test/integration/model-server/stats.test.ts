import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import { call, featuresRequest, post } from './helpers.js';

// GET /stats and POST /stats/reset: the counters the gateway's tests use to count infer calls.

let server: SpawnedModelServer;

beforeAll(async () => {
  server = await spawnModelServer({ port: 0, workers: 1 });
});

afterAll(async () => {
  await server?.stop();
});

const row = [24, 80, 1, 5, 1900];
const rows = (n: number): number[][] => Array.from({ length: n }, () => row);

describe('stats counters', () => {
  it('count infer calls and rows per model/version, errors apart, and reset to zero', async () => {
    const reset = await post(`${server.url}/stats/reset`, '');
    expect(reset.status).toBe(200);
    expect(reset.body).toMatchObject({ inferRequests: {}, inferredRows: {}, inferErrors: {} });

    expect(
      (await post(`${server.url}/v2/models/churn/infer`, featuresRequest(rows(3)))).status,
    ).toBe(200);
    expect(
      (await post(`${server.url}/v2/models/churn/versions/1/infer`, featuresRequest(rows(2))))
        .status,
    ).toBe(200);
    expect(
      (await post(`${server.url}/v2/models/churn/versions/1/infer`, featuresRequest(rows(5))))
        .status,
    ).toBe(200);
    expect(
      (await post(`${server.url}/v2/models/fraud/infer`, featuresRequest(rows(1)))).status,
    ).toBe(200);
    // Errors are counted apart and never as inferred rows.
    const badShape = featuresRequest(rows(2));
    (badShape.inputs as Array<{ shape: number[] }>)[0]!.shape = [3, 5];
    expect((await post(`${server.url}/v2/models/churn/infer`, badShape)).status).toBe(400);
    expect(
      (await post(`${server.url}/v2/models/nope/infer`, featuresRequest(rows(1)))).status,
    ).toBe(404);
    // Metadata and health calls are not infer calls.
    await call(`${server.url}/v2/models/churn`);
    await call(`${server.url}/v2/health/ready`);

    const stats = await call(`${server.url}/stats`);
    expect(stats.status).toBe(200);
    expect(stats.body).toEqual({
      inferRequests: { 'churn/2': 1, 'churn/1': 2, 'fraud/2': 1 },
      inferredRows: { 'churn/2': 3, 'churn/1': 7, 'fraud/2': 1 },
      inferErrors: { 'churn/2': 1, unresolved: 1 },
      recentCalls: [
        { model: 'churn/2', rows: 3, ok: true },
        { model: 'churn/1', rows: 2, ok: true },
        { model: 'churn/1', rows: 5, ok: true },
        { model: 'fraud/2', rows: 1, ok: true },
        { model: 'churn/2', rows: 0, ok: false },
        { model: 'unresolved', rows: 0, ok: false },
      ],
      // No model of the demo has a device (instance_group / call_cost_ms): see device.test.ts.
      devices: {},
      since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });

    const afterReset = await post(`${server.url}/stats/reset`, '');
    expect(afterReset.body).toMatchObject({
      inferRequests: {},
      inferredRows: {},
      inferErrors: {},
      recentCalls: [],
    });
    expect((await call(`${server.url}/stats`)).body).toMatchObject({
      inferRequests: {},
      inferredRows: {},
    });
  });

  it('counts every one of many concurrent calls exactly once', async () => {
    await post(`${server.url}/stats/reset`, '');
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        post(`${server.url}/v2/models/fraud/versions/1/infer`, featuresRequest(rows(1 + (i % 4)))),
      ),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const expectedRows = Array.from({ length: 30 }, (_, i) => 1 + (i % 4)).reduce(
      (a, b) => a + b,
      0,
    );
    expect((await call(`${server.url}/stats`)).body).toMatchObject({
      inferRequests: { 'fraud/1': 30 },
      inferredRows: { 'fraud/1': expectedRows },
    });
  });

  it('keeps the request id and trace context of the last 50 infer calls, as sent', async () => {
    await post(`${server.url}/stats/reset`, '');
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    for (let i = 0; i < 55; i += 1) {
      const answer = await post(
        `${server.url}/v2/models/churn/infer`,
        featuresRequest(rows(1)),
        i % 2 === 0 ? { 'x-request-id': `req-${i},other-${i}`, traceparent } : {},
      );
      expect(answer.status).toBe(200);
    }
    const { recentCalls } = (await call(`${server.url}/stats`)).body as {
      recentCalls: Record<string, unknown>[];
    };
    expect(recentCalls).toHaveLength(50);
    // The oldest five are gone; every call is kept with what it carried, and only that.
    recentCalls.forEach((recent, k) => {
      const i = k + 5;
      expect(recent).toEqual(
        i % 2 === 0
          ? { model: 'churn/2', rows: 1, ok: true, requestId: `req-${i},other-${i}`, traceparent }
          : { model: 'churn/2', rows: 1, ok: true },
      );
    });
  });

  it('answers 405 for the wrong method on the stats endpoints', async () => {
    expect((await call(`${server.url}/stats/reset`)).status).toBe(405);
    expect((await post(`${server.url}/stats`, '')).status).toBe(405);
  });
});
