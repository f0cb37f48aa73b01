/**
 * Where the demo's models come from and go, for the launchers outside the server (`spawn.ts`,
 * `npm run models:build`). The server itself has no default recipes: it serves any repository.
 */
import { fileURLToPath } from 'node:url';

/** The repository `npm start` serves (gitignored; built from {@link DEMO_RECIPES} when missing). */
export const DEFAULT_MODEL_REPOSITORY = fileURLToPath(new URL('./models', import.meta.url));
/** The demo example's recipe module (churn and fraud). */
export const DEMO_RECIPES = fileURLToPath(
  new URL(
    `../../examples/demo/models/recipes.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`,
    import.meta.url,
  ),
);
