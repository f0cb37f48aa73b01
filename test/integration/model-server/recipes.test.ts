import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import { ensureModelRepository } from '../../../services/model-server/src/training/index.js';
import { call, featuresRequest, post, probabilities } from './helpers.js';

// Each example trains its own models: the invoicing example's recipe module builds a
// three-feature repository (the demo's models have five) that the real server process serves,
// and a repository is rebuilt only when what decides its files changes.

const INVOICING_RECIPES = fileURLToPath(
  new URL('../../../examples/invoicing/models/recipes.ts', import.meta.url),
);
const CREDIT_FEATURES = ['creditLimit', 'overdueInvoices', 'averageDaysLate'];

let scratch: string;
let repo: string;
let server: SpawnedModelServer;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'atrium-recipes-'));
  repo = path.join(scratch, 'invoicing');
  server = await spawnModelServer({ port: 0, workers: 1, recipes: INVOICING_RECIPES, repo });
});

afterAll(async () => {
  await server?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

/** Deterministic rows across the documented ranges (a tiny LCG, no Math.random). */
function creditRows(count: number): number[][] {
  let state = 41;
  const u = (): number => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
  return Array.from({ length: count }, () => [
    1000 + u() * 99_000,
    Math.floor(u() * 21),
    Math.floor(u() * 91),
  ]);
}

async function score(version: string, rows: number[][]): Promise<number[]> {
  const res = await post(
    `${server.url}/v2/models/credit/versions/${version}/infer`,
    featuresRequest(rows),
  );
  expect(res.status).toBe(200);
  return probabilities(res.body);
}

describe("the invoicing example's credit model", () => {
  it('is served with three features, in the recipe order', async () => {
    const meta = await call(`${server.url}/v2/models/credit`);
    expect(meta.status).toBe(200);
    expect(meta.body).toEqual({
      name: 'credit',
      versions: ['1', '2'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 3] }],
      outputs: [{ name: 'probability', datatype: 'FP32', shape: [-1, 1] }],
    });
    const config = await call(`${server.url}/v2/models/credit/config`);
    expect((config.body as { input: Array<{ columns: string[] }> }).input[0]!.columns).toEqual(
      CREDIT_FEATURES,
    );
    // Only the example's own model: the demo's are not in this repository.
    expect((await call(`${server.url}/v2/models/churn`)).status).toBe(404);
  });

  it.each(['1', '2'])(
    'version %s answers shape [N, 3] with what onnxruntime computes from the same file (within 1e-5)',
    async (version) => {
      const rows = creditRows(50);
      const res = await post(
        `${server.url}/v2/models/credit/versions/${version}/infer`,
        featuresRequest(rows),
      );
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        model_name: 'credit',
        model_version: version,
        outputs: [{ name: 'probability', datatype: 'FP32', shape: [50, 1] }],
      });
      const served = probabilities(res.body);

      const session = await ort.InferenceSession.create(
        path.join(repo, 'credit', version, 'model.onnx'),
      );
      try {
        const result = await session.run({
          features: new ort.Tensor('float32', Float32Array.from(rows.flat()), [50, 3]),
        });
        const expected = Array.from(result.probability!.data as Float32Array);
        expect(served).toHaveLength(50);
        served.forEach((p, i) => expect(Math.abs(p - expected[i]!)).toBeLessThanOrEqual(1e-5));
      } finally {
        await session.release();
      }
      expect(Math.max(...served) - Math.min(...served)).toBeGreaterThan(0.3);
    },
  );

  it("refuses the demo's five-feature rows: the width comes from the model's config", async () => {
    const res = await post(
      `${server.url}/v2/models/credit/versions/1/infer`,
      featuresRequest([[24, 80, 1, 5, 1900]]),
    );
    expect(res.status).toBe(400);
    expect((res.body as { error: string }).error).toMatch(
      /shape \[1, 5\] does not match the model's \[-1, 3\]/,
    );
  });

  it.each(['1', '2'])(
    'v%s: risk rises with overdue invoices and days late and falls with the credit limit',
    async (version) => {
      const base = [20_000, 2, 15];
      const vary = (column: number, values: number[]): number[][] =>
        values.map((v) => base.map((b, j) => (j === column ? v : b)));
      const limit = await score(version, vary(0, [1000, 5000, 20_000, 50_000, 100_000]));
      for (let i = 1; i < limit.length; i++) expect(limit[i]!).toBeLessThan(limit[i - 1]!);
      const overdue = await score(version, vary(1, [0, 1, 3, 6, 10, 20]));
      for (let i = 1; i < overdue.length; i++) expect(overdue[i]!).toBeGreaterThan(overdue[i - 1]!);
      const late = await score(version, vary(2, [0, 5, 15, 30, 60, 90]));
      for (let i = 1; i < late.length; i++) expect(late[i]!).toBeGreaterThan(late[i - 1]!);
      expect(overdue[5]! - overdue[0]!).toBeGreaterThan(0.3);
    },
  );
});

describe('building from a recipe module', () => {
  it('leaves an up-to-date repository alone and rebuilds a stale one', async () => {
    const file = path.join(repo, 'credit', '2', 'model.onnx');
    const original = await readFile(file);
    const { ino } = await stat(file);

    // Same recipes, seed and rows: nothing to do (a second server starts on the same files).
    const again = await spawnModelServer({ port: 0, workers: 1, recipes: INVOICING_RECIPES, repo });
    await again.stop();
    expect((await stat(file)).ino).toBe(ino);
    expect((await ensureModelRepository({ repo, recipes: INVOICING_RECIPES })).built).toBe(false);

    // Other training data: stale, rebuilt into other bytes.
    const other = await ensureModelRepository({ repo, recipes: INVOICING_RECIPES, rows: 1000 });
    expect(other.built).toBe(true);
    expect(other.versions.map((v) => `${v.model}/${v.version}`)).toEqual(['credit/1', 'credit/2']);
    expect((await readFile(file)).equals(original)).toBe(false);

    // Back to the defaults (what a server start asks for): stale again, the same bytes as before.
    const back = await spawnModelServer({ port: 0, workers: 1, recipes: INVOICING_RECIPES, repo });
    await back.stop();
    expect((await readFile(file)).equals(original)).toBe(true);
    expect(await leftovers()).toEqual([]);
  });

  it('builds once when several builders start on the same fresh folder at the same time', async () => {
    const fresh = path.join(scratch, 'concurrent');
    const results = await Promise.all(
      [1, 2, 3].map(() => ensureModelRepository({ repo: fresh, recipes: INVOICING_RECIPES })),
    );
    expect(results.map((r) => r.built).sort()).toEqual([false, false, true]);
    expect(await readdir(fresh)).toEqual(expect.arrayContaining(['.atrium-build.json', 'credit']));
    expect(await leftovers()).toEqual([]);
  });

  it('takes over a lock left by a process that died', async () => {
    const fresh = path.join(scratch, 'orphaned-lock');
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    const lock = path.join(scratch, '.orphaned-lock.atrium-lock');
    await mkdir(lock);
    await writeFile(path.join(lock, 'pid'), String(dead));
    const result = await ensureModelRepository({
      repo: fresh,
      recipes: INVOICING_RECIPES,
      lockTimeoutMs: 5000,
    });
    expect(result.built).toBe(true);
    expect(await leftovers()).toEqual([]);
  });

  it('never replaces a folder that holds anything but models', async () => {
    const foreign = path.join(scratch, 'project');
    await mkdir(path.join(foreign, 'src'), { recursive: true });
    await writeFile(path.join(foreign, 'notes.txt'), 'keep me');
    await expect(
      ensureModelRepository({ repo: foreign, recipes: INVOICING_RECIPES }),
    ).rejects.toThrow(
      /holds "(notes\.txt|src)", which is not a model folder; refusing to replace it/,
    );
    expect(await readFile(path.join(foreign, 'notes.txt'), 'utf8')).toBe('keep me');
    expect(await leftovers()).toEqual([]);
  });

  it('refuses a bad recipe module, naming the module, the field and the value', async () => {
    const bad = path.join(scratch, 'bad-recipes.mjs');
    await writeFile(
      bad,
      `export const recipes = [{
        name: 'has space', description: 'd', features: [], generate: 42,
        versions: [{ version: 1, kind: 'logistic', description: 'd',
          training: { epochs: 0, learningRate: 0.1, l2: 0, momentum: 0.9 } }],
      }];`,
    );
    const failure = ensureModelRepository({ repo: path.join(scratch, 'never'), recipes: bad });
    await expect(failure).rejects.toThrow(/bad-recipes\.mjs: invalid recipes: /);
    await failure.catch((err: Error) => {
      expect(err.message).toMatch(/recipes\[0\]\.name: .*\(found "has space"\)/);
      expect(err.message).toMatch(/recipes\[0\]\.features: .*\(found \[\]\)/);
      expect(err.message).toMatch(/recipes\[0\]\.generate: a function .*\(found 42\)/);
      expect(err.message).toMatch(/recipes\[0\]\.versions\[0\]\.training\.epochs: .*\(found 0\)/);
    });

    const none = path.join(scratch, 'no-export.mjs');
    await writeFile(none, 'export const models = [];');
    await expect(
      ensureModelRepository({ repo: path.join(scratch, 'never'), recipes: none }),
    ).rejects.toThrow(/no-export\.mjs has no "recipes" export/);

    const narrow = path.join(scratch, 'narrow-generator.mjs');
    await writeFile(
      narrow,
      `export const recipes = [{
        name: 'narrow', description: 'd', features: ['a', 'b', 'c'],
        generate: (rows) => ({ featureNames: ['a', 'b'], rows, cols: 2,
          x: new Float64Array(rows * 2), y: new Uint8Array(rows) }),
        versions: [{ version: 1, kind: 'logistic', description: 'd',
          training: { epochs: 1, learningRate: 0.1, l2: 0, momentum: 0.9 } }],
      }];`,
    );
    await expect(
      ensureModelRepository({ repo: path.join(scratch, 'never'), recipes: narrow }),
    ).rejects.toThrow(
      /recipe "narrow": .* 4000 rows of 2 columns .* expected 4000 rows of 3 \(a, b, c\)/,
    );
    await expect(stat(path.join(scratch, 'never'))).rejects.toThrow(/ENOENT/);
  });

  it('needs an explicit repository for a recipe module (the default one is the demo)', () => {
    expect(() => spawnModelServer({ recipes: INVOICING_RECIPES })).toThrow(
      /SpawnModelServerOptions\.repo is required with recipes/,
    );
  });
});

/** Lock, build and old folders a builder leaves next to the repositories (none, when done). */
async function leftovers(): Promise<string[]> {
  return (await readdir(scratch)).filter((name) => name.includes('.atrium-'));
}
