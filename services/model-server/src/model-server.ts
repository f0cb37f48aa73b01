import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDevice, type Device, type DeviceSettings } from './device.js';
import { createModelServerHandler, DEFAULT_MAX_BODY_BYTES } from './http-handler.js';
import type { TensorConfig } from './model-config.js';
import {
  loadModelRepository,
  type ModelRepository,
  ModelRepositoryError,
  type ServedModel,
} from './repository.js';
import { createServerStats, type ServerStats } from './stats.js';
import { ensureModelRepository } from './training/build-repository.js';
import {
  createInferencePool,
  DEFAULT_MAX_QUEUE,
  DEFAULT_POOL_SIZE,
  type InferencePool,
} from './worker-pool.js';
import type { GraphTensor } from './worker-protocol.js';

/** onnxruntime's element type for each datatype a config may declare. */
const ONNX_TYPES: Record<TensorConfig['datatype'], string> = { FP32: 'float32' };

/** `name` reported by `GET /v2`. */
export const MODEL_SERVER_NAME = 'atrium-model-server';
/** `version` reported by `GET /v2`. */
export const MODEL_SERVER_VERSION = '0.1.0';
/** How long `close()` waits for in-flight requests before cutting connections. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/** Options of {@link startModelServer}. */
export interface ModelServerOptions {
  /** Model repository root. */
  repo: string;
  host: string;
  /** 0 lets the OS pick a free port. */
  port: number;
  /** Inference worker threads (default 2). */
  workers?: number;
  /** Requests allowed to wait for a busy pool before 503 (default 256). */
  maxQueue?: number;
  maxBodyBytes?: number;
  /**
   * A recipe module (exports `recipes: ModelRecipe[]`): build `repo` from it first when it is
   * missing or stale. Without it the repository is served as it is on disk.
   */
  recipes?: string;
  drainTimeoutMs?: number;
  /**
   * Per model name, device settings that replace its config's (`--call-cost-ms`,
   * `--instances`), for every served version; the one not given keeps the config's value
   * (or 1 instance, 0 ms). A name the repository does not serve fails the start.
   */
  devices?: Readonly<Record<string, Partial<DeviceSettings>>>;
  /** Diagnostics (repository warnings, internal errors). */
  log: (message: string) => void;
}

/** A listening model server. */
export interface RunningModelServer {
  url: string;
  host: string;
  port: number;
  repository: ModelRepository;
  stats: ServerStats;
  /** Whether the models had to be built from `recipes` at start. */
  builtModels: boolean;
  /** Stops accepting, drains in-flight requests, terminates the workers. Idempotent. */
  close(): Promise<void>;
}

/** Loads the repository, starts the worker pool and listens. Rejects if any step fails. */
export async function startModelServer(options: ModelServerOptions): Promise<RunningModelServer> {
  const { built } =
    options.recipes === undefined
      ? { built: false }
      : await ensureModelRepository({ repo: options.repo, recipes: options.recipes });
  const repository = withDevices(await loadModelRepository(options.repo), options.devices ?? {});
  for (const warning of repository.warnings) options.log(`warning: ${warning}`);
  const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
  const devices = new Map<string, Device>();
  for (const model of repository.models.values()) {
    if (model.device === undefined) continue;
    for (const v of model.versions) {
      const key = `${model.name}/${v}`;
      devices.set(key, createDevice(key, model.device, maxQueue));
    }
  }

  const models = [...repository.models.values()].flatMap((m) =>
    m.versions.map((v) => ({ key: `${m.name}/${v}`, file: m.files.get(v)! })),
  );
  const pool = await createInferencePool({
    models,
    size: options.workers ?? DEFAULT_POOL_SIZE,
    maxQueue,
  });
  try {
    checkSignatures(repository, pool);
  } catch (err) {
    await pool.close();
    throw err;
  }

  const stats = createServerStats(devices);
  let ready = false;
  const server = createServer(
    createModelServerHandler({
      repository,
      pool,
      devices,
      stats,
      serverName: MODEL_SERVER_NAME,
      serverVersion: MODEL_SERVER_VERSION,
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      isReady: () => ready,
      onInternalError: (err) =>
        options.log(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
    }),
  );
  try {
    await listen(server, options.host, options.port);
  } catch (err) {
    await pool.close();
    throw err;
  }
  ready = true;
  const { port } = server.address() as AddressInfo;
  const hostInUrl = options.host.includes(':') ? `[${options.host}]` : options.host;

  let closing: Promise<void> | undefined;
  const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  return {
    url: `http://${hostInUrl}:${port}`,
    host: options.host,
    port,
    repository,
    stats,
    builtModels: built,
    close() {
      closing ??= (async () => {
        ready = false;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timer = setTimeout(() => server.closeAllConnections(), drainTimeoutMs);
        await closed;
        clearTimeout(timer);
        await pool.close();
      })();
      return closing;
    },
  };
}

/**
 * The repository with the given device settings in place of the configs' (and in the served
 * config, so `GET …/config` shows what is served).
 */
function withDevices(
  repository: ModelRepository,
  overrides: Readonly<Record<string, Partial<DeviceSettings>>>,
): ModelRepository {
  const models = new Map<string, ServedModel>(repository.models);
  for (const [name, override] of Object.entries(overrides)) {
    const model = models.get(name);
    if (model === undefined) {
      throw new ModelRepositoryError(
        `device settings name model "${name}", which ${repository.root} does not serve ` +
          `(it serves ${[...models.keys()].join(', ')})`,
      );
    }
    const device: DeviceSettings = {
      instances: override.instances ?? model.device?.instances ?? 1,
      callCostMs: override.callCostMs ?? model.device?.callCostMs ?? 0,
    };
    models.set(name, {
      ...model,
      device,
      config: {
        ...model.config,
        instance_group: [{ count: device.instances }],
        call_cost_ms: device.callCostMs,
      },
    });
  }
  return { ...repository, models };
}

/**
 * Fails start-up when a config disagrees with the ONNX file: a tensor the graph does not have,
 * another element type, or another shape where the graph fixes a dimension (a symbolic one,
 * like the batch, takes any size). So a wrong width is a clear start-up error, not a 500 on
 * the first request.
 */
function checkSignatures(repository: ModelRepository, pool: InferencePool): void {
  for (const model of repository.models.values()) {
    for (const version of model.versions) {
      const signature = pool.signatures.get(`${model.name}/${version}`);
      if (signature === undefined) continue;
      const file = model.files.get(version)!;
      checkTensors(file, 'input', model.inputs, signature.inputs);
      checkTensors(file, 'output', model.outputs, signature.outputs);
    }
  }
}

function checkTensors(
  file: string,
  kind: 'input' | 'output',
  configured: readonly TensorConfig[],
  graph: readonly GraphTensor[],
): void {
  for (const t of configured) {
    const declared = graph.find((g) => g.name === t.name);
    if (declared === undefined) {
      throw new ModelRepositoryError(
        `${file}: config ${kind} "${t.name}" is not an ${kind} of the ONNX graph (${graph.map((g) => g.name).join(', ')})`,
      );
    }
    if (declared.type !== undefined && declared.type !== ONNX_TYPES[t.datatype]) {
      throw new ModelRepositoryError(
        `${file}: config ${kind} "${t.name}" is ${t.datatype}, but the ONNX graph declares ${declared.type}`,
      );
    }
    const fits =
      declared.shape.length === 0 ||
      (declared.shape.length === t.dims.length &&
        declared.shape.every((d, i) => typeof d !== 'number' || d < 0 || d === t.dims[i]));
    if (!fits) {
      throw new ModelRepositoryError(
        `${file}: config ${kind} "${t.name}" has dims [${t.dims.join(', ')}], but the ONNX graph ` +
          `declares [${declared.shape.join(', ')}]`,
      );
    }
  }
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
