import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import { call, featuresRequest, post, probabilities, rawRequest } from './helpers.js';

// Open Inference Protocol v2 conformance against a really spawned server process.

const MAX_BODY_BYTES = 256 * 1024;
let server: SpawnedModelServer;
let base: string;

beforeAll(async () => {
  server = await spawnModelServer({ port: 0, workers: 2, maxBodyBytes: MAX_BODY_BYTES });
  base = server.url;
});

afterAll(async () => {
  await server?.stop();
});

const customer = [24, 80, 1, 5, 1900];
const order = [120, 2, 0, 1, 14];

function expectError(
  res: { status: number; headers: Headers; body: unknown },
  status: number,
  pattern: RegExp,
): void {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(Object.keys(res.body as object)).toEqual(['error']);
  expect((res.body as { error: string }).error).toMatch(pattern);
}

describe('health and server metadata', () => {
  it('answers live and ready with 200', async () => {
    const live = await call(`${base}/v2/health/live`);
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ live: true });
    const ready = await call(`${base}/v2/health/ready`);
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ ready: true });
  });

  it('describes the server at GET /v2 (trailing slash too)', async () => {
    for (const path of ['/v2', '/v2/']) {
      const res = await call(`${base}${path}`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        name: 'atrium-model-server',
        version: '0.1.0',
        extensions: ['model_configuration', 'binary_tensor_data'],
      });
    }
  });

  it('prints the chosen port when started with --port 0', () => {
    expect(server.port).toBeGreaterThan(0);
    expect(base).toBe(`http://127.0.0.1:${server.port}`);
  });
});

describe('model metadata and readiness', () => {
  it('describes a model with its versions, platform and tensors', async () => {
    for (const name of ['churn', 'fraud']) {
      const res = await call(`${base}/v2/models/${name}`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        name,
        versions: ['1', '2'],
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 5] }],
        outputs: [{ name: 'probability', datatype: 'FP32', shape: [-1, 1] }],
      });
    }
  });

  it('answers the versioned metadata path for each version', async () => {
    for (const v of ['1', '2']) {
      const res = await call(`${base}/v2/models/fraud/versions/${v}`);
      expect(res.status).toBe(200);
      expect((res.body as { name: string }).name).toBe('fraud');
    }
  });

  it('answers 404 for an unknown model or version', async () => {
    expectError(await call(`${base}/v2/models/nope`), 404, /unknown model "nope"/);
    expectError(
      await call(`${base}/v2/models/churn/versions/9`),
      404,
      /unknown version "9".*available: 1, 2/,
    );
    expectError(await call(`${base}/v2/models/churn/versions/latest`), 404, /unknown version/);
  });

  it('reports model readiness, versioned or not', async () => {
    const latest = await call(`${base}/v2/models/churn/ready`);
    expect(latest.status).toBe(200);
    expect(latest.body).toEqual({ name: 'churn', version: '2', ready: true });
    const v1 = await call(`${base}/v2/models/churn/versions/1/ready`);
    expect(v1.status).toBe(200);
    expect(v1.body).toEqual({ name: 'churn', version: '1', ready: true });
    expectError(await call(`${base}/v2/models/churn/versions/7/ready`), 404, /unknown version/);
    expectError(await call(`${base}/v2/models/nope/ready`), 404, /unknown model/);
  });

  it('serves the model configuration with the feature columns in order', async () => {
    const churn = await call(`${base}/v2/models/churn/config`);
    expect(churn.status).toBe(200);
    const input = (churn.body as { input: Array<{ columns: string[] }> }).input[0]!;
    expect(input.columns).toEqual([
      'tenureMonths',
      'monthlySpend',
      'supportTickets',
      'daysSinceLastLogin',
      'lifetimeValue',
    ]);
    const fraud = await call(`${base}/v2/models/fraud/versions/1/config`);
    expect((fraud.body as { input: Array<{ columns: string[] }> }).input[0]!.columns).toEqual([
      'amount',
      'itemCount',
      'isInternational',
      'paymentAttempts',
      'hourOfDay',
    ]);
  });
});

describe('inference', () => {
  it('uses the latest version when the request names none, and the named one otherwise', async () => {
    const latest = await post(`${base}/v2/models/churn/infer`, featuresRequest([customer]));
    expect(latest.status).toBe(200);
    expect(latest.body).toMatchObject({ model_name: 'churn', model_version: '2' });
    const v2 = await post(`${base}/v2/models/churn/versions/2/infer`, featuresRequest([customer]));
    const v1 = await post(`${base}/v2/models/churn/versions/1/infer`, featuresRequest([customer]));
    expect(v1.body).toMatchObject({ model_name: 'churn', model_version: '1' });
    expect(probabilities(v2.body)).toEqual(probabilities(latest.body));
    // Different fits give different scores: the version really routes to another model file.
    expect(probabilities(v1.body)[0]).not.toBeCloseTo(probabilities(v2.body)[0]!, 4);
  });

  it('answers a batch [N,5] with [N,1] probabilities in row order', async () => {
    const rows = Array.from({ length: 40 }, (_, i) => [
      order[0]! + i * 100,
      1 + (i % 5),
      i % 2,
      1 + (i % 3),
      i % 24,
    ]);
    const res = await post(`${base}/v2/models/fraud/infer`, featuresRequest(rows));
    expect(res.status).toBe(200);
    const out = (res.body as { outputs: Array<Record<string, unknown>> }).outputs;
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ name: 'probability', datatype: 'FP32', shape: [40, 1] });
    const p = probabilities(res.body);
    expect(p).toHaveLength(40);
    for (const v of p) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    // Row order is kept: row i alone gets the same score as row i inside the batch.
    const single = await post(`${base}/v2/models/fraud/infer`, featuresRequest([rows[17]!]));
    expect(probabilities(single.body)[0]).toBeCloseTo(p[17]!, 6);
  });

  it('accepts nested data matching the shape and gives the same answer as flat data', async () => {
    const rows = [customer, [60, 300, 0, 1, 18000], [3, 40, 9, 60, 120]];
    const flat = await post(`${base}/v2/models/churn/infer`, featuresRequest(rows));
    const nested = await post(`${base}/v2/models/churn/infer`, {
      inputs: [{ name: 'features', shape: [3, 5], datatype: 'FP32', data: rows }],
    });
    expect(nested.status).toBe(200);
    expect(probabilities(nested.body)).toEqual(probabilities(flat.body));
  });

  it('echoes the request id only when given, and honours requested outputs', async () => {
    const withId = await post(
      `${base}/v2/models/churn/infer`,
      featuresRequest([customer], {
        id: 'req-42',
        outputs: [{ name: 'probability' }],
        parameters: {},
      }),
    );
    expect(withId.status).toBe(200);
    expect((withId.body as { id: string }).id).toBe('req-42');
    const withoutId = await post(`${base}/v2/models/churn/infer`, featuresRequest([customer]));
    expect(withoutId.body).not.toHaveProperty('id');
  });

  it('serves concurrent requests through the worker pool without mixing answers', async () => {
    const rows = Array.from({ length: 24 }, (_, i) => [i * 5, 50 + i * 40, i % 7, i * 9, i * 1000]);
    const serial = probabilities(
      (await post(`${base}/v2/models/churn/infer`, featuresRequest(rows))).body,
    );
    const answers = await Promise.all(
      rows.map((r) => post(`${base}/v2/models/churn/infer`, featuresRequest([r]))),
    );
    answers.forEach((a, i) => {
      expect(a.status).toBe(200);
      expect(probabilities(a.body)[0]).toBeCloseTo(serial[i]!, 6);
    });
  });
});

describe('infer request validation', () => {
  const infer = (body: unknown): Promise<{ status: number; headers: Headers; body: unknown }> =>
    post(`${base}/v2/models/churn/infer`, body);
  const input = (over: Record<string, unknown>): Record<string, unknown> => ({
    inputs: [{ name: 'features', shape: [1, 5], datatype: 'FP32', data: customer, ...over }],
  });

  it('rejects invalid JSON and non-object bodies', async () => {
    expectError(await infer('{"inputs": ['), 400, /not valid JSON/);
    expectError(await infer(''), 400, /not valid JSON/);
    expectError(await infer([1, 2]), 400, /must be a JSON object, got array/);
    expectError(await infer('null'), 400, /must be a JSON object, got null/);
  });

  it('rejects missing, empty or malformed inputs', async () => {
    expectError(await infer({}), 400, /"inputs" must be a non-empty array/);
    expectError(await infer({ inputs: [] }), 400, /"inputs" must be a non-empty array/);
    expectError(await infer({ inputs: ['x'] }), 400, /inputs\[0\] must be an object/);
    expectError(await infer(input({ name: 'other' })), 400, /unknown input "other".*"features"/);
    expectError(await infer(input({ data: undefined })), 400, /"data" is missing/);
    expectError(await infer(input({ data: 'abc' })), 400, /"data" must be an array/);
    const twice = input({});
    (twice.inputs as unknown[]).push((twice.inputs as unknown[])[0]);
    expectError(await infer(twice), 400, /given twice/);
  });

  it('rejects a wrong or unknown datatype', async () => {
    expectError(
      await infer(input({ datatype: 'INT32' })),
      400,
      /datatype INT32 does not match the model's FP32/,
    );
    expectError(await infer(input({ datatype: 'FP64' })), 400, /datatype FP64 does not match/);
    expectError(await infer(input({ datatype: 'FLOAT' })), 400, /unknown datatype "FLOAT"/);
    expectError(await infer(input({ datatype: undefined })), 400, /"datatype" must be a string/);
  });

  it('rejects a shape that does not fit the model', async () => {
    expectError(
      await infer(input({ shape: [1, 4], data: customer.slice(0, 4) })),
      400,
      /shape \[1, 4\] does not match.*\[-1, 5\]/,
    );
    expectError(await infer(input({ shape: [5] })), 400, /shape \[5\] does not match/);
    expectError(await infer(input({ shape: [1, 5, 1] })), 400, /does not match/);
    expectError(
      await infer(input({ shape: [0, 5], data: [] })),
      400,
      /batch dimension must be at least 1/,
    );
    expectError(await infer(input({ shape: [1, -5] })), 400, /non-negative integers/);
    expectError(await infer(input({ shape: [1.5, 5] })), 400, /non-negative integers/);
    expectError(await infer(input({ shape: undefined })), 400, /"shape" must be an array/);
  });

  it('rejects data whose length or nesting does not match the shape', async () => {
    expectError(
      await infer(input({ shape: [2, 5] })),
      400,
      /has 5 elements; shape \[2, 5\] needs 10/,
    );
    expectError(await infer(input({ data: [...customer, 1] })), 400, /has 6 elements/);
    expectError(
      await infer(input({ shape: [2, 5], data: [customer, [1, 2, 3]] })),
      400,
      /nested "data"\[1\] must be an array of 5/,
    );
    expectError(
      await infer(input({ shape: [2, 5], data: [customer] })),
      400,
      /nested "data" must be an array of 2/,
    );
    expectError(
      await infer(input({ shape: [2, 5], data: [customer, 1, 2, 3, 4, 5] })),
      400,
      /nested "data"/,
    );
  });

  it('rejects elements that are not finite FP32 numbers', async () => {
    expectError(await infer(input({ data: [1, 2, '3', 4, 5] })), 400, /element 2 is "3"/);
    expectError(await infer(input({ data: [1, 2, null, 4, 5] })), 400, /element 2 is null/);
    expectError(await infer(input({ data: [1, true, 3, 4, 5] })), 400, /element 1 is true/);
    expectError(
      await infer(
        '{"inputs":[{"name":"features","shape":[1,5],"datatype":"FP32","data":[1,2,3,4,1e400]}]}',
      ),
      400,
      /not a finite FP32/,
    );
    expectError(await infer(input({ data: [1, 2, 3, 4, 1e39] })), 400, /not a finite FP32/);
  });

  /** A binary-data request (KServe/Triton extension): JSON header, then the raw FP32 bytes. */
  const binary = (
    header: Record<string, unknown>,
    values: readonly number[],
    headerLength?: string,
  ) => {
    const json = Buffer.from(JSON.stringify(header));
    const raw = Buffer.alloc(values.length * 4);
    values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
    return call(`${base}/v2/models/churn/infer`, {
      method: 'POST',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': headerLength ?? String(json.length),
      },
      body: Buffer.concat([json, raw]),
    });
  };
  const binaryInput = (rows: number, size = rows * 5 * 4) => ({
    inputs: [
      {
        name: 'features',
        shape: [rows, 5],
        datatype: 'FP32',
        parameters: { binary_data_size: size },
      },
    ],
  });

  it('scores binary tensor data exactly as the same rows in JSON', async () => {
    const rows = [customer, order, [3, 40, 0, 2, 600]];
    const json = await infer(featuresRequest(rows));
    const bin = await binary(binaryInput(3), rows.flat());
    expect(bin.status).toBe(200);
    expect(bin.headers.get('content-type')).toBe('application/json');
    expect(probabilities(bin.body)).toEqual(probabilities(json.body));
  });

  it('rejects binary tensor data that does not fit its header', async () => {
    const values = customer;
    expectError(await binary(binaryInput(1, 16), values), 400, /binary_data_size 16; .* needs 20/);
    expectError(await binary(binaryInput(2), values), 400, /needs 40 bytes|ends before/);
    expectError(
      await binary(binaryInput(1), [...values, 7]),
      400,
      /holds 24 bytes; .* add up to 20/,
    );
    expectError(
      await binary(binaryInput(1), values, 'ten'),
      400,
      /Inference-Header-Content-Length/,
    );
    expectError(
      await binary(binaryInput(1), values, '100000'),
      400,
      /Inference-Header-Content-Length/,
    );
    expectError(await binary(binaryInput(1), [1, 2, 3, 4, Number.NaN]), 400, /not a finite number/);
    expectError(
      await post(`${base}/v2/models/churn/infer`, binaryInput(1)),
      400,
      /binary_data_size without binary data/,
    );
    expectError(
      await binary(
        {
          ...binaryInput(1),
          outputs: [{ name: 'probability', parameters: { binary_data: true } }],
        },
        values,
      ),
      400,
      /binary output data is not supported/,
    );
  });

  it('rejects a bad id and bad outputs', async () => {
    expectError(await infer({ ...input({}), id: 7 }), 400, /"id" must be a string/);
    expectError(
      await infer({ ...input({}), outputs: [{ name: 'score' }] }),
      400,
      /unknown output "score"/,
    );
    expectError(
      await infer({ ...input({}), outputs: 'probability' }),
      400,
      /"outputs" must be an array/,
    );
    expectError(
      await infer({ ...input({}), outputs: [{ name: 'probability' }, { name: 'probability' }] }),
      400,
      /requested twice/,
    );
  });

  it('answers 404 for infer on an unknown model or version', async () => {
    expectError(await post(`${base}/v2/models/nope/infer`, input({})), 404, /unknown model "nope"/);
    expectError(
      await post(`${base}/v2/models/churn/versions/3/infer`, input({})),
      404,
      /unknown version "3"/,
    );
  });

  it('answers 413 for a body over the limit, declared or streamed', async () => {
    const big = JSON.stringify(featuresRequest(Array.from({ length: 20_000 }, () => customer)));
    expect(big.length).toBeGreaterThan(MAX_BODY_BYTES);
    const declared = await rawRequest(`${base}/v2/models/churn/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) },
      body: big,
    });
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body)).toEqual({
      error: expect.stringMatching(/exceeds the limit of 262144 bytes/),
    });
    const chunked = await rawRequest(`${base}/v2/models/churn/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      body: big,
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body)).toEqual({ error: expect.stringMatching(/exceeds the limit/) });
    // The server is still healthy afterwards.
    expect((await call(`${base}/v2/health/live`)).status).toBe(200);
  });
});

describe('routing errors', () => {
  it('answers 405 with Allow for a wrong method', async () => {
    const getInfer = await call(`${base}/v2/models/churn/infer`);
    expectError(getInfer, 405, /method GET is not allowed.*use POST/);
    expect(getInfer.headers.get('allow')).toBe('POST');
    const postMeta = await post(`${base}/v2/models/churn`, {});
    expectError(postMeta, 405, /method POST is not allowed/);
    expect(postMeta.headers.get('allow')).toBe('GET, HEAD');
    expectError(await call(`${base}/v2/health/live`, { method: 'DELETE' }), 405, /DELETE/);
    expectError(await call(`${base}/v2/health/ready`, { method: 'PUT' }), 405, /PUT/);
    expectError(await call(`${base}/v2`, { method: 'POST' }), 405, /POST/);
  });

  it('answers HEAD like GET without a body', async () => {
    const res = await fetch(`${base}/v2/models/churn`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
  });

  it('answers 404 for unknown routes and 400 for malformed path encoding', async () => {
    expectError(await call(`${base}/v3`), 404, /no route/);
    expectError(await call(`${base}/v2/models`), 404, /no route/);
    expectError(await call(`${base}/v2/models/churn/explain`), 404, /no route/);
    expectError(await call(`${base}/v2/models/%E0%A4%A`), 400, /malformed percent-encoding/);
    // Percent-encoded names are decoded: ch%75rn is churn.
    expect((await call(`${base}/v2/models/ch%75rn/versions/1/ready`)).status).toBe(200);
  });
});
