import { describe, expect, it } from 'vitest';
import {
  checkIsolationOptions,
  isolationFor,
  tenantSchema,
} from '../../../../src/backends/data/isolation.js';
import { defaultTenantSchema } from '../../../../src/config/isolation-targets.js';
import type { TenantDataRef } from '../../../../src/backends/data/types.js';
import { GatewayError } from '../../../../src/errors.js';

const options = { rowRole: 'atrium_tenant', rowSchema: 'atrium_shared', statementTimeoutMs: 2500 };

describe('isolationFor', () => {
  it('schema: a read-only, transaction-local search_path to the tenant schema', () => {
    const tenant: TenantDataRef = { id: 'acme-eu', data: { strategy: 'schema' } };
    expect(isolationFor(tenant, options, true)).toEqual({
      schema: 'tenant_acme_eu',
      tenantColumn: false,
      prelude:
        'SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = 2500; ' +
        'SET LOCAL search_path TO "tenant_acme_eu"',
    });
  });

  it('row: the shared schema, the row role and the tenant setting, all transaction-local', () => {
    const tenant: TenantDataRef = { id: 'globex', data: { strategy: 'row' } };
    const { prelude, tenantColumn, schema } = isolationFor(tenant, options, false);
    expect(schema).toBe('atrium_shared');
    expect(tenantColumn).toBe(true);
    expect(prelude).toBe(
      'SET LOCAL statement_timeout = 2500; SET LOCAL search_path TO "atrium_shared"; ' +
        `SET LOCAL ROLE "atrium_tenant"; SELECT set_config('atrium.tenant_id', 'globex', true)`,
    );
    // Nothing session-level: every SET is LOCAL and set_config is transaction-scoped (true).
    expect(prelude).not.toMatch(/SET (?!LOCAL|TRANSACTION)/);
  });

  it('database: public in the tenant’s own database', () => {
    const tenant: TenantDataRef = { id: 'initech', data: { strategy: 'database', url: 'x' } };
    expect(isolationFor(tenant, options, true).schema).toBe('public');
  });

  it('refuses a tenant id that could not have passed the registry', () => {
    for (const id of ["a'; drop table x; --", 'Acme', 'a_b', '']) {
      const tenant = { id, data: { strategy: 'row' } } as TenantDataRef;
      expect(() => isolationFor(tenant, options, true)).toThrow(GatewayError);
    }
  });
});

describe('tenantSchema', () => {
  it('keeps long default names within 63 bytes and distinct', () => {
    const a = `a${'x'.repeat(60)}a`;
    const b = `a${'x'.repeat(60)}b`;
    const sa = defaultTenantSchema(a);
    const sb = defaultTenantSchema(b);
    expect(sa.length).toBeLessThanOrEqual(63);
    expect(sb.length).toBeLessThanOrEqual(63);
    expect(sa).not.toBe(sb);
    expect(defaultTenantSchema('acme')).toBe('tenant_acme');
  });

  it('never points a schema tenant at the row schema, public or a system schema', () => {
    for (const schema of [
      'atrium_shared',
      'public',
      'pg_catalog',
      'pg_toast',
      'information_schema',
    ]) {
      const tenant: TenantDataRef = { id: 'evil', data: { strategy: 'schema', schema } };
      expect(() => tenantSchema(tenant, options)).toThrow(GatewayError);
    }
    const ok: TenantDataRef = { id: 'good', data: { strategy: 'schema', schema: 'good_data' } };
    expect(tenantSchema(ok, options)).toBe('good_data');
  });
});

describe('checkIsolationOptions', () => {
  it('rejects identifiers and timeouts that are not plain values', () => {
    expect(() => checkIsolationOptions({ ...options, rowRole: 'Bad"Role' })).toThrow(TypeError);
    expect(() => checkIsolationOptions({ ...options, rowSchema: 'x;y' })).toThrow(TypeError);
    expect(() => checkIsolationOptions({ ...options, statementTimeoutMs: 0 })).toThrow(TypeError);
    expect(() => checkIsolationOptions({ ...options, statementTimeoutMs: 1.5 })).toThrow(TypeError);
  });
});
