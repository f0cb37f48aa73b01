import type { Principal } from '../auth/principal.js';
import { GatewayError } from '../errors.js';
import type { TenantRegistry } from './registry.js';
import type { Tenant } from './tenant.js';

/**
 * The tenant named by the request's host: `acme.api.example.com` under base domain
 * `api.example.com` → `acme`. Only one label directly under the base domain counts; anything
 * else (the base domain itself, deeper names, other domains) names no tenant.
 */
export function tenantHintFromHost(
  host: string | undefined,
  baseDomain: string | undefined,
): string | undefined {
  if (!host || !baseDomain) return undefined;
  const name = host.replace(/:\d+$/, '').toLowerCase().replace(/\.$/, '');
  const suffix = `.${baseDomain.toLowerCase()}`;
  if (!name.endsWith(suffix)) return undefined;
  const label = name.slice(0, -suffix.length);
  return label.length > 0 && !label.includes('.') ? label : undefined;
}

export interface ResolveTenantInput {
  principal: Principal;
  /** Tenant names taken from the host and/or path; each must equal the claim. */
  hints: readonly (string | undefined)[];
  registry: TenantRegistry;
}

/**
 * The tenant of a request. Only the verified claim chooses it; a host or path hint can only
 * confirm it, never change it.
 */
export function resolveTenant({ principal, hints, registry }: ResolveTenantInput): Tenant {
  for (const hint of hints) {
    if (hint !== undefined && hint !== principal.tenantId) {
      throw new GatewayError('TENANT_MISMATCH', 'The tenant in the URL does not match the token.');
    }
  }
  if (!registry.isConfirmed()) {
    // Any tenant may be suspended in the state this replica could not read yet: fail closed.
    throw new GatewayError(
      'BACKEND_UNAVAILABLE',
      'Tenant configuration is being loaded; retry shortly.',
      {
        status: 503,
        headers: { 'Retry-After': '1' },
        extensions: { reason: 'TENANT_CONFIG_UNCONFIRMED', retryAfterSeconds: 1 },
      },
    );
  }
  const tenant = registry.get(principal.tenantId);
  if (!tenant) {
    throw new GatewayError(
      'TENANT_NOT_FOUND',
      'The token names a tenant this gateway does not serve.',
    );
  }
  if (tenant.status !== 'active') {
    throw new GatewayError('FORBIDDEN', 'This tenant is suspended.');
  }
  return tenant;
}
