import type { Principal } from '../auth/principal.js';
import type { DataSource } from '../backends/data/types.js';
import type { DataLoaders } from '../loaders/data-loaders.js';
import type { PredictionLoaders } from '../loaders/prediction-loaders.js';
import type { Logger } from '../telemetry/logger.js';
import type { Tenant } from '../tenancy/tenant.js';

/**
 * Everything a resolver may use, built anew for each request after the token is verified and
 * the tenant resolved. Resolvers reach tenant data only through `loaders` and `tenantData`,
 * both already bound to `tenant`.
 */
export interface GatewayContext {
  readonly requestId: string;
  readonly principal: Principal;
  readonly tenant: Tenant;
  readonly loaders: DataLoaders;
  /** Per-model prediction loaders of this tenant (cache, then one infer call per batch). */
  readonly predictions: PredictionLoaders;
  /** Whether a model backend reports a model ready (never throws). */
  readonly modelReady: (backend: string, model: string, version?: string) => Promise<boolean>;
  /** For writes, which do not batch: the data source with this request's tenant applied. */
  readonly dataSource: DataSource;
  readonly log: Logger;
}
