import type { PlanLimits, TenantConfig } from '../config/schema.js';
import { toTenant, type Tenant } from './tenant.js';

/**
 * The tenants this gateway serves. Lookups are synchronous and cheap (one Map get) because they
 * sit on every request; changes replace whole entries so a reader never sees half an update.
 */
export interface TenantRegistry {
  get(id: string): Tenant | undefined;
  list(): Tenant[];
  /** Adds or replaces a tenant (live config changes). Throws on an unknown plan. */
  upsert(config: TenantConfig): Tenant;
  remove(id: string): boolean;
  /** Called after every change, e.g. to drop a tenant's pooled connections or caches. */
  onChange(listener: (tenantId: string, tenant: Tenant | undefined) => void): () => void;
  /**
   * `false` until the run-time state (suspensions, deletions, created tenants) has been read
   * from an authoritative source (tenancy/live-config.ts): until then no tenant is served,
   * since any of them may be suspended.
   */
  isConfirmed(): boolean;
  setConfirmed(confirmed: boolean): void;
}

export interface TenantRegistryOptions {
  tenants: readonly TenantConfig[];
  plans: Readonly<Record<string, PlanLimits>>;
  /**
   * Start unconfirmed (see `isConfirmed`): for a gateway whose live config has yet to read
   * the run-time state. Default `true` (the config file is the whole truth).
   */
  confirmed?: boolean | undefined;
}

export function createTenantRegistry(options: TenantRegistryOptions): TenantRegistry {
  const tenants = new Map<string, Tenant>();
  const listeners = new Set<(tenantId: string, tenant: Tenant | undefined) => void>();
  let confirmed = options.confirmed ?? true;
  const notify = (id: string, tenant: Tenant | undefined) => {
    for (const listener of listeners) listener(id, tenant);
  };

  for (const config of options.tenants) {
    if (tenants.has(config.id)) throw new TypeError(`tenant ${config.id} is declared twice`);
    tenants.set(config.id, toTenant(config, options.plans));
  }

  return {
    get: (id) => tenants.get(id),
    list: () => [...tenants.values()],
    upsert(config) {
      const tenant = toTenant(config, options.plans);
      tenants.set(config.id, tenant);
      notify(config.id, tenant);
      return tenant;
    },
    remove(id) {
      const existed = tenants.delete(id);
      if (existed) notify(id, undefined);
      return existed;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    isConfirmed: () => confirmed,
    setConfirmed(value) {
      confirmed = value;
    },
  };
}
