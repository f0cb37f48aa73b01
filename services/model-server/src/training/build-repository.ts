import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelConfigInput } from '../model-config.js';
import { acquireDirectoryLock, DEFAULT_LOCK_TIMEOUT_MS } from './directory-lock.js';
import { type Dataset, splitDataset } from './dataset.js';
import { createRandom, type Random } from './random.js';
import { loadRecipes, type ModelRecipe, RecipeError } from './recipe.js';
import { trainedModelToOnnx } from './to-onnx.js';
import {
  type Evaluation,
  evaluate,
  fitStandardizer,
  standardize,
  type TrainedModel,
  trainLogistic,
  trainMlp,
} from './train.js';

/** Input tensor name of every model the toolkit writes. */
export const INPUT_TENSOR = 'features';
/** Output tensor name of every model the toolkit writes: sigmoid probability, shape [N, 1]. */
export const OUTPUT_TENSOR = 'probability';
/** Default seed: the same seed always produces byte-identical model files. */
export const DEFAULT_TRAINING_SEED = 20_240_601;
/** Default rows of synthetic data per model (80 % train, 20 % hold-out). */
export const DEFAULT_TRAINING_ROWS = 4000;
/** Batch limit written into the generated configs. */
export const DEFAULT_MAX_BATCH_ROWS = 10_000;
/**
 * What a built repository records about its inputs. Hidden (the loader skips dot entries);
 * written last, so a folder with it is complete.
 */
export const BUILD_STAMP_FILE = '.atrium-build.json';

/** Bumped when the stamp's meaning changes, so older stamps read as stale. */
const STAMP_FORMAT = 1;
/** The code that turns recipes into bytes: a change to it makes every built repository stale. */
const TOOLKIT_DIRS = ['.', '../onnx'].map((d) => fileURLToPath(new URL(d, import.meta.url)));

/** What one trained model version scored on its hold-out set. */
export interface BuiltModelVersion {
  model: string;
  version: number;
  file: string;
  description: string;
  evaluation: Evaluation;
}

/** Options of {@link ensureModelRepository}. */
export interface EnsureModelRepositoryOptions {
  /** Repository root. Replaced as a whole when rebuilt; its parent is created if missing. */
  repo: string;
  /** Path of a recipe module (exports `recipes: ModelRecipe[]`), resolved from the cwd. */
  recipes: string;
  seed?: number;
  rows?: number;
  /** Rebuild even when the repository is up to date (`models:build`). Default false. */
  force?: boolean;
  /** How long to wait for another process building the same repository. */
  lockTimeoutMs?: number;
}

/** What {@link ensureModelRepository} did. */
export interface EnsuredModelRepository {
  /** False when the repository was already built from the same inputs. */
  built: boolean;
  /** The versions trained now (empty when nothing was built). */
  versions: BuiltModelVersion[];
}

/** A recipe with its seeded data generated: what both the fingerprint and the training use. */
interface PreparedRecipe {
  recipe: ModelRecipe;
  data: Dataset;
  /** The recipe's generator after generating `data`; the MLP initialisation continues it. */
  random: Random;
}

/**
 * Makes `repo` hold the models of a recipe module: builds it when it is missing, empty or
 * stale, and leaves it alone when its stamp says it was built from the same inputs. Stale
 * means anything that changes the files: the recipes' settings, the data their generators
 * draw (so an edited helper they import counts too), the seed, the row count, or the
 * toolkit's own code.
 *
 * Safe when several processes start at once: the check and the build run under a lock next to
 * the repository, the build goes to a private temp folder, and the finished folder replaces
 * `repo` with renames, so a reader never sees half a model. A folder holding anything but
 * models is never replaced.
 */
export async function ensureModelRepository(
  options: EnsureModelRepositoryOptions,
): Promise<EnsuredModelRepository> {
  const seed = options.seed ?? DEFAULT_TRAINING_SEED;
  const rows = options.rows ?? DEFAULT_TRAINING_ROWS;
  if (!Number.isSafeInteger(seed)) {
    throw new TypeError(`EnsureModelRepositoryOptions.seed must be an integer, got ${seed}`);
  }
  if (!Number.isSafeInteger(rows) || rows < 100) {
    throw new TypeError(
      `EnsureModelRepositoryOptions.rows must be an integer >= 100, got ${String(rows)}`,
    );
  }
  const repo = path.resolve(options.repo);
  const recipesFile = path.resolve(options.recipes);
  const prepared = prepareRecipes(await loadRecipes(recipesFile), seed, rows);
  const fingerprint = await fingerprintOf(prepared, seed, rows);
  if (options.force !== true && (await stampOf(repo)) === fingerprint) {
    return { built: false, versions: [] };
  }

  const parent = path.dirname(repo);
  const base = path.basename(repo);
  await mkdir(parent, { recursive: true });
  const release = await acquireDirectoryLock(
    path.join(parent, `.${base}.atrium-lock`),
    options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
  );
  let temp: string | undefined;
  try {
    // Another process may have built it while this one waited.
    if (options.force !== true && (await stampOf(repo)) === fingerprint) {
      return { built: false, versions: [] };
    }
    await assertReplaceable(repo);
    temp = await mkdtemp(path.join(parent, `.${base}.atrium-build-`));
    const versions = await writeModels(temp, prepared, seed, rows);
    const stamp = { format: STAMP_FORMAT, fingerprint, recipes: recipesFile, seed, rows };
    await writeFile(path.join(temp, BUILD_STAMP_FILE), `${JSON.stringify(stamp, null, 2)}\n`);
    const buildDir = temp;
    await replaceDirectory(buildDir, repo);
    temp = undefined;
    return {
      built: true,
      versions: versions.map((v) => ({
        ...v,
        file: path.join(repo, path.relative(buildDir, v.file)),
      })),
    };
  } finally {
    if (temp !== undefined) await rm(temp, { recursive: true, force: true });
    await release();
  }
}

function prepareRecipes(
  recipes: readonly ModelRecipe[],
  seed: number,
  rows: number,
): PreparedRecipe[] {
  return recipes.map((recipe, index) => {
    // Each model its own stream, so adding a model leaves the earlier ones' files unchanged.
    const random = createRandom(seed + index * 7919);
    const data = recipe.generate(rows, random);
    const width = recipe.features.length;
    if (data.rows !== rows || data.cols !== width || data.x.length !== rows * width) {
      throw new RecipeError(
        `recipe "${recipe.name}": generate(${rows}, random) returned ${data.rows} rows of ` +
          `${data.cols} columns (x of ${data.x.length} values); expected ${rows} rows of ` +
          `${width} (${recipe.features.join(', ')})`,
      );
    }
    if (data.y.length !== rows || !data.y.every((label) => label === 0 || label === 1)) {
      throw new RecipeError(`recipe "${recipe.name}": labels must be ${rows} values of 0 or 1`);
    }
    const bad = data.x.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new RecipeError(
        `recipe "${recipe.name}": feature "${recipe.features[bad % width]!}" of row ` +
          `${Math.floor(bad / width)} is ${data.x[bad]}, not a finite number`,
      );
    }
    return { recipe, data, random };
  });
}

async function writeModels(
  repo: string,
  prepared: readonly PreparedRecipe[],
  seed: number,
  rows: number,
): Promise<BuiltModelVersion[]> {
  const built: BuiltModelVersion[] = [];
  for (const { recipe, data, random } of prepared) {
    const { train, test } = splitDataset(data, 0.2);
    const standardizer = fitStandardizer(train);
    const xsTrain = standardize(train, standardizer);
    const xsTest = standardize(test, standardizer);
    for (const v of recipe.versions) {
      const model: TrainedModel =
        v.kind === 'logistic'
          ? trainLogistic(xsTrain, train.y, train.cols, v.training)
          : trainMlp(xsTrain, train.y, train.cols, { ...v.training, hidden: v.hidden, random });
      const evaluation = evaluate(model, xsTest, test.y, test.cols);
      const bytes = trainedModelToOnnx(model, standardizer, {
        inputName: INPUT_TENSOR,
        outputName: OUTPUT_TENSOR,
        modelName: recipe.name,
        modelVersion: v.version,
        docString: `${recipe.description} ${v.description}; trained on seeded synthetic data.`,
        metadata: { columns: recipe.features.join(','), seed: String(seed) },
      });
      const dir = path.join(repo, recipe.name, String(v.version));
      await mkdir(dir, { recursive: true });
      const file = path.join(dir, 'model.onnx');
      await writeFile(file, bytes);
      const report = {
        model: recipe.name,
        version: v.version,
        kind: v.kind,
        description: v.description,
        seed,
        rows,
        evaluation,
      };
      await writeFile(path.join(dir, 'training.json'), `${JSON.stringify(report, null, 2)}\n`);
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
          dims: [-1, recipe.features.length],
          columns: [...recipe.features],
        },
      ],
      output: [{ name: OUTPUT_TENSOR, datatype: 'FP32', dims: [-1, 1] }],
      version_policy: { all: {} },
    };
    await writeFile(
      path.join(repo, recipe.name, 'config.json'),
      `${JSON.stringify(config, null, 2)}\n`,
    );
  }
  return built;
}

/** sha256 over everything that decides the bytes of the built files. */
async function fingerprintOf(
  prepared: readonly PreparedRecipe[],
  seed: number,
  rows: number,
): Promise<string> {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ format: STAMP_FORMAT, seed, rows }));
  for (const dir of TOOLKIT_DIRS) {
    const files = (await readdir(dir)).filter((f) => /\.[cm]?[jt]s$/.test(f)).sort();
    for (const file of files) {
      hash.update(`\0${path.basename(dir)}/${file}\0`);
      hash.update(await readFile(path.join(dir, file)));
    }
  }
  for (const { recipe, data } of prepared) {
    // Everything but the generator, whose output is hashed instead of its source.
    const { name, description, features, versions } = recipe;
    hash.update(`\0${JSON.stringify({ name, description, features, versions })}\0`);
    hash.update(new Uint8Array(data.x.buffer, data.x.byteOffset, data.x.byteLength));
    hash.update(data.y);
  }
  return hash.digest('hex');
}

async function stampOf(repo: string): Promise<string | undefined> {
  try {
    const stamp = JSON.parse(await readFile(path.join(repo, BUILD_STAMP_FILE), 'utf8')) as {
      fingerprint?: unknown;
    };
    return typeof stamp.fingerprint === 'string' ? stamp.fingerprint : undefined;
  } catch {
    // Missing or unreadable: stale.
    return undefined;
  }
}

/**
 * A rebuild deletes the old folder, so it must hold models and nothing else: a wrong `repo`
 * (a home directory, a project folder) must not be wiped.
 */
async function assertReplaceable(repo: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(repo, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new RecipeError(`${repo} is a file, not a model repository`);
    throw err;
  }
  for (const entry of entries) {
    if (entry.name === BUILD_STAMP_FILE) continue;
    const modelFolder =
      entry.isDirectory() &&
      (await readdir(path.join(repo, entry.name))).some(
        (f) => f === 'config.json' || f === 'config.pbtxt' || /^[1-9][0-9]*$/.test(f),
      );
    if (!modelFolder) {
      throw new RecipeError(
        `${repo} holds "${entry.name}", which is not a model folder; refusing to replace it ` +
          `with built models (use an empty or new folder)`,
      );
    }
  }
}

/**
 * Moves the finished build into place: one rename when `target` is missing or empty,
 * otherwise the old folder is moved aside first and deleted after.
 */
async function replaceDirectory(source: string, target: string): Promise<void> {
  try {
    await rename(source, target);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
  }
  const old = `${path.join(path.dirname(target), `.${path.basename(target)}`)}.atrium-old-${process.pid}-${Date.now()}`;
  await rename(target, old);
  try {
    await rename(source, target);
  } catch (err) {
    // Put the old models back rather than leave no repository at all.
    await rename(old, target).catch(() => undefined);
    throw err;
  }
  await rm(old, { recursive: true, force: true });
}
