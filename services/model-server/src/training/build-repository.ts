import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelConfigInput } from '../model-config.js';
import {
  CHURN_FEATURES,
  FRAUD_FEATURES,
  type Dataset,
  generateChurnDataset,
  generateFraudDataset,
  splitDataset,
} from './datasets.js';
import { createRandom, type Random } from './random.js';
import { trainedModelToOnnx } from './to-onnx.js';
import {
  type Evaluation,
  evaluate,
  fitStandardizer,
  type GradientDescentOptions,
  standardize,
  type TrainedModel,
  trainLogistic,
  trainMlp,
} from './train.js';

/** Input tensor name of every reference model (the gateway's feature contract). */
export const INPUT_TENSOR = 'features';
/** Output tensor name of every reference model: sigmoid probability, shape [N, 1]. */
export const OUTPUT_TENSOR = 'probability';
/** Default seed: the same seed always produces byte-identical model files. */
export const DEFAULT_TRAINING_SEED = 20_240_601;
/** Default rows of synthetic data per model (80 % train, 20 % hold-out). */
export const DEFAULT_TRAINING_ROWS = 4000;
/** Batch limit written into the generated configs. */
export const DEFAULT_MAX_BATCH_ROWS = 10_000;

type VersionRecipe =
  | { version: number; kind: 'logistic'; description: string; gd: GradientDescentOptions }
  | {
      version: number;
      kind: 'mlp';
      description: string;
      gd: GradientDescentOptions;
      hidden: number;
    };

interface ModelRecipe {
  name: string;
  description: string;
  columns: readonly string[];
  generate: (rows: number, random: Random) => Dataset;
  versions: readonly VersionRecipe[];
}

/** Both models get the same two recipes: a linear baseline (v1) and a small MLP (v2). */
const STANDARD_VERSIONS: readonly VersionRecipe[] = [
  {
    version: 1,
    kind: 'logistic',
    description: 'logistic regression, 300 epochs, L2 1e-3',
    gd: { epochs: 300, learningRate: 0.5, l2: 1e-3, momentum: 0.9 },
  },
  {
    version: 2,
    kind: 'mlp',
    description: 'MLP 5-8-1 (ReLU), 600 epochs, L2 1e-4',
    hidden: 8,
    gd: { epochs: 600, learningRate: 0.3, l2: 1e-4, momentum: 0.9 },
  },
];

const RECIPES: readonly ModelRecipe[] = [
  {
    name: 'churn',
    description: 'Probability that a customer churns, from raw customer features.',
    columns: CHURN_FEATURES,
    generate: generateChurnDataset,
    versions: STANDARD_VERSIONS,
  },
  {
    name: 'fraud',
    description: 'Probability that an order is fraudulent, from raw order features.',
    columns: FRAUD_FEATURES,
    generate: generateFraudDataset,
    versions: STANDARD_VERSIONS,
  },
];

/** Options of {@link buildModelRepository}. */
export interface BuildModelRepositoryOptions {
  /** Repository root; created if missing. Existing files of the built models are replaced. */
  repo: string;
  seed?: number;
  rows?: number;
}

/** What one trained model version scored on its hold-out set. */
export interface BuiltModelVersion {
  model: string;
  version: number;
  file: string;
  description: string;
  evaluation: Evaluation;
}

/**
 * Trains every reference model version on seeded synthetic data and writes
 * `<repo>/<model>/<version>/model.onnx`, a `training.json` report next to it, and
 * `<repo>/<model>/config.json`. Files are written atomically (temp file + rename), so a server
 * reading the repository at the same time never sees half a file.
 */
export async function buildModelRepository(
  options: BuildModelRepositoryOptions,
): Promise<BuiltModelVersion[]> {
  const seed = options.seed ?? DEFAULT_TRAINING_SEED;
  const rows = options.rows ?? DEFAULT_TRAINING_ROWS;
  const built: BuiltModelVersion[] = [];
  for (const [index, recipe] of RECIPES.entries()) {
    const random = createRandom(seed + index * 7919);
    const { train, test } = splitDataset(recipe.generate(rows, random), 0.2);
    const standardizer = fitStandardizer(train);
    const xsTrain = standardize(train, standardizer);
    const xsTest = standardize(test, standardizer);
    for (const v of recipe.versions) {
      const model: TrainedModel =
        v.kind === 'logistic'
          ? trainLogistic(xsTrain, train.y, train.cols, v.gd)
          : trainMlp(xsTrain, train.y, train.cols, { ...v.gd, hidden: v.hidden, random });
      const evaluation = evaluate(model, xsTest, test.y, test.cols);
      const bytes = trainedModelToOnnx(model, standardizer, {
        inputName: INPUT_TENSOR,
        outputName: OUTPUT_TENSOR,
        modelName: recipe.name,
        modelVersion: v.version,
        docString: `${recipe.description} ${v.description}; trained on seeded synthetic data.`,
        metadata: { columns: recipe.columns.join(','), seed: String(seed) },
      });
      const dir = path.join(options.repo, recipe.name, String(v.version));
      await mkdir(dir, { recursive: true });
      const file = path.join(dir, 'model.onnx');
      await writeAtomic(file, bytes);
      const report = {
        model: recipe.name,
        version: v.version,
        kind: v.kind,
        description: v.description,
        seed,
        rows,
        evaluation,
      };
      await writeAtomic(path.join(dir, 'training.json'), `${JSON.stringify(report, null, 2)}\n`);
      built.push({
        model: recipe.name,
        version: v.version,
        file,
        description: v.description,
        evaluation,
      });
    }
    const config: ModelConfigInput = {
      name: recipe.name,
      platform: 'onnxruntime_onnx',
      description: recipe.description,
      max_batch_rows: DEFAULT_MAX_BATCH_ROWS,
      input: [
        {
          name: INPUT_TENSOR,
          datatype: 'FP32',
          dims: [-1, recipe.columns.length],
          columns: [...recipe.columns],
        },
      ],
      output: [{ name: OUTPUT_TENSOR, datatype: 'FP32', dims: [-1, 1] }],
      version_policy: { all: {} },
    };
    // config.json last: its presence is what marks a model folder as complete.
    await writeAtomic(
      path.join(options.repo, recipe.name, 'config.json'),
      `${JSON.stringify(config, null, 2)}\n`,
    );
  }
  return built;
}

/** True when `repo` holds at least one model folder with a `config.json`. */
export async function hasModels(repo: string): Promise<boolean> {
  let entries;
  try {
    entries = await readdir(repo, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    if (await exists(path.join(repo, entry.name, 'config.json'))) return true;
  }
  return false;
}

/**
 * Builds the reference models into `repo` unless it already has models, so a fresh clone
 * serves without a separate build step. Safe when several processes race on a fresh clone:
 * each builds into a private temp folder and moves whole model folders into place, and a
 * folder that already exists (another process won) is left alone.
 */
export async function ensureModelRepository(repo: string): Promise<{ built: boolean }> {
  if (await hasModels(repo)) return { built: false };
  const parent = path.dirname(path.resolve(repo));
  await mkdir(parent, { recursive: true });
  const temp = await mkdtemp(path.join(parent, '.models-build-'));
  try {
    await buildModelRepository({ repo: temp });
    try {
      // Atomic on POSIX when `repo` is missing or an empty directory.
      await rename(temp, repo);
      return { built: true };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
    for (const entry of await readdir(temp, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const target = path.join(repo, entry.name);
      if (await exists(target)) continue;
      try {
        await rename(path.join(temp, entry.name), target);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      }
    }
    return { built: true };
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

async function writeAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(temp, data);
  await rename(temp, file);
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
