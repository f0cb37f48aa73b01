/**
 * The training toolkit's public surface, for recipe modules (`examples/<name>/models/recipes.ts`)
 * and the build script: recipe types, the synthetic-data helper and the repository builder.
 */
export {
  type BuiltModelVersion,
  DEFAULT_TRAINING_ROWS,
  DEFAULT_TRAINING_SEED,
  ensureModelRepository,
  type EnsuredModelRepository,
  type EnsureModelRepositoryOptions,
  INPUT_TENSOR,
  OUTPUT_TENSOR,
} from './build-repository.js';
export {
  type Dataset,
  generateLogisticDataset,
  splitDataset,
  type SyntheticRow,
} from './dataset.js';
export { createRandom, type Random } from './random.js';
export {
  loadRecipes,
  type ModelRecipe,
  parseRecipes,
  RecipeError,
  type VersionRecipe,
} from './recipe.js';
export type { Evaluation, GradientDescentOptions } from './train.js';
