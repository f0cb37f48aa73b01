import type { IResolvers } from '@graphql-tools/utils';
import { GatewayError } from '../errors.js';
import type { Tenant } from '../tenancy/tenant.js';
import type { GatewayContext } from './context.js';
import { DateTime } from './scalars.js';

export const PREDICT_SCOPE = 'predict';
export const MAX_PREDICT_ROWS = 100;

interface ViewerParent {
  subject: string;
  scopes: readonly string[];
  tenant: Tenant;
}

interface ModelInfoParent {
  name: string;
  backend: string;
  model: string;
  version: string | null;
  features: string[];
  thresholds: { label: string; min: number }[];
}

/**
 * What the engine answers itself, whatever the operator's SDL (src/graphql/engine/*.graphql):
 * the caller, the tenant's models and ad-hoc predictions, and the DateTime scalar.
 */
export const engineResolvers: IResolvers<unknown, GatewayContext> = {
  DateTime,
  Query: {
    viewer: (_parent, _args, { principal, tenant }): ViewerParent => ({
      subject: principal.subject,
      scopes: principal.scopes,
      tenant,
    }),
    models: (_parent, _args, { tenant }): ModelInfoParent[] =>
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
    predict: async (
      _parent,
      { model: name, inputs }: { model: string; inputs: number[][] },
      { principal, tenant, predictions },
    ) => {
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
          { extensions: { argument: 'inputs' } },
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
  },
  Viewer: {
    scopes: (viewer: ViewerParent) => [...viewer.scopes],
  },
  Tenant: {
    features: (tenant: Tenant) => [...tenant.features].sort(),
  },
  ModelInfo: {
    ready: (info: ModelInfoParent, _args, { modelReady }) =>
      modelReady(info.backend, info.model, info.version ?? undefined),
  },
};
