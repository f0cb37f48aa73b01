import { type TokenVerifier } from '../auth/verify-token.js';
import { type DataSource } from '../backends/data/types.js';
import { asRequestError, isGatewayError } from '../errors.js';
import { type GatewayContext } from '../graphql/context.js';
import { type Admission, type AdmissionControl } from '../limits/admission.js';
import { createDataLoaders } from '../loaders/data-loaders.js';
import {
  createPredictionLoaders,
  type PredictionLoadersOptions,
  type PredictionService,
} from '../loaders/prediction-loaders.js';
import { type Logger } from '../telemetry/logger.js';
import { type TenantRegistry } from '../tenancy/registry.js';
import { resolveTenant } from '../tenancy/resolve-tenant.js';

export interface ContextDependencies {
  verifier: Pick<TokenVerifier, 'verifyAuthorizationHeader'>;
  registry: TenantRegistry;
  admission: AdmissionControl;
  dataSource: DataSource;
  predictor: PredictionService;
  /** Prediction cache (the store); omitted → every prediction goes to the model. */
  predictionCache?: PredictionLoadersOptions['cache'];
  cacheTtlSeconds: number;
  modelReady: GatewayContext['modelReady'];
  logger: Logger;
}

export interface RequestFacts {
  requestId: string;
  authorization: string | undefined;
  /** Tenant names from the host and the /t/{tenant} path, when present. */
  hints: readonly (string | undefined)[];
  /** Filled in once admitted, so the HTTP layer can release the lease and send the headers. */
  onAdmitted(admission: Admission): void;
}

/**
 * Auth → tenancy → limits → context, in that order: each stage trusts only what the previous
 * one verified, and the cheapest refusals come first.
 */
export async function buildContext(
  deps: ContextDependencies,
  facts: RequestFacts,
): Promise<GatewayContext> {
  try {
    return await admitAndBuild(deps, facts);
  } catch (error) {
    // Refusals before execution end the request: their status and headers become the response's.
    throw isGatewayError(error) ? asRequestError(error) : error;
  }
}

async function admitAndBuild(
  deps: ContextDependencies,
  facts: RequestFacts,
): Promise<GatewayContext> {
  const principal = await deps.verifier.verifyAuthorizationHeader(facts.authorization);
  const tenant = resolveTenant({ principal, hints: facts.hints, registry: deps.registry });
  facts.onAdmitted(await deps.admission.admit(tenant, principal));
  const log = deps.logger.child({ requestId: facts.requestId, tenant: tenant.id });
  return {
    requestId: facts.requestId,
    principal,
    tenant,
    loaders: createDataLoaders({ tenant, dataSource: deps.dataSource }),
    predictions: createPredictionLoaders({
      tenant,
      predictor: deps.predictor,
      cache: deps.predictionCache,
      cacheTtlSeconds: deps.cacheTtlSeconds,
      log,
    }),
    modelReady: deps.modelReady,
    dataSource: deps.dataSource,
    log,
  };
}
