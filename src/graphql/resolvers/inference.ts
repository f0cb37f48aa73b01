import { GatewayError } from '../../errors.js';
import type { Resolvers } from '../generated/resolvers-types.js';

export const PREDICT_SCOPE = 'predict';
export const MAX_PREDICT_ROWS = 100;

export const inferenceQuery: Pick<NonNullable<Resolvers['Query']>, 'models' | 'predict'> = {
  models: (_parent, _args, { tenant }) =>
    Object.entries(tenant.models).map(([name, model]) => ({
      name,
      backend: model.backend,
      model: model.model,
      version: model.version ?? null,
      features: model.features,
      thresholds: Object.entries(model.thresholds)
        .map(([label, min]) => ({ label, min }))
        .sort((a, b) => a.min - b.min),
    })),
  predict: async (_parent, { model: name, inputs }, { principal, tenant, predictions }) => {
    if (!principal.scopes.includes(PREDICT_SCOPE)) {
      throw new GatewayError('FORBIDDEN', `predict requires the "${PREDICT_SCOPE}" scope.`);
    }
    // Own keys only: a model named `__proto__` or `constructor` must not find Object's.
    const model = Object.hasOwn(tenant.models, name) ? tenant.models[name] : undefined;
    if (!model) {
      throw new GatewayError('BAD_USER_INPUT', `Unknown model "${name}" for this tenant.`, {
        extensions: { argument: 'model' },
      });
    }
    if (inputs.length < 1 || inputs.length > MAX_PREDICT_ROWS) {
      throw new GatewayError(
        'BAD_USER_INPUT',
        `"inputs" must hold 1 to ${MAX_PREDICT_ROWS} rows.`,
        {
          extensions: { argument: 'inputs' },
        },
      );
    }
    inputs.forEach((row, i) => {
      if (row.length !== model.features.length) {
        throw new GatewayError(
          'BAD_USER_INPUT',
          `inputs[${i}] has ${row.length} values; the model "${name}" takes ${model.features.length} (${model.features.join(', ')}).`,
          { extensions: { argument: 'inputs' } },
        );
      }
    });
    return Promise.all(inputs.map((row) => predictions.load(name, row)));
  },
};

export const Customer: Pick<NonNullable<Resolvers['Customer']>, 'churnRisk'> = {
  churnRisk: (customer, _args, { predictions }) =>
    predictions.load('churn', predictions.featuresOf('churn', customer)),
};

export const Order: Pick<NonNullable<Resolvers['Order']>, 'fraudRisk'> = {
  fraudRisk: (order, _args, { predictions }) =>
    predictions.load('fraud', predictions.featuresOf('fraud', order)),
};

export const ModelInfo: Resolvers['ModelInfo'] = {
  ready: (info, _args, { modelReady }) =>
    modelReady(info.backend, info.model, info.version ?? undefined),
};
