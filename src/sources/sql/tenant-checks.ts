import type { DataSource, TenantDataRef } from '../../backends/data/types.js';
import type { TenantModelConfig } from '../../config/schema.js';
import { GatewayError, isGatewayError } from '../../errors.js';
import type { Logger } from '../../telemetry/logger.js';
import type { SchemaBindings } from '../bindings.js';
import { readCatalog, type TenantCatalog } from './catalog.js';
import { type BindingMismatch, checkTenantBindings, describeMismatch } from './check.js';

/** A tenant as the checks need it. */
export interface CheckedTenant extends TenantDataRef {
  readonly models: Readonly<Record<string, TenantModelConfig>>;
}

export type CheckOutcome =
  | { ok: true; catalog: TenantCatalog }
  | { ok: false; mismatches: BindingMismatch[]; catalog: TenantCatalog };

export interface TenantChecks {
  /** The tenant's catalog, read once per tenant configuration (undefined if unreadable now). */
  catalog(tenant: CheckedTenant): Promise<TenantCatalog | undefined>;
  /** The bindings against the tenant's catalog (cached per tenant configuration). */
  check(tenant: CheckedTenant): Promise<CheckOutcome>;
  /**
   * Refuses a tenant whose database does not fit the bindings: 403 TENANT_MISCONFIGURED.
   * A catalog that cannot be read now (the database is down) refuses nothing: the request's
   * own statements then fail as fields.
   */
  admit(tenant: CheckedTenant): Promise<void>;
}

export interface TenantChecksOptions {
  dataSource: DataSource;
  bindings: SchemaBindings;
  /** Refuse mismatched tenants (default true); false still reads catalogs for key types. */
  enforce?: boolean | undefined;
  log?: Logger | undefined;
  /** How long a failed check is kept before the tenant is checked again; default 10 s. */
  retryMs?: number | undefined;
}

/** What a check depends on: a changed tenant (data settings, models) is checked anew. */
const fingerprints = new WeakMap<CheckedTenant, string>();
function fingerprint(tenant: CheckedTenant): string {
  // Tenants are immutable objects the registry replaces on change: computed once per object.
  let known = fingerprints.get(tenant);
  if (known === undefined) {
    const features = Object.entries(tenant.models).map(([name, m]) => [name, m.features]);
    known = JSON.stringify([tenant.id, tenant.data, features]);
    fingerprints.set(tenant, known);
  }
  return known;
}

/**
 * Checks every tenant's catalog against the bindings at start and whenever a tenant is first
 * seen with a new configuration (added or changed at run time), and keeps the outcome.
 */
export function createTenantChecks(options: TenantChecksOptions): TenantChecks {
  const { dataSource, bindings, log } = options;
  const enforce = options.enforce ?? true;
  const retryMs = options.retryMs ?? 10_000;
  const outcomes = new Map<string, { key: string; outcome: Promise<CheckOutcome> }>();
  // One catalog per place tables live, however many tenants share it (every row tenant of a
  // row schema reads the same one): thousands of tenants keep one copy, read once.
  const catalogs = new Map<string, Promise<TenantCatalog>>();
  const forget = (id: string, outcome: Promise<CheckOutcome>) => {
    if (outcomes.get(id)?.outcome === outcome) outcomes.delete(id);
  };
  const placeOf = (tenant: CheckedTenant) =>
    tenant.data.strategy === 'database'
      ? `database ${tenant.data.url}`
      : `schema ${dataSource.schemaOf(tenant)}`;

  function catalogAt(tenant: CheckedTenant): Promise<TenantCatalog> {
    const place = placeOf(tenant);
    let catalog = catalogs.get(place);
    if (!catalog) {
      const read = readCatalog(dataSource, tenant);
      catalogs.set(place, read);
      // An unreadable catalog is not kept: the next request tries again.
      read.catch(() => {
        if (catalogs.get(place) === read) catalogs.delete(place);
      });
      catalog = read;
    }
    return catalog;
  }

  function check(tenant: CheckedTenant): Promise<CheckOutcome> {
    const key = fingerprint(tenant);
    const cached = outcomes.get(tenant.id);
    if (cached?.key === key) return cached.outcome;
    const outcome: Promise<CheckOutcome> = catalogAt(tenant).then((catalog) => {
      const mismatches = checkTenantBindings({
        tenant: { id: tenant.id, strategy: tenant.data.strategy, models: { ...tenant.models } },
        bindings,
        catalog,
      });
      if (mismatches.length === 0) return { ok: true, catalog };
      log?.error(
        { tenant: tenant.id, mismatches: mismatches.map(describeMismatch) },
        'tenant database does not fit the schema bindings; its requests are refused',
      );
      // Looked at again later, catalog included: the operator may migrate meanwhile.
      setTimeout(() => {
        forget(tenant.id, outcome);
        const place = placeOf(tenant);
        if (catalogs.get(place) !== undefined) catalogs.delete(place);
      }, retryMs).unref();
      return { ok: false, mismatches, catalog };
    });
    outcomes.set(tenant.id, { key, outcome });
    // An unreadable catalog is not kept: the next request tries again.
    outcome.catch(() => forget(tenant.id, outcome));
    return outcome;
  }

  return {
    check,
    async catalog(tenant) {
      try {
        return (await check(tenant)).catalog;
      } catch {
        return undefined;
      }
    },
    async admit(tenant) {
      let outcome: CheckOutcome;
      try {
        outcome = await check(tenant);
      } catch (error) {
        if (isGatewayError(error) && error.code !== 'INTERNAL_SERVER_ERROR') return;
        log?.warn(
          { tenant: tenant.id, err: (error as Error).message },
          'tenant catalog check failed',
        );
        return;
      }
      if (!outcome.ok && enforce) {
        throw new GatewayError(
          'TENANT_MISCONFIGURED',
          "This tenant's data does not match the gateway's schema; the operator has been told.",
          { extensions: { tenant: tenant.id } },
        );
      }
    },
  };
}
