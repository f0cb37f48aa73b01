import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import type { Dataset } from './dataset.js';
import type { Random } from './random.js';
import type { GradientDescentOptions } from './train.js';

/**
 * Recipes say what to train; the toolkit (this folder) does the training and writes the
 * repository. A recipe module is any ES module whose `recipes` export is a `ModelRecipe[]`;
 * each example keeps its own next to its schema (`examples/<name>/models/recipes.ts`).
 */

/** One version of a model: a linear baseline or a one-hidden-layer ReLU network. */
export type VersionRecipe =
  | {
      /** Positive integer: the version folder name. */
      version: number;
      kind: 'logistic';
      /** Recorded in `training.json` and the ONNX doc string. */
      description: string;
      training: GradientDescentOptions;
    }
  | {
      version: number;
      kind: 'mlp';
      description: string;
      training: GradientDescentOptions;
      /** Width of the hidden layer. */
      hidden: number;
    };

/** A model the toolkit can train: its contract (name, features) and how to train it. */
export interface ModelRecipe {
  /** Model folder and OIP v2 model name. */
  name: string;
  /** What the probability means; written into `config.json`. */
  description: string;
  /** Input columns, in the order the caller sends them: the tensor is `[N, features.length]`. */
  features: readonly string[];
  /**
   * Seeded synthetic training data with `features.length` columns (see
   * `generateLogisticDataset`). It must draw only from `random`, so a seed gives one data set.
   */
  generate: (rows: number, random: Random) => Dataset;
  versions: readonly VersionRecipe[];
}

/** A recipe module that cannot be used as it is. */
export class RecipeError extends Error {
  override readonly name = 'RecipeError';
}

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

const trainingSchema = z
  .object({
    epochs: z.number().int().positive(),
    learningRate: z.number().positive().finite(),
    l2: z.number().nonnegative().finite(),
    momentum: z.number().min(0).lt(1),
  })
  .strict();

const versionSchema = z.discriminatedUnion('kind', [
  z
    .object({
      version: z.number().int().positive(),
      kind: z.literal('logistic'),
      description: z.string().min(1),
      training: trainingSchema,
    })
    .strict(),
  z
    .object({
      version: z.number().int().positive(),
      kind: z.literal('mlp'),
      description: z.string().min(1),
      training: trainingSchema,
      hidden: z.number().int().min(1).max(1024),
    })
    .strict(),
]);

const recipeSchema = z
  .object({
    name: z.string().regex(MODEL_NAME, `a model name matching ${String(MODEL_NAME)}`),
    description: z.string().min(1),
    features: z
      .array(z.string().min(1))
      .min(1)
      .refine((f) => new Set(f).size === f.length, 'feature names must be unique'),
    generate: z.custom<ModelRecipe['generate']>(
      (v) => typeof v === 'function',
      'a function (rows, random) => Dataset',
    ),
    versions: z
      .array(versionSchema)
      .min(1)
      .refine(
        (vs) => new Set(vs.map((v) => v.version)).size === vs.length,
        'version numbers must be unique',
      ),
  })
  .strict();

const recipesSchema = z
  .array(recipeSchema)
  .min(1)
  .refine((rs) => new Set(rs.map((r) => r.name)).size === rs.length, 'model names must be unique');

/**
 * Checks a module's `recipes` export and returns it; a bad one throws a {@link RecipeError}
 * naming the source, the field path and the value found.
 */
export function parseRecipes(value: unknown, source: string): readonly ModelRecipe[] {
  const parsed = recipesSchema.safeParse(value);
  if (parsed.success) return value as readonly ModelRecipe[];
  const issues = parsed.error.issues.map((issue) => {
    const where = `recipes${issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}`;
    return `${where}: ${issue.message} (found ${describe(pick(value, issue.path))})`;
  });
  throw new RecipeError(`${source}: invalid recipes: ${issues.join('; ')}`);
}

/** Imports a recipe module (a path, resolved from the working directory) and checks it. */
export async function loadRecipes(modulePath: string): Promise<readonly ModelRecipe[]> {
  const source = path.resolve(modulePath);
  // Built (dist/): a `.ts` recipe module named by a config exists as its `.js` sibling.
  const built = source.replace(/\.ts$/, '.js');
  const file = source.endsWith('.ts') && !existsSync(source) && existsSync(built) ? built : source;
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new RecipeError(
      `recipe module ${file} cannot be loaded: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  if (!('recipes' in module)) {
    throw new RecipeError(`recipe module ${file} has no "recipes" export (a ModelRecipe[])`);
  }
  return parseRecipes(module.recipes, file);
}

function pick(value: unknown, at: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of at) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (value === undefined) return 'undefined';
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch {
    json = String(value);
  }
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}
