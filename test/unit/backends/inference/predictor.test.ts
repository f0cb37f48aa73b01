import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayError } from '../../../../src/errors.js';
import { createOipClient, type OipClient } from '../../../../src/backends/inference/oip-client.js';
import {
  createPredictor,
  type InferEvent,
  type PredictorOptions,
} from '../../../../src/backends/inference/predictor.js';
import { score, startFakeOipServer } from './fake-oip-server.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setup(options: Partial<PredictorOptions> = {}) {
  const server = await startFakeOipServer();
  const client = createOipClient({
    baseUrl: server.url,
    timeoutMs: 2_000,
    connections: 4,
    retry: { maxAttempts: 1 },
  });
  cleanups.push(() => server.close());
  cleanups.push(() => client.close());
  const events: InferEvent[] = [];
  const clients = new Map<string, OipClient>([['primary', client]]);
  const predictor = createPredictor({
    clients: (name) => clients.get(name),
    microBatch: { enabled: true, windowMs: 10, maxBatchSize: 256 },
    onInfer: (event) => events.push(event),
    ...options,
  });
  return { server, predictor, events };
}

const churn = { backend: 'primary', model: 'churn', version: '2' };
/** The request a prediction is for. */
const ORIGIN = { requestId: 'req-unit' };

function row(i: number): number[] {
  return [i, 1, 2, 3, 4];
}

describe('createPredictor', () => {
  it('batches 64 concurrent single-row predictions into few backend calls with per-caller scores', async () => {
    const { server, predictor } = await setup();
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => predictor.predict('acme', churn, [row(i)], ORIGIN)),
    );
    const calls = server.inferRequests();
    expect(calls.length).toBeLessThanOrEqual(4);
    expect(calls.reduce((n, c) => n + c.rows.length, 0)).toBe(64);
    results.forEach((result, i) => {
      expect(result).toEqual({ scores: [score(row(i))], modelVersion: '2' });
    });
  });

  it('never puts two tenants’ rows in one backend call', async () => {
    const { server, predictor } = await setup();
    // The first feature encodes the tenant: 1000s for acme, 2000s for globex.
    const calls = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const tenant = i % 2 === 0 ? 'acme' : 'globex';
        const features = [(tenant === 'acme' ? 1_000 : 2_000) + i, 0, 0, 0, 0];
        return predictor
          .predict(tenant, churn, [features], ORIGIN)
          .then((r) => ({ tenant, features, scores: r.scores }));
      }),
    );
    const batches = server.inferRequests();
    expect(batches.length).toBeGreaterThanOrEqual(2);
    expect(batches.length).toBeLessThanOrEqual(8);
    for (const batch of batches) {
      const tenants = new Set(batch.rows.map((r) => Math.floor(r[0]! / 1_000)));
      expect(tenants.size).toBe(1);
    }
    for (const call of calls) expect(call.scores).toEqual([score(call.features)]);
    expect(predictor.batcherCount()).toBe(2);
  });

  it('keeps versions and models apart', async () => {
    const { server, predictor } = await setup();
    const [v1, v2, fraud] = await Promise.all([
      predictor.predict('acme', { ...churn, version: '1' }, [row(1)], ORIGIN),
      predictor.predict('acme', churn, [row(2)], ORIGIN),
      predictor.predict('acme', { ...churn, model: 'fraud' }, [row(3)], ORIGIN),
    ]);
    expect(v1.modelVersion).toBe('1');
    expect(v2.modelVersion).toBe('2');
    expect(fraud.scores).toEqual([score(row(3))]);
    expect(
      server
        .inferRequests()
        .map((r) => r.path)
        .sort(),
    ).toEqual([
      '/v2/models/churn/versions/1/infer',
      '/v2/models/churn/versions/2/infer',
      '/v2/models/fraud/versions/2/infer',
    ]);
  });

  it('reports the version the server chose when none is pinned', async () => {
    const { predictor } = await setup();
    const result = await predictor.predict(
      'acme',
      { backend: 'primary', model: 'churn' },
      [row(1)],
      ORIGIN,
    );
    expect(result.modelVersion).toBe('7');
  });

  it('makes one backend call per predict when micro-batching is disabled', async () => {
    const { server, predictor } = await setup({
      microBatch: { enabled: false, windowMs: 10, maxBatchSize: 256 },
    });
    await Promise.all(
      Array.from({ length: 6 }, (_, i) => predictor.predict('acme', churn, [row(i)], ORIGIN)),
    );
    expect(server.inferRequests()).toHaveLength(6);
  });

  it("names in each backend call the requests whose rows it merged, and the first one's trace", async () => {
    const { server, predictor } = await setup();
    const traceparent = (i: number) => `00-${String(i).padStart(32, 'a')}-${'b'.repeat(16)}-01`;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        predictor.predict('acme', churn, [row(i), row(i + 100)], {
          requestId: `req-${i}`,
          traceparent: traceparent(i),
        }),
      ),
    );
    // All 20 in one window: one call of 40 rows, naming the first 16 requests in row order.
    const calls = server.inferRequests();
    expect(calls).toHaveLength(1);
    const [call] = calls;
    expect(call!.rows).toHaveLength(40);
    const requests = call!.rows.filter((_, r) => r % 2 === 0).map((r) => `req-${r[0]}`);
    expect(new Set(requests).size).toBe(20);
    expect(String(call!.headers['x-request-id']).split(',')).toEqual(requests.slice(0, 16));
    expect(call!.headers.traceparent).toBe(traceparent(call!.rows[0]![0]!));
  });

  it('sends 50 rows of one predict in one call', async () => {
    const { server, predictor } = await setup();
    const rows = Array.from({ length: 50 }, (_, i) => row(i));
    const result = await predictor.predict('acme', churn, rows, ORIGIN);
    expect(result.scores).toEqual(rows.map(score));
    expect(server.inferRequests()).toHaveLength(1);
  });

  it('fails every caller of a failed batch with the coded error, and counts it', async () => {
    const { server, predictor, events } = await setup();
    server.behave(() => ({ kind: 'status', status: 503 }));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => predictor.predict('acme', churn, [row(i)], ORIGIN)),
    );
    for (const o of outcomes) {
      expect(o.status).toBe('rejected');
      expect(((o as PromiseRejectedResult).reason as GatewayError).code).toBe(
        'BACKEND_UNAVAILABLE',
      );
    }
    expect(server.inferRequests()).toHaveLength(1);
    expect(events).toMatchObject([
      { tenantId: 'acme', outcome: 'error', errorCode: 'BACKEND_UNAVAILABLE', rows: 5 },
    ]);
    expect(predictor.stats()[0]).toMatchObject({ inferCalls: 1, inferErrors: 1 });
  });

  it('counts predict and infer calls and batch sizes per tenant and model version', async () => {
    const { predictor, events } = await setup();
    await Promise.all([
      predictor.predict('acme', churn, [row(1), row(2)], ORIGIN),
      predictor.predict('acme', churn, [row(3)], ORIGIN),
      predictor.predict('globex', { backend: 'primary', model: 'fraud' }, [row(4)], ORIGIN),
    ]);
    const stats = predictor.stats();
    expect(stats).toHaveLength(2);
    expect(stats.find((s) => s.tenantId === 'acme')).toMatchObject({
      backend: 'primary',
      model: 'churn',
      version: '2',
      predictCalls: 2,
      predictRows: 3,
      inferCalls: 1,
      inferErrors: 0,
      inferRows: 3,
      maxBatchRows: 3,
      // ≤1, ≤2, ≤4, … +Inf: one call of 3 rows.
      batchRowsHistogram: [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    });
    expect(stats.find((s) => s.tenantId === 'globex')).toMatchObject({
      model: 'fraud',
      version: 'default',
      inferCalls: 1,
    });
    expect(events.map((e) => [e.tenantId, e.model, e.rows, e.outcome]).sort()).toEqual([
      ['acme', 'churn', 3, 'success'],
      ['globex', 'fraud', 1, 'success'],
    ]);
    expect(events.every((e) => e.durationMs >= 0)).toBe(true);
  });

  it('refuses malformed rows with BAD_USER_INPUT and no backend call', async () => {
    const { server, predictor } = await setup();
    const bad: unknown[] = [
      [[1, 2], [1]],
      [[1, Number.POSITIVE_INFINITY]],
      [[]],
      [['1']],
      'rows',
      // Finite in JavaScript, Infinity in the FP32 tensor the model gets.
      [[1, 3.5e38]],
    ];
    for (const rows of bad) {
      await expect(
        predictor.predict('acme', churn, rows as number[][], ORIGIN),
      ).rejects.toMatchObject({
        code: 'BAD_USER_INPUT',
      });
    }
    expect(server.inferRequests()).toHaveLength(0);
    expect(await predictor.predict('acme', churn, [], ORIGIN)).toEqual({
      scores: [],
      modelVersion: '2',
    });
  });

  it('sends the tenant with every backend call, so its failures stay its own', async () => {
    const { server, predictor } = await setup();
    server.behave(() => ({
      kind: 'ok',
      mutate: (r) => ({ ...r, outputs: [{ name: 'probability', shape: [1, 1], data: [null] }] }),
    }));
    for (let i = 0; i < 5; i++) {
      await expect(predictor.predict('acme', churn, [row(i)], ORIGIN)).rejects.toMatchObject({
        code: 'BAD_USER_INPUT',
      });
    }
    server.behave(() => ({ kind: 'ok' }));
    expect(await predictor.predict('globex', churn, [row(1)], ORIGIN)).toEqual({
      scores: [score(row(1))],
      modelVersion: '2',
    });
    await expect(predictor.predict('acme', churn, [row(1)], ORIGIN)).rejects.toThrow(
      /circuit open/,
    );
  });

  it('reports an unknown backend as BACKEND_UNAVAILABLE', async () => {
    const { predictor } = await setup();
    await expect(
      predictor.predict('acme', { backend: 'nowhere', model: 'churn' }, [row(1)], ORIGIN),
    ).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
  });

  it('keeps a bounded number of batchers', async () => {
    const { predictor } = await setup({ maxBatchers: 3 });
    for (let t = 0; t < 10; t++) await predictor.predict(`tenant-${t}`, churn, [row(t)], ORIGIN);
    expect(predictor.batcherCount()).toBe(3);
  });

  it('survives a throwing onInfer hook', async () => {
    const { predictor } = await setup({
      onInfer: () => {
        throw new Error('metrics down');
      },
    });
    expect((await predictor.predict('acme', churn, [row(1)], ORIGIN)).scores).toEqual([
      score(row(1)),
    ]);
  });
});
