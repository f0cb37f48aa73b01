import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnModelServer, type SpawnedModelServer } from '../../../services/model-server/spawn.js';
import { parseTritonConfig } from '../../../services/model-server/src/triton-config.js';
import { trainedModelToOnnx } from '../../../services/model-server/src/training/to-onnx.js';
import { call, post } from './helpers.js';

// A repository nobody built from recipes: Triton's layout with config.pbtxt, four features and
// Triton-style tensor names. Everything the server needs comes from the files.

const WEIGHTS = [0.5, -1, 0.25, 2];
const BIAS = { 3: -0.5, 7: 0.3 } as const;

/** An ONNX logistic model over 4 raw features, written with the server's own encoder. */
function onnxModel(version: 3 | 7): Uint8Array {
  return trainedModelToOnnx(
    { kind: 'logistic', weights: Float64Array.from(WEIGHTS), bias: BIAS[version] },
    { mean: new Float64Array(4), std: new Float64Array(4).fill(1) },
    {
      inputName: 'INPUT__0',
      outputName: 'OUTPUT__0',
      modelName: 'risk',
      modelVersion: version,
      docString: 'hand-made test model',
    },
  );
}

const CONFIG = `# Triton model configuration, as an operator would write it
name: "risk"
backend: "onnxruntime"
max_batch_size: 8
input [
  {
    name: "INPUT__0"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }
]
output [ { name: "OUTPUT__0", data_type: TYPE_FP32, dims: [ 1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
`;

let scratch: string;
let server: SpawnedModelServer;

async function writeModel(repo: string, model: string, config: string): Promise<void> {
  for (const version of [3, 7] as const) {
    await mkdir(path.join(repo, model, String(version)), { recursive: true });
    await writeFile(path.join(repo, model, String(version), 'model.onnx'), onnxModel(version));
  }
  await writeFile(path.join(repo, model, 'config.pbtxt'), config);
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'atrium-triton-repo-'));
  const repo = path.join(scratch, 'repo');
  await writeModel(repo, 'risk', CONFIG);
  await writeModel(
    repo,
    'risk_all',
    CONFIG.replace('"risk"', '"risk_all"') + 'version_policy: { all: {} }\n',
  );
  server = await spawnModelServer({ port: 0, workers: 1, repo });
});

afterAll(async () => {
  await server?.stop();
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
});

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));
const rows = [
  [1, 2, 3, 4],
  [-2, 0.5, 8, -1],
];

describe('a Triton repository with config.pbtxt', () => {
  it("takes tensor names, widths and versions from the files, with Triton's defaults", async () => {
    const risk = await call(`${server.url}/v2/models/risk`);
    expect(risk.status).toBe(200);
    expect(risk.body).toEqual({
      name: 'risk',
      // No version_policy: Triton serves the latest version only.
      versions: ['7'],
      platform: 'onnxruntime_onnx',
      // max_batch_size > 0: dims leave out the batch dimension.
      inputs: [{ name: 'INPUT__0', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'OUTPUT__0', datatype: 'FP32', shape: [-1, 1] }],
    });
    const all = await call(`${server.url}/v2/models/risk_all`);
    expect((all.body as { versions: string[] }).versions).toEqual(['3', '7']);
  });

  it('scores [N, 4] rows like onnxruntime does on the same file', async () => {
    const res = await post(`${server.url}/v2/models/risk/infer`, {
      inputs: [{ name: 'INPUT__0', shape: [2, 4], datatype: 'FP32', data: rows.flat() }],
    });
    expect(res.status).toBe(200);
    const body = res.body as {
      model_version: string;
      outputs: Array<{ name: string; shape: number[]; data: number[] }>;
    };
    expect(body.model_version).toBe('7');
    expect(body.outputs.map((o) => [o.name, o.shape])).toEqual([['OUTPUT__0', [2, 1]]]);

    const session = await ort.InferenceSession.create(path.join(scratch, 'repo/risk/7/model.onnx'));
    try {
      const direct = await session.run({
        INPUT__0: new ort.Tensor('float32', Float32Array.from(rows.flat()), [2, 4]),
      });
      const expected = Array.from(direct.OUTPUT__0!.data as Float32Array);
      body.outputs[0]!.data.forEach((p, i) => {
        expect(Math.abs(p - expected[i]!)).toBeLessThanOrEqual(1e-5);
        // And what the weights say, so the file is the one written above.
        const z = rows[i]!.reduce((sum, x, j) => sum + x * WEIGHTS[j]!, BIAS[7]);
        expect(Math.abs(p - sigmoid(z))).toBeLessThanOrEqual(1e-5);
      });
    } finally {
      await session.release();
    }
  });

  it('applies max_batch_size and the version policy to requests', async () => {
    const nine = Array.from({ length: 9 }, () => [1, 1, 1, 1]);
    const big = await post(`${server.url}/v2/models/risk/infer`, {
      inputs: [{ name: 'INPUT__0', shape: [9, 4], datatype: 'FP32', data: nine.flat() }],
    });
    expect(big.status).toBe(400);
    expect((big.body as { error: string }).error).toMatch(/exceeds the model's limit of 8/);
    const hidden = await post(`${server.url}/v2/models/risk/versions/3/infer`, {
      inputs: [{ name: 'INPUT__0', shape: [1, 4], datatype: 'FP32', data: [1, 1, 1, 1] }],
    });
    expect(hidden.status).toBe(404);
    const old = await post(`${server.url}/v2/models/risk_all/versions/3/infer`, {
      inputs: [{ name: 'INPUT__0', shape: [1, 4], datatype: 'FP32', data: [1, 1, 1, 1] }],
    });
    expect(old.status).toBe(200);
  });

  it('refuses at start a config.pbtxt it cannot honour, naming the file and line', async () => {
    const repo = path.join(scratch, 'sequence');
    await writeModel(
      repo,
      'risk',
      CONFIG + 'sequence_batching {\n  max_sequence_idle_microseconds: 5000000\n}\n',
    );
    await expect(spawnModelServer({ port: 0, workers: 1, repo })).rejects.toThrow(
      /risk[/\\]config\.pbtxt: line 14: sequence_batching is not supported/,
    );
  });
});

describe('parseTritonConfig', () => {
  it('reads the text format: comments, <> and {} messages, lists and repeated fields', () => {
    const { config, warnings } = parseTritonConfig(`
      name: 'm'  # trailing comment
      platform: "onnxruntime_onnx"
      input < name: "x" data_type: TYPE_FP32 dims: 2 dims: 3 >;
      output: [{ name: "y", data_type: TYPE_FP32, dims: [1] }]
      version_policy { specific { versions: [1, 3] } }
      dynamic_batching { }
      default_model_filename: "net.onnx"
    `);
    expect(config).toEqual({
      name: 'm',
      platform: 'onnxruntime_onnx',
      max_batch_rows: 0,
      // max_batch_size 0: the dims are the whole shape.
      input: [{ name: 'x', datatype: 'FP32', dims: [2, 3] }],
      output: [{ name: 'y', datatype: 'FP32', dims: [1] }],
      version_policy: { specific: { versions: [1, 3] } },
      default_model_filename: 'net.onnx',
    });
    expect(warnings).toEqual(['dynamic_batching is ignored by this server']);
  });

  it('reads instance_group counts and the call_cost_ms parameter, warning about the rest', () => {
    const { config, warnings } = parseTritonConfig(`
      input [ { name: "x" data_type: TYPE_FP32 dims: [1] } ]
      output [ { name: "y" data_type: TYPE_FP32 dims: [1] } ]
      instance_group [ { count: 2 kind: KIND_GPU gpus: [0, 1] }, { kind: KIND_CPU } ]
      parameters { key: "call_cost_ms" value: { string_value: "7.5" } }
      parameters [ { key: "intra_op_thread_count" value: { string_value: "1" } } ]
    `);
    expect(config).toMatchObject({
      instance_group: [{ count: 2 }, { count: 1 }],
      call_cost_ms: 7.5,
    });
    expect(warnings).toEqual([
      "instance_group kind, gpus ignored: every instance runs on this server's worker pool",
      'parameters "intra_op_thread_count" is ignored by this server',
    ]);
    // Neither given: no device, as before.
    const plain = parseTritonConfig('input [ { name: "x" data_type: TYPE_FP32 dims: [1] } ]');
    expect(plain.config).not.toHaveProperty('instance_group');
    expect(plain.config).not.toHaveProperty('call_cost_ms');
  });

  it.each([
    [
      'input [ { name: "x" data_type: TYPE_INT64 dims: [1] } ]',
      /input\[0\]\.data_type must be TYPE_FP32.*TYPE_INT64/,
    ],
    ['platform: "tensorrt_plan"', /only ONNX models .*platform "tensorrt_plan"/],
    [
      'input [ { name: "x" data_type: TYPE_FP32 dims: [1] reshape { shape: [1] } } ]',
      /line 1: input\[0\]\.reshape is not supported/,
    ],
    ['max_batch_size: -1', /max_batch_size must be >= 0, got -1/],
    ['name: "a"\nname: "b"', /line 2: name is given more than once/],
    ['version_policy { latest { } }', /version_policy\.latest needs num_versions/],
    ['input [ { name: "x"', /missing \]|expected , or \]|missing }/],
    ['name "x"', /line 1: expected : or \{ after name/],
    ['name: "x" @', /line 1: unexpected character "@"/],
  ])('refuses %j', (text, error) => {
    expect(() => parseTritonConfig(text)).toThrow(error);
  });
});
