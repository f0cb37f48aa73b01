import type { Principal } from '../auth/principal.js';
import type { Deadline } from '../limits/deadline.js';
import type { LoaderRegistry } from '../loaders/registry.js';
import type { TenantServices } from '../sources/http/tenant-services.js';
import type { PredictionLoaders } from '../sources/inference/prediction-loaders.js';
import type { TenantData } from '../sources/sql/tenant-data.js';
import type { Logger } from '../telemetry/logger.js';
import type { Tenant } from '../tenancy/tenant.js';

/**
 * Everything a resolver may use, built anew for each request after the token is verified and
 * the tenant resolved. Resolvers reach tenant data only through `data`, `loaders` and
 * `predictions`, all already bound to `tenant`: generated resolvers and the operator's own
 * (`schema.resolvers`) alike.
 */
export interface GatewayContext {
  readonly requestId: string;
  /** The W3C trace context every upstream call of the request carries. */
  readonly traceparent?: string | undefined;
  /** By when every backend call of the request must have answered. */
  readonly deadline: Deadline;
  readonly principal: Principal;
  readonly tenant: Tenant;
  /** The request's loader registry: one DataLoader per binding and argument shape. */
  readonly loaders: LoaderRegistry;
  /** The tenant's tables, through the bindings (batched reads, inserts). */
  readonly data: TenantData;
  /** The tenant's services (`@http` fields): its URLs, credentials and signed identity. */
  readonly services: TenantServices;
  /** Per-model prediction loaders of this tenant (cache, then one infer call per batch). */
  readonly predictions: PredictionLoaders;
  /** Whether a model backend reports a model ready (never throws). */
  readonly modelReady: (backend: string, model: string, version?: string) => Promise<boolean>;
  readonly log: Logger;
}
