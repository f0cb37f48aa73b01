/**
 * The invoicing example's model: `credit`, the probability that an account pays its next
 * invoice late. Three features where the demo's models have five, on purpose: nothing in the
 * model server or the gateway may assume a width.
 */
import {
  generateLogisticDataset,
  type ModelRecipe,
} from '../../../services/model-server/src/training/index.js';

/** Credit model input columns, in the order the gateway feeds them. */
export const CREDIT_FEATURES = ['creditLimit', 'overdueInvoices', 'averageDaysLate'] as const;

export const recipes: ModelRecipe[] = [
  {
    name: 'credit',
    description: 'Probability that an account pays late, from raw account features.',
    features: CREDIT_FEATURES,
    versions: [
      {
        version: 1,
        kind: 'logistic',
        description: 'logistic regression, 300 epochs, L2 1e-3',
        training: { epochs: 300, learningRate: 0.5, l2: 1e-3, momentum: 0.9 },
      },
      {
        version: 2,
        kind: 'mlp',
        description: 'MLP 3-8-1 (ReLU), 600 epochs, L2 1e-4',
        hidden: 8,
        training: { epochs: 600, learningRate: 0.3, l2: 1e-4, momentum: 0.9 },
      },
    ],
    // Late payment is likelier with more overdue invoices and more days late on average (an
    // effect that saturates after about two months), and less likely the larger the credit
    // limit (accounts trusted with more credit have earned it).
    generate: (rows, random) =>
      generateLogisticDataset(CREDIT_FEATURES, rows, random, () => {
        // Log-uniform: many small accounts, a few large ones.
        const creditLimit = Math.round(Math.exp(random.uniform(Math.log(1000), Math.log(100_000))));
        const overdueInvoices = Math.min(20, random.poisson(Math.exp(random.normal(0, 0.9))));
        const averageDaysLate = Math.min(
          90,
          Math.floor(random.exponential(overdueInvoices === 0 ? 4 : 12 + 2 * overdueInvoices)),
        );
        const logit =
          -1.2 +
          0.35 * overdueInvoices +
          2.5 * (1 - Math.exp(-averageDaysLate / 30)) -
          0.000025 * creditLimit;
        return { features: [creditLimit, overdueInvoices, averageDaysLate], logit };
      }),
  },
];
