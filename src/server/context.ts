import type { Principal } from '../auth/principal.js';
import type { TokenVerifier } from '../auth/verify-token.js';
import type { DataSource } from '../backends/data/types.js';
import { DEFAULT_REQUEST_DEADLINE_MS } from '../config/schema.js';
import { asRequestError, GatewayError, isGatewayError } from '../errors.js';
import type { GatewayContext } from '../graphql/context.js';
import type { Admission, AdmissionControl } from '../limits/admission.js';
import {
  createDeadline,
  raceDeadline,
  type RequestDeadline,
  withDeadline,
} from '../limits/deadline.js';
import { createLoaderRegistry } from '../loaders/registry.js';
import type { SchemaBindings } from '../sources/bindings.js';
import type { TenantChecks } from '../sources/sql/tenant-checks.js';
import { createSharedLookups, type SharedLookups } from '../sources/sql/shared-lookups.js';
import { createTenantData } from '../sources/sql/tenant-data.js';
import type { IdentitySigner } from '../auth/identity.js';
import type { ServiceClients } from '../backends/http/service-clients.js';
import type { SecretRef, ServiceConfig } from '../config/schema.js';
import { createTenantServices } from '../sources/http/tenant-services.js';
import { type ConcurrencyGates, createConcurrencyGates } from '../sources/http/gates.js';
import {
  createPredictionLoaders,
  type PredictionLoadersOptions,
  type PredictionService,
} from '../sources/inference/prediction-loaders.js';
import type { Logger } from '../telemetry/logger.js';
import type { TenantRegistry } from '../tenancy/registry.js';
import type { Tenant } from '../tenancy/tenant.js';
import { resolveTenant } from '../tenancy/resolve-tenant.js';

export interface ContextDependencies {
  verifier: Pick<TokenVerifier, 'verifyAuthorizationHeader'>;
  registry: TenantRegistry;
  admission: AdmissionControl;
  dataSource: DataSource;
  /** The schema's source bindings: what the generated resolvers read. */
  bindings: SchemaBindings;
  /** Each tenant's catalog against the bindings; a misfit tenant is refused at admission. */
  tenantChecks: TenantChecks;
  /** Largest batch per statement; default DEFAULT_MAX_BATCH_SIZE (src/loaders/registry.ts). */
  maxBatchSize?: number | undefined;
  predictor: PredictionService;
  /** Tenant services: their clients, config, the identity signer, secrets and gates. */
  services?:
    | {
        clients: Pick<ServiceClients, 'call'>;
        config: Readonly<Record<string, ServiceConfig>>;
        signer: IdentitySigner | undefined;
        secret: (ref: SecretRef) => string;
        gates: ConcurrencyGates;
      }
    | undefined;
  /** Prediction cache (the store); omitted → every prediction goes to the model. */
  predictionCache?: PredictionLoadersOptions['cache'];
  cacheTtlSeconds: number;
  /** Told the outcome of every prediction-cache lookup (metrics). */
  onPredictionCacheLookup?: PredictionLoadersOptions['onCacheLookup'];
  modelReady: GatewayContext['modelReady'];
  logger: Logger;
  /** Deadline of each request's backend calls; default DEFAULT_REQUEST_DEADLINE_MS. */
  requestDeadlineMs?: number | undefined;
}

export interface RequestFacts {
  authorization: string | undefined;
  /** Tenant names from the host and the /t/{tenant} path, when present. */
  hints: readonly (string | undefined)[];
  /** Told the verified tenant before limits run, so a refusal by limits is attributed to it. */
  onTenant?: ((tenant: Tenant) => void) | undefined;
}

/** A request that passed auth, tenancy and limits. Its admission must be released at the end. */
export interface AdmittedRequest {
  principal: Principal;
  tenant: Tenant;
  admission: Admission;
  /** The caller's Authorization header (for services that forward it). */
  authorization?: string | undefined;
  /** The caller's W3C trace context, continued upstream. */
  traceparent?: string | undefined;
}

/**
 * Auth → tenancy → limits, in that order: each stage trusts only what the previous one
 * verified, and the cheapest refusals come first. Refusals are request errors: their status
 * and headers become the response's.
 */
export async function admitRequest(
  deps: Pick<ContextDependencies, 'verifier' | 'registry' | 'admission'> & {
    tenantChecks?: Pick<TenantChecks, 'admit'> | undefined;
  },
  facts: RequestFacts,
): Promise<AdmittedRequest> {
  try {
    const principal = await deps.verifier.verifyAuthorizationHeader(facts.authorization);
    const tenant = resolveTenant({ principal, hints: facts.hints, registry: deps.registry });
    facts.onTenant?.(tenant);
    // A tenant whose database does not fit the bindings is refused; the others are served.
    await deps.tenantChecks?.admit(tenant);
    const admission = await deps.admission.admit(tenant, principal);
    return { principal, tenant, admission, authorization: facts.authorization };
  } catch (error) {
    throw isGatewayError(error) ? asRequestError(error) : error;
  }
}

const NO_SERVICES: Pick<ServiceClients, 'call'> = {
  call: () => Promise.reject(new GatewayError('FORBIDDEN', 'No tenant service is configured.')),
};
const NO_GATES = createConcurrencyGates();
const noSecret = (): string => {
  throw new GatewayError('FORBIDDEN', 'No tenant service is configured.');
};

/** One set of shared lookups per data source: requests of a tenant join each other's. */
const sharedLookups = new WeakMap<DataSource, SharedLookups>();
function lookupsOf(dataSource: DataSource): SharedLookups {
  let lookups = sharedLookups.get(dataSource);
  if (!lookups) {
    lookups = createSharedLookups(dataSource);
    sharedLookups.set(dataSource, lookups);
  }
  return lookups;
}

/** A request's deadline, `requestDeadlineMs` (or the default) from now. */
export function requestDeadline(
  deps: Pick<ContextDependencies, 'requestDeadlineMs'>,
): RequestDeadline {
  return createDeadline(deps.requestDeadlineMs ?? DEFAULT_REQUEST_DEADLINE_MS);
}

/**
 * The per-request context of an admitted request: fresh loaders bound to its tenant. Backend
 * calls of the request answer by `deadline` or fail as BACKEND_TIMEOUT fields; the caller
 * ends it when the request is over before its answer (the client went away), and backend
 * calls still pending then stop being waited for.
 *
 * `data`, `services`, `predictions`, `modelReady` and `log` are built when a resolver first
 * reads them: a request that reads no table, calls no service and scores nothing builds none of
 * them (an operation on `viewer` alone, `__typename`, introspection).
 */
export function createRequestContext(
  deps: ContextDependencies,
  admitted: AdmittedRequest,
  requestId: string,
  deadline: RequestDeadline = requestDeadline(deps),
): GatewayContext {
  return new RequestContext(deps, admitted, requestId, deadline);
}

/** The parts of a {@link RequestContext} built so far. */
interface BuiltParts {
  log?: Logger;
  data?: GatewayContext['data'];
  services?: GatewayContext['services'];
  predictions?: GatewayContext['predictions'];
  modelReady?: GatewayContext['modelReady'];
}

/** What a context builds its parts from. */
interface Recipe {
  deps: ContextDependencies;
  authorization: string | undefined;
}

/**
 * Each context's recipe, by its `built` object: out of resolvers' reach, which a property of the
 * context would not be (the dependencies hold every tenant's registry and the shared pools).
 */
const recipes = new WeakMap<BuiltParts, Recipe>();

/**
 * The fields are plain properties and the lazy parts getters on the prototype: Apollo Server
 * hands resolvers and plugins a shallow clone (`Object.assign` onto `Object.create` of the
 * prototype), which keeps the getters and shares `built`, so the clone and the original build
 * each part once between them. (`#private` fields would not survive that clone.)
 */
class RequestContext implements GatewayContext {
  readonly requestId: string;
  readonly traceparent: string | undefined;
  readonly deadline: RequestDeadline;
  readonly principal: Principal;
  readonly tenant: Tenant;
  readonly loaders: GatewayContext['loaders'];
  private readonly built: BuiltParts = {};

  constructor(
    deps: ContextDependencies,
    admitted: AdmittedRequest,
    requestId: string,
    deadline: RequestDeadline,
  ) {
    recipes.set(this.built, { deps, authorization: admitted.authorization });
    this.requestId = requestId;
    this.traceparent = admitted.traceparent;
    this.deadline = deadline;
    this.principal = admitted.principal;
    this.tenant = admitted.tenant;
    this.loaders = createLoaderRegistry(admitted.tenant.id, deps.maxBatchSize);
  }

  /** What the parts are built from; read only while building one. */
  private get recipe(): Recipe {
    return recipes.get(this.built) as Recipe;
  }

  get log(): Logger {
    return (this.built.log ??= this.recipe.deps.logger.child({
      requestId: this.requestId,
      tenant: this.tenant.id,
    }));
  }

  get data(): GatewayContext['data'] {
    return (this.built.data ??= this.buildData());
  }

  get services(): GatewayContext['services'] {
    return (this.built.services ??= this.buildServices());
  }

  get predictions(): GatewayContext['predictions'] {
    return (this.built.predictions ??= this.buildPredictions());
  }

  get modelReady(): GatewayContext['modelReady'] {
    return (this.built.modelReady ??= this.buildModelReady());
  }

  private buildData(): GatewayContext['data'] {
    const { tenant, deadline, loaders } = this;
    const { deps } = this.recipe;
    return createTenantData({
      tenant,
      dataSource: withDeadline(deps.dataSource, deadline, 'data backend'),
      // Each request waits for a shared lookup no longer than its own deadline.
      lookups: withDeadline(lookupsOf(deps.dataSource), deadline, 'data backend'),
      loaders,
      bindings: deps.bindings,
      catalog: () => deps.tenantChecks.catalog(tenant),
      maxPageSize: tenant.limits.maxPageSize,
    });
  }

  private buildServices(): GatewayContext['services'] {
    const { tenant, principal, requestId, traceparent, deadline, loaders } = this;
    const { deps, authorization } = this.recipe;
    const services = deps.services;
    return createTenantServices({
      tenant,
      principal,
      authorization,
      requestId,
      traceparent,
      loaders,
      // Service calls answer by the request's deadline too.
      clients: withDeadline(services?.clients ?? NO_SERVICES, deadline, 'tenant service'),
      services: services?.config ?? {},
      signer: services?.signer,
      secret: services?.secret ?? noSecret,
      gates: services?.gates ?? NO_GATES,
    });
  }

  private buildPredictions(): GatewayContext['predictions'] {
    const { tenant, requestId, traceparent, deadline } = this;
    const { deps } = this.recipe;
    return createPredictionLoaders({
      tenant,
      predictor: withDeadline(deps.predictor, deadline, 'model backend'),
      origin: { requestId, traceparent },
      cache: deps.predictionCache,
      cacheTtlSeconds: deps.cacheTtlSeconds,
      log: this.log,
      onCacheLookup: deps.onPredictionCacheLookup,
    });
  }

  private buildModelReady(): GatewayContext['modelReady'] {
    const { deadline } = this;
    const { deps } = this.recipe;
    // A backend that does not say it is ready in time is not ready.
    return (backend, model, version) =>
      raceDeadline(deps.modelReady(backend, model, version), deadline, 'model backend').catch(
        (error: unknown) => {
          if (isGatewayError(error) && error.code === 'BACKEND_TIMEOUT') return false;
          throw error;
        },
      );
  }
}
