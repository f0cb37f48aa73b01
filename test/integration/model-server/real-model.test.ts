import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_MODEL_REPOSITORY,
  spawnModelServer,
  type SpawnedModelServer,
} from '../../../services/model-server/spawn.js';
import { featuresRequest, post, probabilities } from './helpers.js';

// The server really runs the ONNX files: its answers equal onnxruntime's on the same file, and
// the scores move the way the synthetic labels were generated.

let server: SpawnedModelServer;

beforeAll(async () => {
  // Also builds the default repository on a fresh clone, before the test reads the files.
  server = await spawnModelServer({ port: 0, workers: 1 });
});

afterAll(async () => {
  await server?.stop();
});

/** Deterministic rows across the documented feature ranges (a tiny LCG, no Math.random). */
function sampleRows(model: 'churn' | 'fraud', count: number): number[][] {
  let state = model === 'churn' ? 17 : 23;
  const u = (): number => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
  return Array.from({ length: count }, () =>
    model === 'churn'
      ? [
          Math.floor(u() * 121),
          u() * 5000,
          Math.floor(u() * 31),
          Math.floor(u() * 366),
          u() * 200_000,
        ]
      : [
          1 + u() * 4999,
          1 + Math.floor(u() * 20),
          u() < 0.3 ? 1 : 0,
          1 + Math.floor(u() * 5),
          Math.floor(u() * 24),
        ],
  );
}

async function score(model: string, version: string, rows: number[][]): Promise<number[]> {
  const res = await post(
    `${server.url}/v2/models/${model}/versions/${version}/infer`,
    featuresRequest(rows),
  );
  expect(res.status).toBe(200);
  return probabilities(res.body);
}

describe.each([
  ['churn', '1'],
  ['churn', '2'],
  ['fraud', '1'],
  ['fraud', '2'],
] as const)('%s version %s', (model, version) => {
  it('answers what onnxruntime computes directly from the same model file (within 1e-5)', async () => {
    const rows = sampleRows(model, 64);
    const served = await score(model, version, rows);

    const file = path.join(DEFAULT_MODEL_REPOSITORY, model, version, 'model.onnx');
    const session = await ort.InferenceSession.create(file);
    try {
      expect(session.inputNames).toEqual(['features']);
      expect(session.outputNames).toEqual(['probability']);
      const result = await session.run({
        features: new ort.Tensor('float32', Float32Array.from(rows.flat()), [64, 5]),
      });
      const direct = result.probability!;
      expect(direct.dims).toEqual([64, 1]);
      const expected = Array.from(direct.data as Float32Array);
      expect(served).toHaveLength(64);
      served.forEach((p, i) => expect(Math.abs(p - expected[i]!)).toBeLessThanOrEqual(1e-5));
    } finally {
      await session.release();
    }
    // Meaningful scores: they spread over the range rather than sitting on one value.
    expect(Math.max(...served) - Math.min(...served)).toBeGreaterThan(0.3);
  });
});

describe('scores follow the logic of the synthetic labels', () => {
  const churnBase = [24, 80, 1, 5, 1900];
  const vary = (base: number[], column: number, values: number[]): number[][] =>
    values.map((v) => base.map((b, j) => (j === column ? v : b)));
  const increasing = (p: number[]): void => {
    for (let i = 1; i < p.length; i++) expect(p[i]!).toBeGreaterThan(p[i - 1]!);
  };

  it.each(['1', '2'])(
    'churn v%s rises with support tickets and days since last login',
    async (version) => {
      const tickets = await score('churn', version, vary(churnBase, 2, [0, 2, 5, 10, 20]));
      increasing(tickets);
      expect(tickets[4]! - tickets[0]!).toBeGreaterThan(0.3);
      const days = await score('churn', version, vary(churnBase, 3, [0, 7, 30, 90, 200]));
      increasing(days);
      expect(days[4]! - days[0]!).toBeGreaterThan(0.2);
    },
  );

  it.each(['1', '2'])('churn v%s falls with tenure', async (version) => {
    const tenure = await score(
      'churn',
      version,
      vary(churnBase, 0, [1, 12, 36, 72, 120]).map((r) => [...r.slice(0, 4), r[0]! * 80]),
    );
    for (let i = 1; i < tenure.length; i++) expect(tenure[i]!).toBeLessThan(tenure[i - 1]!);
  });

  it.each(['1', '2'])(
    'fraud v%s rises with amount, international orders and payment attempts',
    async (version) => {
      const orderBase = [120, 2, 0, 1, 14];
      increasing(await score('fraud', version, vary(orderBase, 0, [10, 500, 1500, 3000, 5000])));
      increasing(await score('fraud', version, vary(orderBase, 2, [0, 1])));
      increasing(await score('fraud', version, vary(orderBase, 3, [1, 2, 3, 4, 5])));
    },
  );

  it('fraud v2 (the MLP) scores night orders above afternoon ones', async () => {
    const [night, afternoon] = await score('fraud', '2', [
      [120, 2, 0, 1, 3],
      [120, 2, 0, 1, 15],
    ]);
    expect(night!).toBeGreaterThan(afternoon!);
  });
});
