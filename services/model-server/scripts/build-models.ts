/**
 * `npm run models:build [-- --recipes <module> --out <repo>] [--seed <n>] [--rows <n>]`: trains
 * the models of a recipe module on seeded synthetic data and writes them as ONNX into a model
 * repository, replacing what it held. Without arguments: the demo's recipes into the
 * repository `npm start` serves.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MODEL_REPOSITORY, DEMO_RECIPES } from '../defaults.js';
import {
  DEFAULT_TRAINING_ROWS,
  DEFAULT_TRAINING_SEED,
  ensureModelRepository,
} from '../src/training/index.js';

const usage =
  'usage: models:build [--recipes <module> --out <repo>] [--seed <integer>] [--rows <integer >= 100>]';
function fail(message: string): never {
  console.error(`models:build: ${message}\n${usage}`);
  process.exit(2);
}

let values;
try {
  values = parseArgs({
    options: {
      recipes: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string', default: String(DEFAULT_TRAINING_SEED) },
      rows: { type: 'string', default: String(DEFAULT_TRAINING_ROWS) },
    },
    strict: true,
  }).values;
} catch (err) {
  fail((err as Error).message);
}
const { recipes = DEMO_RECIPES } = values;
// Another module's models must not land in the demo's repository by accident.
if (values.recipes !== undefined && values.out === undefined) fail('--recipes needs --out <repo>');
const seed = Number(values.seed);
const rows = Number(values.rows);
if (!Number.isSafeInteger(seed)) fail(`--seed must be an integer, got "${values.seed}"`);
if (!Number.isSafeInteger(rows) || rows < 100) {
  fail(`--rows must be an integer >= 100, got "${values.rows}"`);
}
const repo = path.resolve(values.out ?? DEFAULT_MODEL_REPOSITORY);
const started = Date.now();
let built;
try {
  built = await ensureModelRepository({ repo, recipes, seed, rows, force: true });
} catch (err) {
  console.error(`models:build: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
for (const b of built.versions) {
  const e = b.evaluation;
  console.log(
    `${b.model}/${b.version}  ${b.description.padEnd(42)} hold-out: auc ${e.auc.toFixed(3)}  ` +
      `log-loss ${e.logLoss.toFixed(3)}  accuracy ${e.accuracy.toFixed(3)}  (positives ${(e.positiveRate * 100).toFixed(1)} %)`,
  );
}
console.log(
  `wrote ${built.versions.length} models from ${path.resolve(recipes)} to ${repo} in ${Date.now() - started} ms`,
);
