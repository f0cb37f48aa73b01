import { describe, expect, it } from 'vitest';
import type { Principal } from '../../../src/auth/principal.js';
import type { TenantConfig } from '../../../src/config/schema.js';
import { DEFAULT_PLANS, tenantSchema } from '../../../src/config/schema.js';
import { GatewayError } from '../../../src/errors.js';
import { createTenantRegistry } from '../../../src/tenancy/registry.js';
import { resolveTenant, tenantHintFromHost } from '../../../src/tenancy/resolve-tenant.js';

const tenant = (id: string, extra: Partial<TenantConfig> = {}): TenantConfig =>
  tenantSchema.parse({ id, displayName: id.toUpperCase(), data: { strategy: 'row' }, ...extra });

const principal = (tenantId: string): Principal => ({
  tenantId,
  subject: 'alice',
  scopes: [],
  claims: {},
  expiresAt: Math.floor(Date.now() / 1000) + 60,
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof GatewayError ? error.code : 'not a GatewayError';
  }
  return undefined;
}

describe('tenantHintFromHost', () => {
  it('takes exactly one label under the base domain', () => {
    expect(tenantHintFromHost('acme.api.example.com', 'api.example.com')).toBe('acme');
    expect(tenantHintFromHost('ACME.api.example.com:4000', 'api.example.com')).toBe('acme');
    expect(tenantHintFromHost('api.example.com', 'api.example.com')).toBeUndefined();
    expect(tenantHintFromHost('x.acme.api.example.com', 'api.example.com')).toBeUndefined();
    expect(tenantHintFromHost('acme.evil.com', 'api.example.com')).toBeUndefined();
    expect(tenantHintFromHost('acme.api.example.com', undefined)).toBeUndefined();
    expect(tenantHintFromHost(undefined, 'api.example.com')).toBeUndefined();
  });
});

describe('resolveTenant', () => {
  const registry = createTenantRegistry({
    tenants: [
      tenant('acme', { plan: 'pro' }),
      tenant('globex'),
      tenant('initech', { status: 'suspended' }),
    ],
    plans: DEFAULT_PLANS,
  });

  it('uses the claim, with the plan limits applied', () => {
    const t = resolveTenant({
      principal: principal('acme'),
      hints: [undefined, undefined],
      registry,
    });
    expect(t.id).toBe('acme');
    expect(t.limits.rateLimit).toEqual(DEFAULT_PLANS.pro?.rateLimit);
  });

  it('accepts hints that agree and refuses hints that do not', () => {
    expect(
      resolveTenant({ principal: principal('acme'), hints: ['acme', 'acme'], registry }).id,
    ).toBe('acme');
    expect(
      codeOf(() => resolveTenant({ principal: principal('acme'), hints: ['globex'], registry })),
    ).toBe('TENANT_MISMATCH');
    expect(
      codeOf(() =>
        resolveTenant({ principal: principal('acme'), hints: [undefined, 'globex'], registry }),
      ),
    ).toBe('TENANT_MISMATCH');
  });

  it('refuses unknown and suspended tenants with 403 codes', () => {
    expect(
      codeOf(() => resolveTenant({ principal: principal('nobody'), hints: [], registry })),
    ).toBe('TENANT_NOT_FOUND');
    expect(
      codeOf(() => resolveTenant({ principal: principal('initech'), hints: [], registry })),
    ).toBe('FORBIDDEN');
  });

  it('applies live changes: a suspended tenant is refused at once', () => {
    const live = createTenantRegistry({ tenants: [tenant('acme')], plans: DEFAULT_PLANS });
    const seen: string[] = [];
    live.onChange((id) => seen.push(id));
    live.upsert(tenant('acme', { status: 'suspended' }));
    expect(
      codeOf(() => resolveTenant({ principal: principal('acme'), hints: [], registry: live })),
    ).toBe('FORBIDDEN');
    expect(seen).toEqual(['acme']);
  });

  it('refuses every tenant with a retryable 503 until the run-time state is confirmed', () => {
    const live = createTenantRegistry({
      tenants: [tenant('acme')],
      plans: DEFAULT_PLANS,
      confirmed: false,
    });
    let refusal: unknown;
    try {
      resolveTenant({ principal: principal('acme'), hints: [], registry: live });
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      status: 503,
      headers: { 'Retry-After': '1' },
      extensions: { reason: 'TENANT_CONFIG_UNCONFIRMED' },
    });
    live.setConfirmed(true);
    expect(resolveTenant({ principal: principal('acme'), hints: [], registry: live }).id).toBe(
      'acme',
    );
  });

  it('rejects a tenant on an unknown plan and duplicate tenants', () => {
    expect(() =>
      createTenantRegistry({ tenants: [tenant('acme', { plan: 'gold' })], plans: DEFAULT_PLANS }),
    ).toThrow(/plan "gold" is not one of free, pro, enterprise/);
    expect(() =>
      createTenantRegistry({ tenants: [tenant('acme'), tenant('acme')], plans: DEFAULT_PLANS }),
    ).toThrow(/declared twice/);
  });
});
