import type { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PLANS, type TenantConfig, tenantSchema } from '../../../src/config/schema.js';
import {
  type ControlStore,
  createControlPool,
  createPostgresControlStore,
} from '../../../src/store/control-store.js';
import {
  tenantConfigKey,
  tenantConfigRevisionKey,
  tenantIndexKey,
  trustedDocumentKey,
} from '../../../src/store/keys.js';
import { createLiveTenantConfig, type LiveTenantConfig } from '../../../src/tenancy/live-config.js';
import { createTenantRegistry, type TenantRegistry } from '../../../src/tenancy/registry.js';
import {
  createTenantConfigAdmin,
  type TenantConfigAdmin,
} from '../../../src/tenancy/tenant-admin.js';
import { dropSchema, uniqueControlSchema } from '../../support/control-schema.js';
import { uniqueTenant } from '../../unit/store/store-contract.js';
import { freePort, startRedisServer, type RedisServer } from '../store/redis-process.js';
import {
  closeReplica,
  connectReplica,
  eventually,
  type Replica,
  startTcpProxy,
  type TcpProxy,
} from './support.js';

const HASH = 'a'.repeat(64);

/**
 * The durable copy of operator decisions on the machine's PostgreSQL (a control schema of this
 * file's own, reached through a TCP proxy the test can cut) next to a Redis of this file's own
 * (flushed to play a restart without persistence). Each replica is a registry kept by a live
 * config, as each gateway process has.
 */
describe('durable tenant config: PostgreSQL first, Redis rebuilt from it', () => {
  const acme = uniqueTenant('dur-acme');
  const beta = uniqueTenant('dur-beta');
  const schema = uniqueControlSchema('durable');
  const base: TenantConfig[] = [acme, beta].map((id) =>
    tenantSchema.parse({ id, displayName: id, data: { strategy: 'row' } }),
  );
  let redisServer: RedisServer;
  let proxy: TcpProxy;
  let replica: Replica;
  let redis: Redis;
  const pools: pg.Pool[] = [];
  const lives: LiveTenantConfig[] = [];

  function controlStore(): ControlStore {
    const pool = createControlPool({
      url: `postgres://postgres@127.0.0.1:${proxy.port}/test`,
      timeoutMs: 500,
    });
    pools.push(pool);
    return createPostgresControlStore({ pool, schema });
  }

  function replicaOf(
    control: ControlStore,
    startWaitMs?: number,
  ): { registry: TenantRegistry; live: LiveTenantConfig } {
    const registry = createTenantRegistry({
      tenants: base,
      plans: DEFAULT_PLANS,
      confirmed: false,
    });
    const live = createLiveTenantConfig({
      store: replica.store,
      control,
      registry,
      baseTenants: base,
      pollIntervalMs: 60_000,
      startWaitMs,
    });
    lives.push(live);
    return { registry, live };
  }

  function adminOf(control: ControlStore | undefined): TenantConfigAdmin {
    return createTenantConfigAdmin({
      store: replica.store,
      control,
      baseTenants: base,
      plans: DEFAULT_PLANS,
    });
  }

  beforeAll(async () => {
    const port = await freePort();
    redisServer = await startRedisServer(port);
    replica = await connectReplica(`redis://127.0.0.1:${port}`);
    redis = replica.client;
    proxy = await startTcpProxy(5432);
  });

  afterAll(async () => {
    await Promise.all(lives.map((live) => live.stop()));
    await closeReplica(replica);
    await redisServer?.kill();
    await Promise.all(pools.map((pool) => pool.end()));
    await proxy?.close();
    await dropSchema(schema);
  });

  it('commits to PostgreSQL first and restores a flushed Redis from it', async () => {
    const control = controlStore();
    const admin = adminOf(control);
    const { registry, live } = replicaOf(control);
    await live.start();
    expect(live.state()).toBe('confirmed');

    await admin.setStatus(acme, 'suspended');
    await admin.putDocuments(beta, [{ hash: HASH, body: '{ viewer { subject } }' }]);
    const durable = await control.snapshot();
    expect(durable.tenants.get(acme)).toContain('suspended');
    expect(durable.documents).toEqual([
      { tenantId: beta, hash: HASH, body: '{ viewer { subject } }' },
    ]);
    expect(await redis.get(tenantConfigRevisionKey())).toBe(durable.revision);
    await eventually(() => expect(registry.get(acme)?.status).toBe('suspended'));

    await redis.flushall();
    expect(await live.reconcile()).toBe(true);
    expect(registry.get(acme)?.status).toBe('suspended');
    expect(await redis.get(tenantConfigKey(acme))).toContain('suspended');
    expect(await redis.smembers(tenantIndexKey())).toEqual([acme]);
    expect(await redis.get(trustedDocumentKey(beta, HASH))).toBe('{ viewer { subject } }');
    expect(await redis.get(tenantConfigRevisionKey())).toBe(durable.revision);

    // A writer that finds the store behind rebuilds it whole instead of adding one record.
    await redis.flushall();
    await admin.put({ id: uniqueTenant('dur-new'), displayName: 'New', data: { strategy: 'row' } });
    expect(await redis.get(tenantConfigKey(acme))).toContain('suspended');
    await admin.setStatus(acme, 'active');
  });

  it('holds a suspension when Redis lost it and PostgreSQL cannot be read, until PostgreSQL answers', async () => {
    const control = controlStore();
    const admin = adminOf(control);
    const { registry, live } = replicaOf(control);
    await live.start();
    await admin.setStatus(beta, 'suspended');
    expect(await live.reconcile()).toBe(true);
    expect(registry.get(beta)?.status).toBe('suspended');

    await proxy.cut();
    await redis.flushall();
    expect(await live.reconcile()).toBe(true);
    expect(live.state()).toBe('held');
    expect(registry.get(beta)?.status).toBe('suspended');
    // Operator actions need the durable copy: refused (retryable), nothing half-written.
    await expect(admin.setStatus(beta, 'active')).rejects.toMatchObject({ name: 'StoreError' });
    expect(await redis.get(tenantConfigKey(beta))).toBeNull();

    // A replica that starts now has nothing to go on: it serves nobody.
    const late = replicaOf(controlStore(), 0);
    await late.live.start();
    expect(late.live.state()).toBe('unconfirmed');
    expect(late.registry.isConfirmed()).toBe(false);

    await proxy.restore();
    await eventually(async () => expect(await live.reconcile()).toBe(true), 5_000, 100);
    expect(live.state()).toBe('confirmed');
    expect(registry.get(beta)?.status).toBe('suspended');
    expect(await late.live.reconcile()).toBe(true);
    expect(late.registry.get(beta)?.status).toBe('suspended');
    expect(await redis.get(tenantConfigKey(beta))).toContain('suspended');
    await admin.setStatus(beta, 'active');
  });

  it('serialises writers: of two conflicting tenants written at once, one is refused', async () => {
    const stores = [controlStore(), controlStore()];
    // Migrated already, so the only wait below is the commit's.
    for (const store of stores) await store.migrate();
    const [a, b] = stores.map((store) => adminOf(store)) as [TenantConfigAdmin, TenantConfigAdmin];
    const config = (id: string) => ({
      id,
      displayName: id,
      data: { strategy: 'schema', schema: `race_${schema}` },
    });
    // Hold the writers' lock, so both puts are inside commit, waiting, before either decides.
    const holder = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
        `atrium-control:${schema}`,
      ]);
      const puts = Promise.allSettled([
        a.put(config(uniqueTenant('race-a'))),
        b.put(config(uniqueTenant('race-b'))),
      ]);
      await eventually(
        async () => {
          const waiting = await holder.query<{ n: string }>(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
          );
          expect(Number(waiting.rows[0]?.n)).toBeGreaterThanOrEqual(2);
        },
        5_000,
        20,
      );
      await holder.query('COMMIT');
      const outcomes = await puts;
      expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
      expect(outcomes.find((o) => o.status === 'rejected')).toMatchObject({
        reason: { extensions: { reason: 'ISOLATION_CONFLICT' } },
      });
    } finally {
      await holder.end();
    }
  });

  it('adopts records written to Redis before the durable copy existed', async () => {
    const upgradeSchema = uniqueControlSchema('upgrade');
    // The earlier tests' replicas hold another durable copy (without the legacy record) and,
    // told of a change, would rightly restore Redis from it before the fresh replica reads it:
    // this upgrade starts from a fleet that has no durable copy yet.
    await Promise.all(lives.splice(0).map((live) => live.stop()));
    try {
      const legacy = uniqueTenant('dur-legacy');
      await adminOf(undefined).put({
        id: legacy,
        displayName: 'Legacy',
        data: { strategy: 'row' },
      });
      const pool = createControlPool({ url: 'postgres://postgres@127.0.0.1:5432/test' });
      pools.push(pool);
      const fresh = createPostgresControlStore({ pool, schema: upgradeSchema });
      const { registry, live } = replicaOf(fresh);
      await live.start();
      expect(registry.get(legacy)?.displayName).toBe('Legacy');
      expect((await fresh.tenants()).has(legacy)).toBe(true);
      expect(await fresh.revision()).toBe(await redis.get(tenantConfigRevisionKey()));
    } finally {
      await dropSchema(upgradeSchema);
    }
  });
});
