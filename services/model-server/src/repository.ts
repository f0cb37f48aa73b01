import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { type ModelConfig, modelConfigSchema, type TensorConfig } from './model-config.js';

/**
 * Reads a Triton-like model repository:
 * ```
 * <repo>/<model>/config.json
 * <repo>/<model>/<version>/model.onnx      version = positive integer
 * ```
 * and applies each model's version policy. A malformed config fails the load with a message
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
  /** version → absolute path of its model.onnx. */
  files: ReadonlyMap<string, string>;
  config: ModelConfig;
}

/** The loaded repository. */
export interface ModelRepository {
  root: string;
  models: ReadonlyMap<string, ServedModel>;
  /** Folders that were skipped and why (no config.json, a version folder without model.onnx). */
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
    const configFile = path.join(dir, 'config.json');
    if (!(await isFile(configFile))) {
      warnings.push(`${dir}: no config.json, skipped`);
      continue;
    }
    if (!MODEL_NAME.test(entry.name)) {
      throw new ModelRepositoryError(`${dir}: model folder names must match ${MODEL_NAME}`);
    }
    models.set(entry.name, await loadModel(entry.name, dir, configFile, warnings));
  }
  if (models.size === 0)
    throw new ModelRepositoryError(`model repository ${absolute} has no models`);
  return { root: absolute, models, warnings };
}

async function loadModel(
  name: string,
  dir: string,
  configFile: string,
  warnings: string[],
): Promise<ServedModel> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(configFile, 'utf8'));
  } catch (err) {
    throw new ModelRepositoryError(`${configFile}: not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
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
    const file = path.join(dir, entry.name, 'model.onnx');
    if (await isFile(file)) onDisk.set(Number(entry.name), file);
    else warnings.push(`${path.join(dir, entry.name)}: no model.onnx, version skipped`);
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
      `${dir}: no servable version (expected <version>/model.onnx folders)`,
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
    config,
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
