import type {
  DataSettings,
  PlanLimits,
  TenantConfig,
  TenantModelConfig,
  TenantRealmConfig,
  TenantServiceConfig,
} from '../config/schema.js';

/** A tenant as the request pipeline sees it: its configuration with the plan's limits applied. */
export interface Tenant {
  readonly id: string;
  readonly displayName: string;
  readonly plan: string;
  readonly status: 'active' | 'suspended';
  readonly data: DataSettings;
  readonly models: Readonly<Record<string, TenantModelConfig>>;
  readonly limits: PlanLimits;
  readonly features: ReadonlySet<string>;
  /** Only operator-registered documents run (see server/persisted-queries.ts). */
  readonly trustedDocuments: boolean;
  /** The tenant's own front-end origins (CORS), on top of the global ones (server/cors.ts). */
  readonly corsOrigins: readonly string[];
  /** The tenant's own URLs and credentials of tenant services (config `services`). */
  readonly services: Readonly<Record<string, TenantServiceConfig>>;
  /** The tenant's own GraphQL service stitched into its schema (src/graphql/realm.ts). */
  readonly realm: TenantRealmConfig | undefined;
}

export class UnknownPlanError extends Error {
  override name = 'UnknownPlanError';
}

/** Merges a tenant's overrides onto its plan. Throws when the plan does not exist. */
export function toTenant(
  config: TenantConfig,
  plans: Readonly<Record<string, PlanLimits>>,
): Tenant {
  const plan = plans[config.plan];
  if (!plan) {
    throw new UnknownPlanError(
      `tenant ${config.id}: plan ${JSON.stringify(config.plan)} is not one of ${Object.keys(plans).join(', ')}`,
    );
  }
  const limits: PlanLimits = {
    rateLimit: config.limits.rateLimit ?? plan.rateLimit,
    maxConcurrent: config.limits.maxConcurrent ?? plan.maxConcurrent,
    operation: config.limits.operation ?? plan.operation,
    introspection: config.limits.introspection ?? plan.introspection,
    persistedQueries: config.limits.persistedQueries ?? plan.persistedQueries,
    maxPageSize: config.limits.maxPageSize ?? plan.maxPageSize,
  };
  return {
    id: config.id,
    displayName: config.displayName,
    plan: config.plan,
    status: config.status,
    data: config.data,
    models: config.models,
    limits,
    features: new Set(config.features),
    trustedDocuments: config.trustedDocuments,
    corsOrigins: config.cors.origins,
    services: config.services,
    realm: config.realm,
  };
}
