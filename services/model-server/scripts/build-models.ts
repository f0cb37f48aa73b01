/**
 * `npm run models:build [-- --repo <dir>] [--seed <n>] [--rows <n>]`: trains the reference
 * models on seeded synthetic data and writes them as ONNX into the model repository.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  buildModelRepository,
  DEFAULT_TRAINING_ROWS,
  DEFAULT_TRAINING_SEED,
} from '../src/training/build-repository.js';

const DEFAULT_REPO = fileURLToPath(new URL('../models', import.meta.url));

const { values } = parseArgs({
  options: {
    repo: { type: 'string', default: DEFAULT_REPO },
    seed: { type: 'string', default: String(DEFAULT_TRAINING_SEED) },
    rows: { type: 'string', default: String(DEFAULT_TRAINING_ROWS) },
  },
  strict: true,
});

const seed = Number(values.seed);
const rows = Number(values.rows);
if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(rows) || rows < 100) {
  console.error(
    `--seed must be an integer and --rows an integer >= 100; got seed=${values.seed} rows=${values.rows}`,
  );
  process.exit(2);
}
const repo = path.resolve(values.repo);
const started = Date.now();
const built = await buildModelRepository({ repo, seed, rows });
for (const b of built) {
  const e = b.evaluation;
  console.log(
    `${b.model}/${b.version}  ${b.description.padEnd(42)} hold-out: auc ${e.auc.toFixed(3)}  ` +
      `log-loss ${e.logLoss.toFixed(3)}  accuracy ${e.accuracy.toFixed(3)}  (positives ${(e.positiveRate * 100).toFixed(1)} %)`,
  );
}
console.log(`wrote ${built.length} models to ${repo} in ${Date.now() - started} ms`);
