import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../src/errors.js';
import {
  createOipClient,
  type OipClientOptions,
} from '../../../../src/backends/inference/oip-client.js';
import type { Clock } from '../../../../src/backends/resilience/clock.js';
import { score, startFakeOipServer, type FakeOipServer } from './fake-oip-server.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setup(
  options: Partial<OipClientOptions> = {},
): Promise<{ server: FakeOipServer; client: ReturnType<typeof createOipClient> }> {
  const server = await startFakeOipServer();
  const client = createOipClient({
    baseUrl: server.url,
    timeoutMs: 2_000,
    connections: 4,
    random: () => 0,
    ...options,
  });
  cleanups.push(() => server.close());
  cleanups.push(() => client.close());
  return { server, client };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(GatewayError);
    return (error as GatewayError).code;
  }
  throw new Error('expected a rejection');
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

const rows = [
  [1, 2, 3, 4, 5],
  [10, 20, 30, 40, 50],
  [0.5, 0, 0, 0, 0],
];

function manualClock(): Clock & { advance(ms: number): void } {
  let t = 1_000;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
  };
}

describe('createOipClient: request and response', () => {
  it('posts an OIP v2 body of shape [N, F] to the versioned path and returns each row’s score', async () => {
    const { server, client } = await setup();
    const result = await client.infer({
      model: 'churn',
      version: '2',
      inputs: rows,
      featureCount: 5,
    });

    expect(result).toEqual({ modelName: 'churn', modelVersion: '2', scores: rows.map(score) });
    const [sent] = server.inferRequests();
    expect(sent?.path).toBe('/v2/models/churn/versions/2/infer');
    expect(sent?.body).toEqual({
      inputs: [{ name: 'features', shape: [3, 5], datatype: 'FP32', data: rows.flat() }],
      outputs: [{ name: 'probability' }],
    });
  });

  it('accepts a flat Float32Array, custom tensor names and an unpinned version', async () => {
    const { server, client } = await setup();
    server.behave(() => ({
      kind: 'ok',
      mutate: (r) => ({ ...r, outputs: [{ ...(r.outputs as object[])[0], name: 'score' }] }),
    }));
    const flat = new Float32Array([1, 2, 3, 4, 5, 6]);
    const result = await client.infer({
      model: 'fraud',
      inputs: flat,
      featureCount: 3,
      inputName: 'x',
      outputName: 'score',
    });

    expect(result.scores).toEqual([0.06, 0.15]);
    expect(result.modelVersion).toBe('7');
    const [sent] = server.inferRequests();
    expect(sent?.path).toBe('/v2/models/fraud/infer');
    expect(sent?.body).toMatchObject({
      inputs: [{ name: 'x', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }],
      outputs: [{ name: 'score' }],
    });
  });

  it('keeps a base URL path prefix and encodes model names', async () => {
    const server = await startFakeOipServer();
    cleanups.push(() => server.close());
    const client = createOipClient({ baseUrl: `${server.url}/`, timeoutMs: 1_000, connections: 1 });
    cleanups.push(() => client.close());
    await client.infer({ model: 'churn', version: '1', inputs: [[1]], featureCount: 1 });
    expect(server.inferRequests()[0]?.path).toBe('/v2/models/churn/versions/1/infer');
    // A name with a slash must not address another route.
    const odd = await client.infer({ model: 'a/b', inputs: [[1]], featureCount: 1 });
    expect(odd.modelName).toBe('a/b');
    expect(server.requests.at(-1)?.path).toBe('/v2/models/a%2Fb/infer');
  });

  it('reuses keep-alive connections across calls', async () => {
    const { server, client } = await setup({ connections: 2 });
    for (let i = 0; i < 10; i++) {
      await client.infer({ model: 'churn', version: '1', inputs: [[i]], featureCount: 1 });
    }
    expect(server.inferRequests()).toHaveLength(10);
    // Without keep-alive this would be 10; the pool may open up to `connections`.
    expect(server.connections()).toBeLessThanOrEqual(2);
  });

  it.each([
    ['not JSON', { kind: 'raw', body: 'oops' }],
    ['no outputs', { kind: 'raw', body: '{"model_name":"churn"}' }],
    [
      'a different output name',
      {
        kind: 'ok',
        mutate: (r: Record<string, unknown>) => ({
          ...r,
          outputs: [{ name: 'other', shape: [3, 1], data: [1, 2, 3] }],
        }),
      },
    ],
    [
      'too few scores',
      {
        kind: 'ok',
        mutate: (r: Record<string, unknown>) => ({
          ...r,
          outputs: [{ name: 'probability', shape: [3, 1], data: [1, 2] }],
        }),
      },
    ],
    [
      'a wrong shape',
      {
        kind: 'ok',
        mutate: (r: Record<string, unknown>) => ({
          ...r,
          outputs: [{ name: 'probability', shape: [1, 3], data: [1, 2, 3] }],
        }),
      },
    ],
    [
      'non-numeric scores',
      {
        kind: 'ok',
        mutate: (r: Record<string, unknown>) => ({
          ...r,
          outputs: [{ name: 'probability', shape: [3, 1], data: [1, 'x', 3] }],
        }),
      },
    ],
    [
      'another model',
      { kind: 'ok', mutate: (r: Record<string, unknown>) => ({ ...r, model_name: 'fraud' }) },
    ],
    [
      'another version',
      { kind: 'ok', mutate: (r: Record<string, unknown>) => ({ ...r, model_version: '1' }) },
    ],
  ] as const)(
    'rejects a 200 answer with %s as BACKEND_UNAVAILABLE, without retrying',
    async (_name, action) => {
      const { server, client } = await setup();
      server.behave(() => action);
      const error = await rejection(
        client.infer({ model: 'churn', version: '2', inputs: rows, featureCount: 5 }),
      );
      expect(error.code).toBe('BACKEND_UNAVAILABLE');
      expect(error.message).toContain('malformed');
      expect(server.inferRequests()).toHaveLength(1);
    },
  );

  it('answers non-finite scores as the caller’s BAD_USER_INPUT: not retried, its tenant’s breaker only', async () => {
    const { server, client } = await setup({ breaker: { failureThreshold: 2 } });
    server.behave(() => ({
      kind: 'ok',
      mutate: (r) => ({
        ...r,
        outputs: [{ name: 'probability', shape: [3, 1], data: [0.5, null, 0.5] }],
      }),
    }));
    for (let i = 0; i < 2; i++) {
      const error = await rejection(
        client.infer({ model: 'churn', inputs: rows, featureCount: 5, tenant: 'a' }),
      );
      expect(error.code).toBe('BAD_USER_INPUT');
      expect(error.extensions.reason).toBe('NON_FINITE_SCORE');
    }
    expect(server.inferRequests()).toHaveLength(2);
    expect(client.tenantBreaker('a')?.state()).toBe('open');
    expect(client.breaker.state()).toBe('closed');
    server.behave(() => ({ kind: 'ok' }));
    const other = await client.infer({
      model: 'churn',
      inputs: rows,
      featureCount: 5,
      tenant: 'b',
    });
    expect(other.scores).toEqual(rows.map(score));
  });

  it('accepts nested [[s], [s]] output data and shape [N]', async () => {
    const { server, client } = await setup();
    server.behave(() => ({
      kind: 'ok',
      mutate: (r) => ({
        ...r,
        outputs: [{ name: 'probability', shape: [2], data: [[0.25], [0.75]] }],
      }),
    }));
    const result = await client.infer({ model: 'churn', inputs: [[1], [2]], featureCount: 1 });
    expect(result.scores).toEqual([0.25, 0.75]);
  });

  it('refuses malformed inputs with BAD_USER_INPUT before any request', async () => {
    const { server, client } = await setup();
    const bad = [
      client.infer({ model: 'churn', inputs: [[1, 2]], featureCount: 3 }),
      client.infer({ model: 'churn', inputs: [[1, Number.NaN, 3]], featureCount: 3 }),
      client.infer({ model: 'churn', inputs: new Float32Array(5), featureCount: 3 }),
      client.infer({ model: 'churn', inputs: [], featureCount: 3 }),
      client.infer({ model: 'churn', inputs: [[1]], featureCount: 0 }),
      // Beyond FP32: it would reach the model as Infinity.
      client.infer({ model: 'churn', inputs: [[1, -3.5e38, 3]], featureCount: 3 }),
    ];
    for (const call of bad) expect(await codeOf(call)).toBe('BAD_USER_INPUT');
    expect(server.inferRequests()).toHaveLength(0);
  });
});

describe('createOipClient: failures, timeouts and retries', () => {
  it('turns a hanging backend into BACKEND_TIMEOUT within the deadline', async () => {
    const { server, client } = await setup({ timeoutMs: 150 });
    server.behave(() => ({ kind: 'hang' }));
    const started = Date.now();
    expect(await codeOf(client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }))).toBe(
      'BACKEND_TIMEOUT',
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    // The whole deadline went to the first attempt, so no retry was possible.
    expect(server.inferRequests()).toHaveLength(1);
  });

  it('retries a timed-out attempt when a whole attempt still fits the deadline', async () => {
    const { server, client } = await setup({ timeoutMs: 3_000, attemptTimeoutMs: 150 });
    server.behave((_r, i) => (i === 0 ? { kind: 'hang' } : { kind: 'ok' }));
    const result = await client.infer({ model: 'churn', inputs: [[50]], featureCount: 1 });
    expect(result.scores).toEqual([0.5]);
    expect(server.inferRequests()).toHaveLength(2);
  });

  it('retries 5xx and connection resets, then succeeds', async () => {
    const { server, client } = await setup({ retry: { maxAttempts: 3 } });
    server.behave((_r, i) =>
      i === 0 ? { kind: 'status', status: 503 } : i === 1 ? { kind: 'reset' } : { kind: 'ok' },
    );
    const result = await client.infer({ model: 'churn', inputs: [[7]], featureCount: 1 });
    expect(result.scores).toEqual([0.07]);
    expect(server.inferRequests()).toHaveLength(3);
  });

  it('gives up after maxAttempts with BACKEND_UNAVAILABLE', async () => {
    const { server, client } = await setup({ retry: { maxAttempts: 2 } });
    server.behave(() => ({ kind: 'reset' }));
    const error = await rejection(client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }));
    expect(error.code).toBe('BACKEND_UNAVAILABLE');
    expect(server.inferRequests()).toHaveLength(2);
  });

  it('reports a refused connection as BACKEND_UNAVAILABLE', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const client = createOipClient({
      baseUrl: `http://127.0.0.1:${port}`,
      timeoutMs: 1_000,
      connections: 1,
      random: () => 0,
    });
    cleanups.push(() => client.close());
    expect(await codeOf(client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }))).toBe(
      'BACKEND_UNAVAILABLE',
    );
    expect(await client.serverReady()).toBe(false);
  });

  it('does not retry a 4xx, and 4xx answers never open the breaker', async () => {
    const { server, client } = await setup({ breaker: { failureThreshold: 3 } });
    server.behave(() => ({ kind: 'status', status: 404, body: '{"error":"unknown model"}' }));
    for (let i = 0; i < 10; i++) {
      const error = await rejection(
        client.infer({ model: 'nope', inputs: [[1]], featureCount: 1 }),
      );
      expect(error.code).toBe('BACKEND_UNAVAILABLE');
      expect(error.message).toContain('HTTP 404');
    }
    expect(server.inferRequests()).toHaveLength(10);
    expect(client.breaker.state()).toBe('closed');
  });

  it('keeps retries within the budget: 100 calls at 50 % failure add ≤ 20 % + the reserve', async () => {
    const { server, client } = await setup({
      retry: { maxAttempts: 3, budget: { ratio: 0.2, minRetriesPerSecond: 1, ttlMs: 10_000 } },
      breaker: { failureThreshold: 1_000, minimumRequests: 1_000 },
    });
    server.behave((_r, i) => (i % 2 === 0 ? { kind: 'status', status: 500 } : { kind: 'ok' }));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) =>
        client.infer({ model: 'churn', inputs: [[i]], featureCount: 1 }),
      ),
    );
    const calls = server.inferRequests().length;
    // 100 first attempts + at most 0.2 × 100 + 1/s × 10 s reserve.
    expect(calls).toBeGreaterThan(100);
    expect(calls).toBeLessThanOrEqual(130);
    expect(outcomes.filter((o) => o.status === 'fulfilled').length).toBeGreaterThan(50);
  });

  it('stops retrying a backend that fails everything once the budget is spent', async () => {
    const { server, client } = await setup({
      retry: { maxAttempts: 10, budget: { ratio: 0.2, minRetriesPerSecond: 1, ttlMs: 10_000 } },
      breaker: { failureThreshold: 10_000, minimumRequests: 10_000 },
    });
    server.behave(() => ({ kind: 'status', status: 503 }));
    for (let i = 0; i < 100; i++) {
      expect(await codeOf(client.infer({ model: 'churn', inputs: [[i]], featureCount: 1 }))).toBe(
        'BACKEND_UNAVAILABLE',
      );
    }
    // Without the budget this would be 1 000 calls.
    expect(server.inferRequests().length).toBeLessThanOrEqual(130);
  });

  it('honours the caller’s signal: no hang, neutral for the breaker', async () => {
    const { server, client } = await setup({ timeoutMs: 10_000, breaker: { failureThreshold: 1 } });
    server.behave(() => ({ kind: 'hang' }));
    const controller = new AbortController();
    const call = client.infer({
      model: 'churn',
      inputs: [[1]],
      featureCount: 1,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 50);
    expect(await codeOf(call)).toBe('BACKEND_UNAVAILABLE');
    expect(client.breaker.state()).toBe('closed');
    expect(
      await codeOf(
        client.infer({
          model: 'churn',
          inputs: [[1]],
          featureCount: 1,
          signal: AbortSignal.timeout(50),
        }),
      ),
    ).toBe('BACKEND_TIMEOUT');
  });

  it('fails with BACKEND_UNAVAILABLE after close()', async () => {
    const { server, client } = await setup();
    await client.close();
    await client.close();
    expect(await codeOf(client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }))).toBe(
      'BACKEND_UNAVAILABLE',
    );
    expect(server.inferRequests()).toHaveLength(0);
  });
});

describe('createOipClient: circuit breaker', () => {
  it('opens after consecutive failures, fails fast without calling, probes after openMs and closes', async () => {
    const clock = manualClock();
    const transitions: string[] = [];
    const { server, client } = await setup({
      clock,
      retry: { maxAttempts: 1 },
      breaker: {
        failureThreshold: 3,
        openMs: 1_000,
        onStateChange: (from, to) => transitions.push(`${from}->${to}`),
      },
    });
    server.behave(() => ({ kind: 'status', status: 500 }));
    for (let i = 0; i < 3; i++) {
      await codeOf(client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }));
    }
    expect(client.breaker.state()).toBe('open');
    expect(server.inferRequests()).toHaveLength(3);

    for (let i = 0; i < 5; i++) {
      const error = await rejection(
        client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }),
      );
      expect(error.code).toBe('BACKEND_UNAVAILABLE');
      expect(error.message).toContain('circuit open');
    }
    expect(server.inferRequests()).toHaveLength(3);

    // A failed probe reopens for another openMs.
    clock.advance(1_000);
    expect(client.breaker.state()).toBe('half-open');
    await codeOf(client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }));
    expect(server.inferRequests()).toHaveLength(4);
    expect(client.breaker.state()).toBe('open');

    clock.advance(1_000);
    server.behave(() => ({ kind: 'ok' }));
    const result = await client.infer({ model: 'churn', inputs: [[40]], featureCount: 1 });
    expect(result.scores).toEqual([0.4]);
    expect(client.breaker.state()).toBe('closed');
    expect(server.inferRequests()).toHaveLength(5);
    expect(transitions).toEqual([
      'closed->open',
      'open->half-open',
      'half-open->open',
      'open->half-open',
      'half-open->closed',
    ]);
  });

  it('lets only halfOpenMaxProbes calls through while half-open', async () => {
    const clock = manualClock();
    const { server, client } = await setup({
      clock,
      retry: { maxAttempts: 1 },
      breaker: { failureThreshold: 1, openMs: 500, halfOpenMaxProbes: 1 },
    });
    server.behave(() => ({ kind: 'status', status: 502 }));
    await codeOf(client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }));
    clock.advance(500);
    server.behave(() => ({ kind: 'delay', ms: 100 }));
    const probe = client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 });
    const second = await rejection(
      client.infer({ model: 'churn', inputs: [[2]], featureCount: 1 }),
    );
    expect(second.message).toContain('circuit open');
    await probe;
    expect(client.breaker.state()).toBe('closed');
    expect(server.inferRequests()).toHaveLength(2);
  });

  it('opens on the error rate over the window once minimumRequests are in', async () => {
    const clock = manualClock();
    const { server, client } = await setup({
      clock,
      retry: { maxAttempts: 1 },
      breaker: {
        failureThreshold: 100,
        errorRateThreshold: 0.5,
        minimumRequests: 10,
        windowMs: 10_000,
      },
    });
    server.behave((_r, i) => (i % 2 === 0 ? { kind: 'status', status: 500 } : { kind: 'ok' }));
    for (let i = 0; i < 9; i++) {
      await client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }).catch(() => undefined);
    }
    expect(client.breaker.state()).toBe('closed');
    await client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }).catch(() => undefined);
    await client.infer({ model: 'churn', inputs: [[1]], featureCount: 1 }).catch(() => undefined);
    expect(client.breaker.state()).toBe('open');
  });
});

describe('createOipClient: metadata and health', () => {
  it('reads model metadata and readiness', async () => {
    const { client } = await setup();
    expect(await client.modelMetadata('churn', '2')).toEqual({
      name: 'churn',
      versions: ['1', '2'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 5] }],
      outputs: [{ name: 'probability', datatype: 'FP32', shape: [-1, 1] }],
    });
    expect(await codeOf(client.modelMetadata('nope'))).toBe('BACKEND_UNAVAILABLE');
    expect(await client.modelReady('churn', '1')).toBe(true);
    expect(await client.modelReady('nope')).toBe(false);
    expect(await client.serverReady()).toBe(true);
  });

  it('rejects invalid options with a TypeError naming the field', () => {
    expect(() => createOipClient({ baseUrl: 'nope', timeoutMs: 1, connections: 1 })).toThrow(
      /baseUrl/,
    );
    expect(() =>
      createOipClient({ baseUrl: 'http://127.0.0.1:1', timeoutMs: 0, connections: 1 }),
    ).toThrow(/timeoutMs/);
    expect(() =>
      createOipClient({ baseUrl: 'http://127.0.0.1:1', timeoutMs: 1, connections: 1.5 }),
    ).toThrow(/connections/);
  });
});
