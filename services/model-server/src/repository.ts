import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DeviceSettings } from './device.js';
import { type ModelConfig, modelConfigSchema, type TensorConfig } from './model-config.js';
import { parseTritonConfig, TritonConfigError } from './triton-config.js';

/**
 * Reads a Triton-layout model repository:
 * ```
 * <repo>/<model>/config.json               or Triton's config.pbtxt
 * <repo>/<model>/<version>/model.onnx      version = positive integer
 * ```
 * and applies each model's version policy. Tensor names, widths and batch limits come from the
 * config (checked against the ONNX graph at start), never from code. A malformed config fails the load with a message
 * naming the file and field, so a bad repository stops the server at start, not at request time.
 */

/** A model and the versions the policy makes servable. */
export interface ServedModel {
  name: string;
  platform: 'onnxruntime_onnx';
  inputs: readonly TensorConfig[];
  outputs: readonly TensorConfig[];
  /** 0 = no limit. */
  maxBatchRows: number;
  /** Servable versions, ascending numerically, as strings (OIP versions are strings). */
  versions: readonly string[];
  /** The highest servable version: the one used when a request names none. */
  latest: string;
  /** version → absolute path of its model file. */
  files: ReadonlyMap<string, string>;
  /**
   * Each version's device (`instance_group`, `call_cost_ms`); undefined when the config sets
   * neither: its calls then share the worker pool with no limit of their own.
   */
  device: DeviceSettings | undefined;
  config: ModelConfig;
}

/** The loaded repository. */
export interface ModelRepository {
  root: string;
  models: ReadonlyMap<string, ServedModel>;
  /** What was skipped or ignored and why (no config, a version folder without its model file). */
  warnings: readonly string[];
}

/** A repository that cannot be served as it is. */
export class ModelRepositoryError extends Error {
  override readonly name = 'ModelRepositoryError';
}

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const VERSION_NAME = /^[1-9][0-9]*$/;

/** Loads and validates every model under `root`. */
export async function loadModelRepository(root: string): Promise<ModelRepository> {
  const absolute = path.resolve(root);
  let entries;
  try {
    entries = await readdir(absolute, { withFileTypes: true });
  } catch (err) {
    throw new ModelRepositoryError(
      `model repository ${absolute} cannot be read: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const models = new Map<string, ServedModel>();
  const warnings: string[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = path.join(absolute, entry.name);
    const json = path.join(dir, 'config.json');
    const pbtxt = path.join(dir, 'config.pbtxt');
    const [hasJson, hasPbtxt] = await Promise.all([isFile(json), isFile(pbtxt)]);
    if (!hasJson && !hasPbtxt) {
      warnings.push(`${dir}: no config.json or config.pbtxt, skipped`);
      continue;
    }
    if (hasJson && hasPbtxt) warnings.push(`${pbtxt}: ignored, ${json} is used`);
    if (!MODEL_NAME.test(entry.name)) {
      throw new ModelRepositoryError(`${dir}: model folder names must match ${MODEL_NAME}`);
    }
    models.set(entry.name, await loadModel(entry.name, dir, hasJson ? json : pbtxt, warnings));
  }
  if (models.size === 0) {
    throw new ModelRepositoryError(
      `model repository ${absolute} has no models (expected <model>/config.json or ` +
        `config.pbtxt and <model>/<version>/model.onnx; build one with ` +
        `npm run models:build -- --recipes <module> --out <repo>)`,
    );
  }
  return { root: absolute, models, warnings };
}

/** Reads `config.json` or `config.pbtxt` into the unvalidated config shape. */
async function readConfig(configFile: string, warnings: string[]): Promise<unknown> {
  const text = await readFile(configFile, 'utf8');
  if (configFile.endsWith('.pbtxt')) {
    try {
      const triton = parseTritonConfig(text);
      for (const w of triton.warnings) warnings.push(`${configFile}: ${w}`);
      return triton.config;
    } catch (err) {
      if (!(err instanceof TritonConfigError)) throw err;
      throw new ModelRepositoryError(`${configFile}: ${err.message}`, { cause: err });
    }
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelRepositoryError(`${configFile}: not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

async function loadModel(
  name: string,
  dir: string,
  configFile: string,
  warnings: string[],
): Promise<ServedModel> {
  const raw = await readConfig(configFile, warnings);
  const parsed = modelConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new ModelRepositoryError(`${configFile}: invalid config: ${issues}`);
  }
  const config = parsed.data;
  if (config.name !== undefined && config.name !== name) {
    throw new ModelRepositoryError(
      `${configFile}: name "${config.name}" must equal the folder name "${name}"`,
    );
  }
  for (const list of [config.input, config.output]) {
    const names = list.map((t) => t.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined)
      throw new ModelRepositoryError(`${configFile}: tensor name "${dup}" is declared twice`);
  }

  const onDisk = new Map<number, string>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !VERSION_NAME.test(entry.name)) continue;
    const file = path.join(dir, entry.name, config.default_model_filename);
    if (await isFile(file)) onDisk.set(Number(entry.name), file);
    else {
      warnings.push(
        `${path.join(dir, entry.name)}: no ${config.default_model_filename}, version skipped`,
      );
    }
  }
  const available = [...onDisk.keys()].sort((a, b) => a - b);

  let served: number[];
  const policy = config.version_policy;
  if ('all' in policy) {
    served = available;
  } else if ('latest' in policy) {
    served = available.slice(-policy.latest.num_versions);
  } else {
    const missing = policy.specific.versions.filter((v) => !onDisk.has(v));
    if (missing.length > 0) {
      throw new ModelRepositoryError(
        `${configFile}: version_policy.specific.versions lists ${missing.join(', ')}, ` +
          `but ${dir} has only [${available.join(', ')}]`,
      );
    }
    served = [...new Set(policy.specific.versions)].sort((a, b) => a - b);
  }
  if (served.length === 0) {
    throw new ModelRepositoryError(
      `${dir}: no servable version (expected <version>/${config.default_model_filename} folders)`,
    );
  }
  const versions = served.map(String);
  return {
    name,
    platform: config.platform,
    inputs: config.input,
    outputs: config.output,
    maxBatchRows: config.max_batch_rows,
    versions,
    latest: versions[versions.length - 1]!,
    files: new Map(served.map((v) => [String(v), onDisk.get(v)!])),
    device: deviceOf(config),
    config,
  };
}

/** The device a config asks for: `instance_group` instances (1 if only a cost is given). */
export function deviceOf(config: ModelConfig): DeviceSettings | undefined {
  if (config.instance_group === undefined && config.call_cost_ms === undefined) return undefined;
  return {
    instances: (config.instance_group ?? [{ count: 1 }]).reduce((n, g) => n + g.count, 0),
    callCostMs: config.call_cost_ms ?? 0,
  };
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
