import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import type { StatsSnapshot } from '../../../services/model-server/src/stats.js';
import { trainedModelToOnnx } from '../../../services/model-server/src/training/to-onnx.js';
import { call, featuresRequest, post, probabilities } from './helpers.js';

// A model's "device", as on a GPU server: N instances per version, each executing one infer
// call at a time after a fixed cost per call. Asserted on the order the server itself records
// (instance, and event ordinals of take and give-back), never on how long anything took.

type Executed = Required<Pick<StatsSnapshot['recentCalls'][number], 'device'>>['device'];

let costed: SpawnedModelServer;
let plain: SpawnedModelServer;
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'atrium-device-'));
  [costed, plain] = await Promise.all([
    spawnModelServer({
      port: 0,
      workers: 2,
      callCostMs: { churn: 50, fraud: 50 },
      instances: { fraud: 3 },
    }),
    spawnModelServer({ port: 0, workers: 2 }),
  ]);
});

afterAll(async () => {
  await Promise.all([costed?.stop(), plain?.stop()]);
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

async function stats(server: SpawnedModelServer): Promise<StatsSnapshot> {
  return (await call(`${server.url}/stats`)).body as StatsSnapshot;
}

/** Most calls on the device at once, from their take/give-back ordinals. */
function maxOverlap(calls: readonly Executed[]): number {
  const events = calls
    .flatMap((c) => [
      { at: c.began, delta: 1 },
      { at: c.ended, delta: -1 },
    ])
    .sort((a, b) => a.at - b.at);
  let now = 0;
  let max = 0;
  for (const e of events) {
    now += e.delta;
    max = Math.max(max, now);
  }
  return max;
}

const customers = Array.from({ length: 8 }, (_, i) => [
  6 + i * 5,
  40 + i * 9,
  i % 4,
  3 + i * 7,
  900 + i * 400,
]);

describe('device settings from the flags (--call-cost-ms, --instances)', () => {
  it('serves concurrent calls to a model with one instance one at a time, with the model’s own answers', async () => {
    await post(`${costed.url}/stats/reset`, '');
    const answers = await Promise.all(
      customers.map((row) => post(`${costed.url}/v2/models/churn/infer`, featuresRequest([row]))),
    );
    expect(answers.map((a) => a.status)).toEqual(customers.map(() => 200));
    // The real model outputs: what a server without a call cost answers for the same rows.
    const reference = await post(`${plain.url}/v2/models/churn/infer`, featuresRequest(customers));
    expect(answers.map((a) => probabilities(a.body)[0])).toEqual(probabilities(reference.body));

    const snapshot = await stats(costed);
    const executed = snapshot.recentCalls.map((c) => c.device!).sort((a, b) => a.began - b.began);
    expect(executed).toHaveLength(customers.length);
    expect(new Set(executed.map((e) => e.instance))).toEqual(new Set([0]));
    // Each call gives the instance back before the next one takes it: no two overlap.
    executed.forEach((e, i) => {
      expect(e.ended).toBe(e.began + 1);
      if (i > 0) expect(e.began).toBe(executed[i - 1]!.ended + 1);
    });
    expect(maxOverlap(executed)).toBe(1);
    expect(snapshot.devices['churn/2']).toMatchObject({
      instances: 1,
      callCostMs: 50,
      calls: customers.length,
      maxBusy: 1,
    });
    // They arrived together, so the later ones waited for the instance.
    expect(snapshot.devices['churn/2']!.maxQueued).toBeGreaterThan(0);
  });

  it('runs at most `instances` calls at once, on every instance', async () => {
    await post(`${costed.url}/stats/reset`, '');
    const answers = await Promise.all(
      Array.from({ length: 9 }, () =>
        post(
          `${costed.url}/v2/models/fraud/versions/1/infer`,
          featuresRequest([[120, 2, 0, 1, 14]]),
        ),
      ),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const snapshot = await stats(costed);
    const executed = snapshot.recentCalls.map((c) => c.device!);
    expect(executed).toHaveLength(9);
    expect(maxOverlap(executed)).toBe(3);
    expect(new Set(executed.map((e) => e.instance))).toEqual(new Set([0, 1, 2]));
    expect(snapshot.devices['fraud/1']).toMatchObject({
      instances: 3,
      callCostMs: 50,
      calls: 9,
      maxBusy: 3,
    });
  });

  it('gives every served version its own device and shows the settings in the config', async () => {
    const snapshot = await stats(costed);
    expect(Object.keys(snapshot.devices).sort()).toEqual([
      'churn/1',
      'churn/2',
      'fraud/1',
      'fraud/2',
    ]);
    const config = await call(`${costed.url}/v2/models/fraud/config`);
    expect(config.body).toMatchObject({ instance_group: [{ count: 3 }], call_cost_ms: 50 });
  });

  it('zeroes the device counters on reset and keeps the settings', async () => {
    const reset = (await post(`${costed.url}/stats/reset`, '')).body as StatsSnapshot;
    expect(reset.devices['churn/2']).toEqual({
      instances: 1,
      callCostMs: 50,
      calls: 0,
      busyMs: 0,
      maxBusy: 0,
      maxQueued: 0,
      busy: 0,
      queued: 0,
    });
  });

  it('leaves a model without settings as it was: no device, no record of one', async () => {
    await post(`${plain.url}/stats/reset`, '');
    await post(`${plain.url}/v2/models/churn/infer`, featuresRequest([customers[0]!]));
    const snapshot = await stats(plain);
    expect(snapshot.devices).toEqual({});
    expect(snapshot.recentCalls).toEqual([{ model: 'churn/2', rows: 1, ok: true }]);
  });

  it('refuses calls beyond the queue with 503 while the instance is busy', async () => {
    const server = await spawnModelServer({
      port: 0,
      workers: 1,
      queue: 2,
      callCostMs: { churn: 300 },
    });
    try {
      const answers = await Promise.all(
        Array.from({ length: 6 }, () =>
          post(`${server.url}/v2/models/churn/infer`, featuresRequest([customers[0]!])),
        ),
      );
      // One executing and two waiting are answered; the others find the queue full.
      expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 503, 503, 503]);
      const refused = answers.find((a) => a.status === 503)!;
      expect(refused.headers.get('retry-after')).toBe('1');
      expect((refused.body as { error: string }).error).toMatch(
        /all 1 instances of churn\/2 are busy and 2 calls wait/,
      );
    } finally {
      await server.stop();
    }
  });

  it('refuses a flag for a model the repository does not serve, or a bad value', async () => {
    await expect(
      spawnModelServer({ port: 0, workers: 1, callCostMs: { nope: 5 } }),
    ).rejects.toThrow(/device settings name model "nope".*serves churn, fraud/);
    await expect(
      spawnModelServer({ port: 0, workers: 1, callCostMs: { churn: Number.NaN } }),
    ).rejects.toThrow(/--call-cost-ms must be <model>=<0-10000>, got "churn=NaN"/);
    await expect(
      spawnModelServer({ port: 0, workers: 1, instances: { churn: 0 } }),
    ).rejects.toThrow(/--instances must be <model>=<1-64>, got "churn=0"/);
  });
});

/** A logistic model over 2 raw features, written with the server's own encoder. */
function onnxModel(name: string): Uint8Array {
  return trainedModelToOnnx(
    { kind: 'logistic', weights: Float64Array.from([0.5, -1]), bias: 0.25 },
    { mean: new Float64Array(2), std: new Float64Array(2).fill(1) },
    {
      inputName: 'x',
      outputName: 'probability',
      modelName: name,
      modelVersion: 1,
      docString: 'test',
    },
  );
}

async function writeModel(repo: string, name: string, file: string, config: string) {
  await mkdir(path.join(repo, name, '1'), { recursive: true });
  await writeFile(path.join(repo, name, '1', 'model.onnx'), onnxModel(name));
  await writeFile(path.join(repo, name, file), config);
}

const jsonConfig = (extra: Record<string, unknown>) =>
  JSON.stringify({
    input: [{ name: 'x', datatype: 'FP32', dims: [-1, 2] }],
    output: [{ name: 'probability', datatype: 'FP32', dims: [-1, 1] }],
    ...extra,
  });

const PBTXT = `name: "gpu"
backend: "onnxruntime"
max_batch_size: 64
input [ { name: "x", data_type: TYPE_FP32, dims: [ 2 ] } ]
output [ { name: "probability", data_type: TYPE_FP32, dims: [ 1 ] } ]
instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]
parameters { key: "call_cost_ms" value: { string_value: "40" } }
`;

describe('device settings from the model config', () => {
  it('reads instance_group and call_cost_ms from config.json and config.pbtxt', async () => {
    const repo = path.join(scratch, 'configs');
    await writeModel(
      repo,
      'pair',
      'config.json',
      jsonConfig({ instance_group: [{ count: 1 }, { count: 1 }], call_cost_ms: 40 }),
    );
    await writeModel(repo, 'gpu', 'config.pbtxt', PBTXT);
    await writeModel(repo, 'cost_only', 'config.json', jsonConfig({ call_cost_ms: 5 }));
    await writeModel(repo, 'free', 'config.json', jsonConfig({}));
    const server = await spawnModelServer({ port: 0, workers: 2, repo });
    try {
      const snapshot = await stats(server);
      expect(snapshot.devices).toEqual({
        'cost_only/1': expect.objectContaining({ instances: 1, callCostMs: 5 }),
        'gpu/1': expect.objectContaining({ instances: 1, callCostMs: 40 }),
        'pair/1': expect.objectContaining({ instances: 2, callCostMs: 40 }),
      });
      expect((await call(`${server.url}/v2/models/gpu/config`)).body).toMatchObject({
        instance_group: [{ count: 1 }],
        call_cost_ms: 40,
      });

      const request = { inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] };
      for (const [model, instances] of [
        ['gpu', 1],
        ['pair', 2],
      ] as const) {
        await post(`${server.url}/stats/reset`, '');
        const answers = await Promise.all(
          Array.from({ length: 6 }, () => post(`${server.url}/v2/models/${model}/infer`, request)),
        );
        expect(answers.every((a) => a.status === 200)).toBe(true);
        // sigmoid(0.5·1 − 1·2 + 0.25): the model's answer.
        expect(probabilities(answers[0]!.body)[0]).toBeCloseTo(1 / (1 + Math.exp(1.25)), 6);
        const executed = (await stats(server)).recentCalls.map((c) => c.device!);
        expect(executed).toHaveLength(6);
        expect(maxOverlap(executed)).toBe(instances);
      }
    } finally {
      await server.stop();
    }
  });

  it.each([
    [
      'config.json',
      jsonConfig({ call_cost_ms: -1 }),
      /invalid config: call_cost_ms: Too small: expected number to be >=0/,
    ],
    ['config.json', jsonConfig({ instance_group: [{ count: 0 }] }), /instance_group\.0\.count/],
    [
      'config.pbtxt',
      PBTXT.replace('string_value: "40"', 'string_value: "fast"'),
      /parameters "call_cost_ms" must be a number of milliseconds in 0\.\.10000, got "fast"/,
    ],
    [
      'config.pbtxt',
      PBTXT.replace('count: 1', 'count: 0'),
      /instance_group\[0\]\.count must be >= 1, got 0/,
    ],
  ])('a bad %s stops the server: %s', async (file, config, error) => {
    const repo = await mkdtemp(path.join(scratch, 'bad-'));
    await writeModel(repo, file.endsWith('pbtxt') ? 'gpu' : 'm', file, config);
    await expect(spawnModelServer({ port: 0, workers: 1, repo })).rejects.toThrow(error);
  });
});
