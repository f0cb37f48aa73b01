import type { Random } from './random.js';

/** A binary classification data set, features stored row-major. */
export interface Dataset {
  featureNames: readonly string[];
  rows: number;
  cols: number;
  /** rows × cols, row-major. */
  x: Float64Array;
  /** 0 or 1 per row. */
  y: Uint8Array;
}

/** One synthetic row: the raw feature values (in the recipe's order) and the true log-odds. */
export interface SyntheticRow {
  features: readonly number[];
  logit: number;
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/**
 * Synthetic data from a known logistic "true model": `sampleRow` draws the raw features and
 * the log-odds of the positive class, and the label is drawn from that probability. Scores of
 * a model trained on it therefore mean something (tests can check their direction) without
 * any real data. `random` is used by `sampleRow` and for the labels, in that order per row,
 * so one seed gives one data set.
 */
export function generateLogisticDataset(
  featureNames: readonly string[],
  rows: number,
  random: Random,
  sampleRow: () => SyntheticRow,
): Dataset {
  const cols = featureNames.length;
  const x = new Float64Array(rows * cols);
  const y = new Uint8Array(rows);
  for (let i = 0; i < rows; i++) {
    const { features, logit } = sampleRow();
    if (features.length !== cols) {
      throw new TypeError(
        `sampleRow returned ${features.length} features for row ${i}; expected ${cols} (${featureNames.join(', ')})`,
      );
    }
    x.set(features, i * cols);
    y[i] = random.bernoulli(sigmoid(logit));
  }
  return { featureNames, rows, cols, x, y };
}

/** Splits off the last `fraction` of rows as a hold-out set (rows are already i.i.d.). */
export function splitDataset(data: Dataset, fraction: number): { train: Dataset; test: Dataset } {
  const testRows = Math.round(data.rows * fraction);
  const trainRows = data.rows - testRows;
  const part = (from: number, count: number): Dataset => ({
    featureNames: data.featureNames,
    rows: count,
    cols: data.cols,
    x: data.x.slice(from * data.cols, (from + count) * data.cols),
    y: data.y.slice(from, from + count),
  });
  return { train: part(0, trainRows), test: part(trainRows, testRows) };
}
