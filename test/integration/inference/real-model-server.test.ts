import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/errors.js';
import { createOipClient, type OipClient } from '../../../src/backends/inference/oip-client.js';
import { createPredictor, type Predictor } from '../../../src/backends/inference/predictor.js';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import type { StatsSnapshot } from '../../../services/model-server/src/stats.js';

type ServerStats = StatsSnapshot;

/** The request a prediction is for. */
const ORIGIN = { requestId: 'req-integration' };

let server: SpawnedModelServer;
let client: OipClient;
let predictor: Predictor;

async function serverStats(): Promise<ServerStats> {
  const res = await fetch(`${server.url}/stats`);
  expect(res.status).toBe(200);
  return (await res.json()) as ServerStats;
}

/** Deterministic, varied feature rows of width 5. */
function rows(n: number, seed = 1): number[][] {
  return Array.from({ length: n }, (_, i) =>
    Array.from({ length: 5 }, (_, f) => Math.sin(seed * 1_000 + i * 5 + f) * 3),
  );
}

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(GatewayError);
    return error as GatewayError;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  server = await spawnModelServer({ port: 0 });
  client = createOipClient({ baseUrl: server.url, timeoutMs: 5_000, connections: 4 });
  predictor = createPredictor({
    clients: (name) => (name === 'reference' ? client : undefined),
    microBatch: { enabled: true, windowMs: 10, maxBatchSize: 256 },
  });
});

afterAll(async () => {
  await client?.close();
  await server?.stop();
});

beforeEach(async () => {
  const res = await fetch(`${server.url}/stats/reset`, { method: 'POST' });
  expect(res.status).toBe(200);
});

describe('OIP client and predictor against the reference model server', () => {
  it('reports health and model metadata', async () => {
    expect(await client.serverReady()).toBe(true);
    expect(await client.modelReady('churn', '1')).toBe(true);
    expect(await client.modelReady('fraud', '2')).toBe(true);
    expect(await client.modelReady('nope')).toBe(false);
    const meta = await client.modelMetadata('churn', '2');
    expect(meta.name).toBe('churn');
    expect(meta.inputs).toContainEqual({ name: 'features', datatype: 'FP32', shape: [-1, 5] });
    expect(meta.outputs.map((o) => o.name)).toContain('probability');
  });

  it('scores a batch of 50 rows in one infer call', async () => {
    const result = await client.infer({
      model: 'churn',
      version: '2',
      inputs: rows(50),
      featureCount: 5,
    });
    expect(result.modelName).toBe('churn');
    expect(result.modelVersion).toBe('2');
    expect(result.scores).toHaveLength(50);
    for (const s of result.scores) {
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThanOrEqual(1);
    }
    expect(new Set(result.scores).size).toBeGreaterThan(1);
    const stats = await serverStats();
    expect(stats.inferRequests['churn/2']).toBe(1);
    expect(stats.inferredRows['churn/2']).toBe(50);
  });

  it('sends binary tensor data when asked, for the same scores as JSON', async () => {
    const binaryClient = createOipClient({
      baseUrl: server.url,
      timeoutMs: 5_000,
      connections: 1,
      binaryTensors: true,
    });
    try {
      const request = { model: 'churn', version: '2', inputs: rows(200, 7), featureCount: 5 };
      const [json, binary] = [await client.infer(request), await binaryClient.infer(request)];
      expect(binary).toEqual(json);
      const calls = (await serverStats()).recentCalls;
      expect(calls.map((c) => [c.rows, c.ok, c.binary ?? false])).toEqual([
        [200, true, false],
        [200, true, true],
      ]);
    } finally {
      await binaryClient.close();
    }
  });

  it('micro-batches 50 concurrent single-row predictions, each getting its own row’s score', async () => {
    const input = rows(50, 2);
    const expected = await client.infer({
      model: 'fraud',
      version: '1',
      inputs: input,
      featureCount: 5,
    });
    await fetch(`${server.url}/stats/reset`, { method: 'POST' });

    // Each row for a request of its own, the first of them traced.
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const results = await Promise.all(
      input.map((row, i) =>
        predictor.predict('acme', { backend: 'reference', model: 'fraud', version: '1' }, [row], {
          requestId: `row-${i}`,
          traceparent: i === 0 ? traceparent : undefined,
        }),
      ),
    );
    const stats = await serverStats();
    expect(stats.inferRequests['fraud/1']).toBeLessThanOrEqual(4);
    expect(stats.inferredRows['fraud/1']).toBe(50);
    // Every call names the requests whose rows it merged (one row each, at most 16 named), in
    // the order of its rows; the batch holding the first row carries that request's trace.
    const calls = stats.recentCalls.filter((c) => c.model === 'fraud/1');
    expect(calls).toHaveLength(stats.inferRequests['fraud/1']!);
    let rowsSeen = 0;
    for (const call of calls) {
      const ids = call.requestId?.split(',') ?? [];
      const first = Number(ids[0]?.replace('row-', ''));
      expect(ids).toEqual(
        Array.from({ length: Math.min(16, call.rows) }, (_, j) => `row-${first + j}`),
      );
      expect(call.traceparent).toBe(first === 0 ? traceparent : undefined);
      rowsSeen += call.rows;
    }
    expect(rowsSeen).toBe(50);
    results.forEach((result, i) => {
      expect(result.modelVersion).toBe('1');
      expect(result.scores).toHaveLength(1);
      expect(result.scores[0]).toBeCloseTo(expected.scores[i]!, 5);
    });
  });

  it('reports the version the server chose when none is pinned', async () => {
    const result = await predictor.predict(
      'acme',
      { backend: 'reference', model: 'churn' },
      rows(3),
      ORIGIN,
    );
    expect(result.scores).toHaveLength(3);
    expect(['1', '2']).toContain(result.modelVersion);
  });

  it('turns an unknown model or a wrong feature count into BACKEND_UNAVAILABLE without retrying', async () => {
    const unknown = await rejection(
      client.infer({ model: 'nope', inputs: rows(2), featureCount: 5 }),
    );
    expect(unknown.code).toBe('BACKEND_UNAVAILABLE');
    expect(unknown.message).toContain('HTTP 404');

    const narrow = await rejection(
      client.infer({ model: 'churn', version: '1', inputs: [[1, 2, 3, 4]], featureCount: 4 }),
    );
    expect(narrow.code).toBe('BACKEND_UNAVAILABLE');
    expect(narrow.message).toContain('HTTP 400');
    const stats = await serverStats();
    expect(stats.inferErrors['churn/1']).toBe(1);
    expect(client.breaker.state()).toBe('closed');
  });

  it('reports a stopped server as BACKEND_UNAVAILABLE', async () => {
    await server.stop();
    const error = await rejection(
      client.infer({ model: 'churn', version: '1', inputs: rows(1), featureCount: 5 }),
    );
    expect(error.code).toBe('BACKEND_UNAVAILABLE');
    expect(await client.serverReady()).toBe(false);
  });
});
