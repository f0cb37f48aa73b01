import type { Random } from './random.js';

/**
 * Synthetic training data for the reference models. The label of each row is drawn from a
 * known logistic "true model" of the features, so a trained model's scores mean something
 * (and tests can check their direction) without shipping any real customer data.
 */

/** Churn model input columns, in the order the gateway feeds them. */
export const CHURN_FEATURES = [
  'tenureMonths',
  'monthlySpend',
  'supportTickets',
  'daysSinceLastLogin',
  'lifetimeValue',
] as const;

/** Fraud model input columns, in the order the gateway feeds them. */
export const FRAUD_FEATURES = [
  'amount',
  'itemCount',
  'isInternational',
  'paymentAttempts',
  'hourOfDay',
] as const;

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

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));
const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

function fill(
  featureNames: readonly string[],
  rows: number,
  row: () => { features: number[]; logit: number },
  random: Random,
): Dataset {
  const cols = featureNames.length;
  const x = new Float64Array(rows * cols);
  const y = new Uint8Array(rows);
  for (let i = 0; i < rows; i++) {
    const { features, logit } = row();
    x.set(features, i * cols);
    y[i] = random.bernoulli(sigmoid(logit));
  }
  return { featureNames, rows, cols, x, y };
}

/**
 * Customers: churn is likelier with many support tickets and a long time since the last login
 * (an effect that saturates after a couple of months), and less likely with long tenure and a
 * large lifetime value.
 */
export function generateChurnDataset(rows: number, random: Random): Dataset {
  return fill(
    CHURN_FEATURES,
    rows,
    () => {
      const tenureMonths = random.int(0, 120);
      const monthlySpend = clamp(Math.exp(random.normal(4.5, 1)), 0, 5000);
      const supportTickets = Math.min(30, random.poisson(Math.exp(random.normal(0.4, 0.8))));
      const daysSinceLastLogin = Math.min(365, Math.floor(random.exponential(35)));
      const lifetimeValue = clamp(
        tenureMonths * monthlySpend * random.uniform(0.8, 1.2),
        0,
        200_000,
      );
      const logit =
        -1.6 -
        0.03 * tenureMonths +
        0.3 * supportTickets +
        3 * (1 - Math.exp(-daysSinceLastLogin / 40)) -
        0.0002 * monthlySpend -
        0.00001 * lifetimeValue;
      return {
        features: [tenureMonths, monthlySpend, supportTickets, daysSinceLastLogin, lifetimeValue],
        logit,
      };
    },
    random,
  );
}

/**
 * Orders: fraud is likelier for large amounts, international orders, repeated payment attempts
 * and orders placed at night (00–05 h, a non-linear effect only the MLP can fit well).
 */
export function generateFraudDataset(rows: number, random: Random): Dataset {
  return fill(
    FRAUD_FEATURES,
    rows,
    () => {
      const amount = clamp(Math.exp(random.normal(4.2, 1.1)), 1, 5000);
      const itemCount = 1 + Math.min(19, random.poisson(1.5));
      const isInternational = random.bernoulli(0.2);
      const paymentAttempts = 1 + Math.min(4, random.poisson(0.35));
      const hourOfDay = random.int(0, 23);
      const night = hourOfDay < 6 ? 1 : 0;
      const logit =
        -4 +
        0.0012 * amount +
        0.05 * itemCount +
        1.4 * isInternational +
        1 * (paymentAttempts - 1) +
        1.6 * night;
      return { features: [amount, itemCount, isInternational, paymentAttempts, hourOfDay], logit };
    },
    random,
  );
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
