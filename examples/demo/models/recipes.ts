/**
 * The demo's models: `churn` scores customers, `fraud` scores orders. Built into
 * `services/model-server/models` by `npm run models:build` (and on the first `npm start`).
 */
import {
  generateLogisticDataset,
  type ModelRecipe,
  type VersionRecipe,
} from '../../../services/model-server/src/training/index.js';

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

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/** Both models get the same two versions: a linear baseline (v1) and a small MLP (v2). */
const VERSIONS: readonly VersionRecipe[] = [
  {
    version: 1,
    kind: 'logistic',
    description: 'logistic regression, 300 epochs, L2 1e-3',
    training: { epochs: 300, learningRate: 0.5, l2: 1e-3, momentum: 0.9 },
  },
  {
    version: 2,
    kind: 'mlp',
    description: 'MLP 5-8-1 (ReLU), 600 epochs, L2 1e-4',
    hidden: 8,
    training: { epochs: 600, learningRate: 0.3, l2: 1e-4, momentum: 0.9 },
  },
];

export const recipes: ModelRecipe[] = [
  {
    name: 'churn',
    description: 'Probability that a customer churns, from raw customer features.',
    features: CHURN_FEATURES,
    versions: VERSIONS,
    // Churn is likelier with many support tickets and a long time since the last login (an
    // effect that saturates after a couple of months), and less likely with long tenure and
    // a large lifetime value.
    generate: (rows, random) =>
      generateLogisticDataset(CHURN_FEATURES, rows, random, () => {
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
      }),
  },
  {
    name: 'fraud',
    description: 'Probability that an order is fraudulent, from raw order features.',
    features: FRAUD_FEATURES,
    versions: VERSIONS,
    // Fraud is likelier for large amounts, international orders, repeated payment attempts and
    // orders placed at night (00–05 h, a non-linear effect only the MLP can fit well).
    generate: (rows, random) =>
      generateLogisticDataset(FRAUD_FEATURES, rows, random, () => {
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
        return {
          features: [amount, itemCount, isInternational, paymentAttempts, hourOfDay],
          logit,
        };
      }),
  },
];
