import { describe, expect, it } from 'vitest';
import { DEFAULT_PLANS, tenantSchema } from '../../../src/config/schema.js';
import {
  tenantConfigKey,
  tenantConfigRevisionKey,
  tenantIndexKey,
} from '../../../src/store/keys.js';
import { createMemoryStore } from '../../../src/store/memory-store.js';
import { createLiveTenantConfig } from '../../../src/tenancy/live-config.js';
import { createTenantConfigAdmin } from '../../../src/tenancy/tenant-admin.js';
import { effectiveTenantConfig } from '../../../src/tenancy/tenant-records.js';
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
    const admin = createTenantConfigAdmin({
      store,
      baseTenants: [acme],
      plans: DEFAULT_PLANS,
      reservedIds: ['ops'],
    });
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

  it('never serves a tenant refused here on missing data once the store lost its revision', async () => {
    const { store, registry, live, admin } = setup();
    await live.start();
    await admin.setStatus('acme', 'suspended');
    await admin.put({ id: 'beta', displayName: 'Beta', data: { strategy: 'row' } });
    await admin.delete('beta');
    await settle();
    expect(registry.get('acme')?.status).toBe('suspended');
    expect(registry.get('beta')).toBeUndefined();
    expect(live.state()).toBe('confirmed');

    // The store restarts empty (no persistence): records, index and revision are gone.
    for (const key of [
      tenantConfigKey('acme'),
      tenantConfigKey('beta'),
      tenantConfigRevisionKey(),
    ]) {
      await store.del(key);
    }
    await store.del(tenantIndexKey());
    expect(await live.reconcile()).toBe(true);
    expect(live.state()).toBe('held');
    expect(registry.get('acme')?.status).toBe('suspended');
    expect(registry.get('beta')).toBeUndefined();

    // A record that says so is a decision, not missing data: it applies.
    await admin.setStatus('acme', 'active');
    await settle();
    expect(registry.get('acme')?.status).toBe('active');
    await admin.setStatus('acme', 'suspended');
    await settle();
    expect(registry.get('acme')?.status).toBe('suspended');
    await live.stop();
  });

  it('refuses every tenant until it has read the state once', async () => {
    const store = createMemoryStore();
    const registry = createTenantRegistry({
      tenants: [acme],
      plans: DEFAULT_PLANS,
      confirmed: false,
    });
    const live = createLiveTenantConfig({ store, registry, baseTenants: [acme] });
    expect(live.state()).toBe('unconfirmed');
    await live.start();
    expect(registry.isConfirmed()).toBe(true);
    expect(live.state()).toBe('confirmed');
    await live.stop();

    const down = createMemoryStore();
    await down.close();
    const blind = createTenantRegistry({ tenants: [acme], plans: DEFAULT_PLANS, confirmed: false });
    const stuck = createLiveTenantConfig({
      store: down,
      registry: blind,
      baseTenants: [acme],
      startWaitMs: 0,
    });
    await stuck.start();
    expect(await stuck.reconcile()).toBe(false);
    expect(stuck.state()).toBe('unconfirmed');
    await stuck.stop();
  });

  it('refuses records that would share a schema or a database, whoever writes them', async () => {
    const { store, registry, live, admin } = setup();
    await live.start();
    const refused = (input: unknown) =>
      expect(admin.put(input)).rejects.toMatchObject({
        code: 'BAD_USER_INPUT',
        extensions: { reason: 'ISOLATION_CONFLICT' },
      });
    await admin.put({
      id: 'beta',
      displayName: 'B',
      data: { strategy: 'schema', schema: 'beta_data' },
    });
    await refused({
      id: 'evil2',
      displayName: 'E',
      data: { strategy: 'schema', schema: 'beta_data' },
    });
    await refused({
      id: 'evil3',
      displayName: 'E',
      data: { strategy: 'schema', schema: 'tenant_acme' },
    });
    await refused({
      id: 'evil4',
      displayName: 'E',
      data: { strategy: 'schema', schema: 'atrium_shared' },
    });
    // A deleted tenant's rows are still in its schema: it stays reserved until reset.
    await admin.delete('beta');
    await refused({
      id: 'evil5',
      displayName: 'E',
      data: { strategy: 'schema', schema: 'beta_data' },
    });
    await admin.reset('beta');
    await admin.put({
      id: 'gamma',
      displayName: 'G',
      data: { strategy: 'schema', schema: 'beta_data' },
    });
    await admin.put({
      id: 'db-a',
      displayName: 'A',
      data: { strategy: 'database', url: 'postgres://a@h/db1' },
    });
    await refused({
      id: 'db-b',
      displayName: 'B',
      data: { strategy: 'database', url: 'postgresql://b@H:5432/db1' },
    });
    await settle();
    expect(registry.get('gamma')).toBeDefined();
    expect(registry.get('evil2')).toBeUndefined();

    // A record written behind the admin's back is refused by every replica that reads it.
    await store.set(
      tenantConfigKey('sneaky'),
      JSON.stringify({
        config: { ...acme, id: 'sneaky', data: { strategy: 'schema', schema: 'beta_data' } },
        updatedAt: 'now',
      }),
    );
    await store.sadd(tenantIndexKey(), ['sneaky']);
    await store.set(tenantConfigRevisionKey(), 'by-hand');
    expect(await live.reconcile()).toBe(true);
    expect(registry.get('sneaky')).toBeUndefined();
    await live.stop();
  });
});
