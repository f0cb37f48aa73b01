import { describe, expect, it } from 'vitest';
import { corsSchema, DEFAULT_PLANS, tenantSchema } from '../../../src/config/schema.js';
import { compileOrigins, createCorsPolicy, isPreflight } from '../../../src/server/cors.js';
import { createTenantRegistry } from '../../../src/tenancy/registry.js';

const APP = 'https://app.example.com';
const ACME_UI = 'https://acme.example.net';
const GLOBEX_UI = 'https://ui.globex.example';

function tenantConfig(id: string, origins: string[]) {
  return tenantSchema.parse({
    id,
    displayName: id,
    data: { strategy: 'row' },
    cors: { origins },
  });
}

function setup(settings: Record<string, unknown> = { origins: [APP] }) {
  const registry = createTenantRegistry({
    tenants: [tenantConfig('acme', [ACME_UI]), tenantConfig('globex', [GLOBEX_UI])],
    plans: DEFAULT_PLANS,
  });
  const policy = createCorsPolicy({ ...corsSchema.parse(settings), tenants: registry });
  return { registry, policy, acme: registry.get('acme')!, globex: registry.get('globex')! };
}

describe('compileOrigins', () => {
  it.each([
    [['https://app.example.com'], 'https://app.example.com', true],
    [['https://app.example.com'], 'https://app.example.com:443', false],
    [['https://app.example.com'], 'http://app.example.com', false],
    [['https://app.example.com'], 'https://app.example.com.evil.net', false],
    [['https://*.example.com'], 'https://a.example.com', true],
    [['https://*.example.com'], 'https://a.b.example.com', false],
    [['https://*.example.com'], 'https://example.com', false],
    [['https://*.example.com'], 'https://evil-example.com', false],
    [['https://*.example.com'], 'https://a.example.com.evil.net', false],
    [['https://app-*.example.com'], 'https://app-pr-12.example.com', true],
    [['https://app-*.example.com'], 'https://app-.example.com', false],
    [['http://localhost:*'], 'http://localhost:3000', true],
    [['http://localhost:*'], 'http://localhost', true],
    [['http://localhost:*'], 'http://localhost.evil.net:3000', false],
    [['http://localhost:3000'], 'http://localhost:30000', false],
    [['*'], 'https://anything.example', true],
    [['*'], 'null', false],
    [[], 'https://app.example.com', false],
  ])('%j allows %s: %s', (origins, origin, expected) => {
    expect(compileOrigins(origins)(origin)).toBe(expected);
  });
});

describe('isPreflight', () => {
  it('needs OPTIONS, an Origin and Access-Control-Request-Method', () => {
    const headers = { origin: APP, 'access-control-request-method': 'POST' };
    expect(isPreflight({ method: 'OPTIONS', headers })).toBe(true);
    expect(isPreflight({ method: 'GET', headers })).toBe(false);
    expect(isPreflight({ method: 'OPTIONS', headers: { origin: APP } })).toBe(false);
    expect(isPreflight({ method: 'OPTIONS', headers: {} })).toBe(false);
  });
});

describe('createCorsPolicy', () => {
  it('answers a preflight for a global origin and for any tenant’s, with the configured lists', () => {
    const { policy } = setup();
    expect(policy.preflight(APP, undefined)).toEqual({
      'access-control-allow-origin': APP,
      'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers':
        'authorization, content-type, accept, x-request-id, traceparent, tracestate, ' +
        'apollo-require-preflight, x-apollo-operation-name, apollographql-client-name, ' +
        'apollographql-client-version',
      'access-control-max-age': '600',
    });
    expect(policy.preflight(ACME_UI, undefined)?.['access-control-allow-origin']).toBe(ACME_UI);
    expect(policy.preflight(GLOBEX_UI, undefined)?.['access-control-allow-origin']).toBe(GLOBEX_UI);
    expect(policy.preflight('https://evil.example', undefined)).toBeUndefined();
  });

  it('narrows a preflight to the tenant the path or host names', () => {
    const { policy } = setup();
    expect(policy.preflight(ACME_UI, 'acme')).toBeDefined();
    expect(policy.preflight(GLOBEX_UI, 'acme')).toBeUndefined();
    expect(policy.preflight(APP, 'acme')).toBeDefined();
    expect(policy.preflight(ACME_UI, 'nobody')).toBeUndefined();
  });

  it('honours a tenant’s origin on an actual answer only for that tenant', () => {
    const { policy, acme, globex } = setup();
    const allowed = {
      'access-control-allow-origin': ACME_UI,
      'access-control-expose-headers': 'RateLimit, RateLimit-Policy, Retry-After, x-request-id',
    };
    expect(policy.response(ACME_UI, acme)).toEqual(allowed);
    expect(policy.response(ACME_UI, globex)).toEqual({});
    expect(policy.response(APP, globex)['access-control-allow-origin']).toBe(APP);
    // Refused before the tenant was known: whatever a preflight allows.
    expect(policy.response(ACME_UI, undefined)).toEqual(allowed);
    expect(policy.response('https://evil.example', undefined)).toEqual({});
    expect(policy.response(undefined, acme)).toEqual({});
  });

  it('sends credentials and custom lists when configured', () => {
    const { policy, acme } = setup({
      origins: [APP],
      credentials: true,
      maxAgeSeconds: 60,
      allowedHeaders: ['authorization', 'content-type'],
      exposedHeaders: [],
    });
    expect(policy.preflight(APP, undefined)).toEqual({
      'access-control-allow-origin': APP,
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers': 'authorization, content-type',
      'access-control-max-age': '60',
    });
    expect(policy.response(APP, acme)).toEqual({
      'access-control-allow-origin': APP,
      'access-control-allow-credentials': 'true',
    });
  });

  it('follows tenant changes: a new origin is allowed, a removed one no longer', () => {
    const { policy, registry } = setup();
    const newUi = 'https://new.acme.example';
    expect(policy.preflight(newUi, undefined)).toBeUndefined();
    const acme = registry.upsert(tenantConfig('acme', [newUi]));
    expect(policy.preflight(newUi, undefined)).toBeDefined();
    expect(policy.response(newUi, acme)['access-control-allow-origin']).toBe(newUi);
    expect(policy.preflight(ACME_UI, undefined)).toBeUndefined();
    expect(policy.response(ACME_UI, acme)).toEqual({});
    registry.remove('globex');
    expect(policy.preflight(GLOBEX_UI, undefined)).toBeUndefined();
  });
});
