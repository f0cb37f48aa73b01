import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_MODEL_REPOSITORY,
  DEMO_RECIPES,
  spawnModelServer,
  type SpawnedModelServer,
} from '../../../services/model-server/spawn.js';
import { call, featuresRequest, post } from './helpers.js';

// The model repository on disk: version policies, building on a fresh clone, start-up failures
// with clear messages, and graceful shutdown.

let scratch: string;
const started: SpawnedModelServer[] = [];

async function start(options: Parameters<typeof spawnModelServer>[0]): Promise<SpawnedModelServer> {
  const server = await spawnModelServer({ workers: 1, ...options });
  started.push(server);
  return server;
}

/** A copy of the default repository (built by the first spawn if missing). */
async function copyRepository(name: string): Promise<string> {
  const dir = path.join(scratch, name);
  await cp(DEFAULT_MODEL_REPOSITORY, dir, { recursive: true });
  return dir;
}

async function editConfig(
  repo: string,
  model: string,
  edit: (config: Record<string, unknown>) => void,
): Promise<void> {
  const file = path.join(repo, model, 'config.json');
  const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  edit(config);
  await writeFile(file, JSON.stringify(config));
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'atrium-model-repo-'));
  // Makes sure the default repository exists before it is copied.
  const server = await start({ port: 0 });
  await server.stop();
});

afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
  await rm(scratch, { recursive: true, force: true });
});

describe('version policies', () => {
  it('serves only the versions the policy selects; requests without a version get the highest', async () => {
    const repo = await copyRepository('policies');
    await editConfig(repo, 'churn', (c) => (c.version_policy = { specific: { versions: [1] } }));
    await editConfig(repo, 'fraud', (c) => (c.version_policy = { latest: { num_versions: 1 } }));
    const server = await start({ port: 0, repo });

    const churn = await call(`${server.url}/v2/models/churn`);
    expect((churn.body as { versions: string[] }).versions).toEqual(['1']);
    const latestChurn = await post(
      `${server.url}/v2/models/churn/infer`,
      featuresRequest([[24, 80, 1, 5, 1900]]),
    );
    expect(latestChurn.body).toMatchObject({ model_name: 'churn', model_version: '1' });
    expect(
      (
        await post(
          `${server.url}/v2/models/churn/versions/2/infer`,
          featuresRequest([[1, 1, 1, 1, 1]]),
        )
      ).status,
    ).toBe(404);

    const fraud = await call(`${server.url}/v2/models/fraud`);
    expect((fraud.body as { versions: string[] }).versions).toEqual(['2']);
    expect((await call(`${server.url}/v2/models/fraud/versions/1/ready`)).status).toBe(404);
    expect((await call(`${server.url}/v2/models/fraud/versions/2/ready`)).status).toBe(200);
  });

  it('picks the numerically highest version as latest (10 after 9 and 2)', async () => {
    const repo = await copyRepository('numeric');
    await cp(path.join(repo, 'churn', '1'), path.join(repo, 'churn', '10'), { recursive: true });
    await cp(path.join(repo, 'churn', '2'), path.join(repo, 'churn', '9'), { recursive: true });
    const server = await start({ port: 0, repo });
    expect(
      ((await call(`${server.url}/v2/models/churn`)).body as { versions: string[] }).versions,
    ).toEqual(['1', '2', '9', '10']);
    const res = await post(
      `${server.url}/v2/models/churn/infer`,
      featuresRequest([[24, 80, 1, 5, 1900]]),
    );
    expect(res.body).toMatchObject({ model_version: '10' });
  });
});

describe('building on a fresh clone', () => {
  it('builds the models into an empty repository at start, byte-identical to the default build', async () => {
    const repo = path.join(scratch, 'fresh');
    await mkdir(repo);
    const server = await start({ port: 0, repo, recipes: DEMO_RECIPES });
    expect(
      ((await call(`${server.url}/v2/models/fraud`)).body as { versions: string[] }).versions,
    ).toEqual(['1', '2']);
    for (const file of [
      'churn/1/model.onnx',
      'churn/2/model.onnx',
      'fraud/1/model.onnx',
      'fraud/2/model.onnx',
    ]) {
      const fresh = await readFile(path.join(repo, file));
      const reference = await readFile(path.join(DEFAULT_MODEL_REPOSITORY, file));
      expect(fresh.equals(reference)).toBe(true);
    }
    const report = JSON.parse(
      await readFile(path.join(repo, 'churn', '2', 'training.json'), 'utf8'),
    ) as {
      evaluation: { auc: number };
    };
    // The models learned something: hold-out AUC well above chance.
    expect(report.evaluation.auc).toBeGreaterThan(0.7);
  });
});

// Independent child processes: run them side by side to keep the suite short.
describe.concurrent('start-up failures', () => {
  it('refuses an invalid config.json, naming the file and field', async ({ expect }) => {
    const repo = await copyRepository('bad-config');
    await editConfig(repo, 'churn', (c) => delete c.input);
    await expect(start({ port: 0, repo })).rejects.toThrow(
      /churn[/\\]config\.json: invalid config: input/,
    );
  });

  it('refuses a specific version policy naming a version that is not on disk', async ({
    expect,
  }) => {
    const repo = await copyRepository('missing-version');
    await editConfig(repo, 'fraud', (c) => (c.version_policy = { specific: { versions: [1, 3] } }));
    await expect(start({ port: 0, repo })).rejects.toThrow(
      /version_policy\.specific\.versions lists 3/,
    );
  });

  it('refuses a model file onnxruntime cannot load', async ({ expect }) => {
    const repo = await copyRepository('corrupt');
    await writeFile(path.join(repo, 'churn', '2', 'model.onnx'), 'not an onnx file');
    await expect(start({ port: 0, repo })).rejects.toThrow(/failed to load models/);
  });

  it('refuses a config whose tensor names are not in the ONNX graph', async ({ expect }) => {
    const repo = await copyRepository('wrong-tensor');
    await editConfig(repo, 'fraud', (c) => ((c.input as Array<{ name: string }>)[0]!.name = 'x'));
    await expect(start({ port: 0, repo })).rejects.toThrow(
      /config input "x" is not an input of the ONNX graph/,
    );
  });

  it("refuses a config whose width is not the ONNX graph's", async ({ expect }) => {
    const repo = await copyRepository('wrong-width');
    await editConfig(
      repo,
      'churn',
      (c) => ((c.input as Array<{ dims: number[] }>)[0]!.dims = [-1, 3]),
    );
    await expect(start({ port: 0, repo })).rejects.toThrow(
      /config input "features" has dims \[-1, 3\], but the ONNX graph declares \[batch, 5\]/,
    );
  });

  it('refuses an empty repository when no recipes are given, saying how to build one', async ({
    expect,
  }) => {
    const repo = path.join(scratch, 'empty-without-recipes');
    await mkdir(repo);
    await expect(start({ port: 0, repo })).rejects.toThrow(
      /has no models .*npm run models:build -- --recipes <module> --out <repo>/,
    );
  });

  it('refuses bad command-line values', async ({ expect }) => {
    await expect(start({ port: 0, workers: 0 })).rejects.toThrow(
      /--workers must be an integer in 1\.\.64/,
    );
    await expect(start({ port: 70_000 })).rejects.toThrow(/--port must be an integer/);
  });
});

describe('shutdown', () => {
  it('drains on SIGTERM after serving, exits 0 and frees the port', async () => {
    const server = await start({ port: 0 });
    expect((await call(`${server.url}/v2/health/ready`)).status).toBe(200);
    // Workers that have run sessions must still shut down cleanly (no native abort).
    const infer = await post(
      `${server.url}/v2/models/churn/infer`,
      featuresRequest([[24, 80, 1, 5, 1900]]),
    );
    expect(infer.status).toBe(200);
    await server.stop();
    expect(server.process.exitCode).toBe(0);
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(server.port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });
});
