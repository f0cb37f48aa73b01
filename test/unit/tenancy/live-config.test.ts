import { describe, expect, it } from 'vitest';
import { DEFAULT_PLANS, tenantSchema } from '../../../src/config/schema.js';
import { tenantConfigKey, tenantIndexKey } from '../../../src/store/keys.js';
import { createMemoryStore } from '../../../src/store/memory-store.js';
import {
  createLiveTenantConfig,
  createTenantConfigAdmin,
  effectiveTenantConfig,
} from '../../../src/tenancy/live-config.js';
import { createTenantRegistry } from '../../../src/tenancy/registry.js';

const acme = tenantSchema.parse({ id: 'acme', displayName: 'Acme', data: { strategy: 'row' } });

async function settle(): Promise<void> {
  // Memory-store messages are delivered in microtasks; the re-read is one more turn.
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

describe('effective tenant config', () => {
  it('overrides the file with a record, a status or a tombstone', () => {
    const now = '2026-01-01T00:00:00.000Z';
    expect(effectiveTenantConfig(acme, undefined)).toBe(acme);
    expect(effectiveTenantConfig(undefined, undefined)).toBeUndefined();
    expect(effectiveTenantConfig(acme, { status: 'suspended', updatedAt: now })).toEqual({
      ...acme,
      status: 'suspended',
    });
    // A status for a tenant nobody declares creates nothing.
    expect(effectiveTenantConfig(undefined, { status: 'active', updatedAt: now })).toBeUndefined();
    const replaced = { ...acme, plan: 'pro' };
    expect(effectiveTenantConfig(acme, { config: replaced, updatedAt: now })).toBe(replaced);
    expect(effectiveTenantConfig(acme, { deleted: true, updatedAt: now })).toBeUndefined();
  });
});

describe('live tenant config on the memory store (one process)', () => {
  function setup() {
    const store = createMemoryStore();
    const registry = createTenantRegistry({ tenants: [acme], plans: DEFAULT_PLANS });
    const changes: string[] = [];
    registry.onChange((id, tenant) => changes.push(`${id}:${tenant?.status ?? 'removed'}`));
    const live = createLiveTenantConfig({ store, registry, baseTenants: [acme] });
    const admin = createTenantConfigAdmin({ store, plans: DEFAULT_PLANS, reservedIds: ['ops'] });
    return { store, registry, changes, live, admin };
  }

  it('applies puts, suspensions, deletes and resets as they are published', async () => {
    const { registry, changes, live, admin } = setup();
    await live.start();
    expect(changes).toEqual([]);

    await admin.setStatus('acme', 'suspended');
    await settle();
    expect(registry.get('acme')?.status).toBe('suspended');

    await admin.put({ id: 'beta', displayName: 'Beta', data: { strategy: 'row' } });
    await settle();
    expect(registry.get('beta')?.plan).toBe('free');

    await admin.delete('acme');
    await settle();
    expect(registry.get('acme')).toBeUndefined();
    expect(await admin.reset('acme')).toBe(true);
    await settle();
    expect(registry.get('acme')?.status).toBe('active');
    expect(changes).toEqual(['acme:suspended', 'beta:active', 'acme:removed', 'acme:active']);

    // Re-reading everything applies nothing that is already applied.
    expect(await live.reconcile()).toBe(true);
    expect(changes).toHaveLength(4);
    await live.stop();
  });

  it('refuses bad input before writing, and ignores bad records it finds', async () => {
    const { store, registry, changes, live, admin } = setup();
    await expect(admin.put({ id: 'Bad Id', data: { strategy: 'row' } })).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      extensions: { reason: 'INVALID_TENANT_CONFIG' },
    });
    await expect(
      admin.put({ id: 'gamma', displayName: 'G', plan: 'gold', data: { strategy: 'row' } }),
    ).rejects.toMatchObject({ extensions: { reason: 'UNKNOWN_PLAN' } });
    await expect(
      admin.put({ id: 'ops', displayName: 'O', data: { strategy: 'row' } }),
    ).rejects.toMatchObject({ extensions: { reason: 'RESERVED_TENANT_ID' } });
    await expect(admin.setStatus('../x', 'active')).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
    });
    expect(await store.smembers(tenantIndexKey())).toEqual([]);

    // Records written behind the admin's back: garbage, a wrong id, an unknown plan.
    await store.set(tenantConfigKey('acme'), '{not json');
    await store.set(
      tenantConfigKey('delta'),
      JSON.stringify({ config: { ...acme, id: 'other' }, updatedAt: 'now' }),
    );
    await store.set(
      tenantConfigKey('omega'),
      JSON.stringify({ config: { ...acme, id: 'omega', plan: 'gold' }, updatedAt: 'now' }),
    );
    await store.sadd(tenantIndexKey(), ['acme', 'delta', 'omega']);
    await live.start();
    expect(registry.get('acme')).toMatchObject({ status: 'active', plan: 'free' });
    expect(registry.get('delta')).toBeUndefined();
    expect(registry.get('omega')).toBeUndefined();
    expect(changes).toEqual([]);
    expect((await admin.list()).map((s) => [s.id, s.record === undefined])).toEqual([
      ['acme', true],
      ['delta', true],
      ['omega', false],
    ]);
    await live.stop();
  });

  it('keeps serving the file tenants when the store is down at start', async () => {
    const { store, registry, live } = setup();
    await store.close();
    await expect(live.start()).resolves.toBeUndefined();
    expect(await live.reconcile()).toBe(false);
    expect(registry.get('acme')?.status).toBe('active');
    await live.stop();
  });
});
