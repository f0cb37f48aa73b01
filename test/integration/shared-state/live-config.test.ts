import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../../../src/auth/verify-token.js';
import type { DataSource } from '../../../src/backends/data/types.js';
import { DEFAULT_PLANS, tenantSchema } from '../../../src/config/schema.js';
import { createAdminRoute } from '../../../src/server/admin.js';
import {
  tenantConfigKey,
  tenantConfigRevisionKey,
  tenantIndexKey,
} from '../../../src/store/keys.js';
import { createLogger } from '../../../src/telemetry/logger.js';
import { createLiveTenantConfig, type LiveTenantConfig } from '../../../src/tenancy/live-config.js';
import { createTenantConfigAdmin } from '../../../src/tenancy/tenant-admin.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { writeGatewayConfig } from '../../support/traffic.js';
import {
  createTestSigner,
  TEST_AUDIENCE,
  TEST_ISSUER,
  type TestSigner,
} from '../../support/tokens.js';
import { uniqueTenant } from '../../unit/store/store-contract.js';
import {
  closeReplica,
  connectReplica,
  eventually,
  REDIS_HOST_URL,
  type Replica,
  startTcpProxy,
  type TcpProxy,
  unusedDataSource,
} from './support.js';

const run = promisify(execFile);

// The tenant index, revision and channel are fleet-wide keys, so this file has a database of
// its own (13) and removes exactly what it wrote. (Pub/sub ignores database numbers; only this
// file publishes on the tenant-config channel of the machine's Redis.)
const DB = 13;
const REDIS_URL = `${REDIS_HOST_URL}/${DB}`;

describe('live tenant config: admin endpoint and CLI, propagated to every replica', () => {
  const base = uniqueTenant('live-base');
  const created = uniqueTenant('live-new');
  const viaCli = uniqueTenant('live-cli');
  const partitioned = uniqueTenant('live-part');
  const operator = uniqueTenant('live-ops');
  const ids = [base, created, viaCli, partitioned];
  let signer: TestSigner;
  let dataSource: DataSource;
  let proxy: TcpProxy;
  let redis: Redis;
  let adminToken: string;
  let dir: string;
  const replicas: Replica[] = [];
  const gateways: TestGateway[] = [];
  const live: LiveTenantConfig[] = [];

  beforeAll(async () => {
    signer = await createTestSigner();
    dataSource = unusedDataSource();
    dir = await mkdtemp(join(tmpdir(), 'atrium-live-'));
    adminToken = await signer.sign({ tenant: operator, scope: 'atrium:admin' });
    // Replica 0 connects directly; replica 1 through a proxy the test can cut.
    proxy = await startTcpProxy(6379);
    replicas.push(await connectReplica(REDIS_URL));
    replicas.push(await connectReplica(`redis://127.0.0.1:${proxy.port}/${DB}`, 500));
    redis = replicas[0]!.client;
    const fileTenants = [base, partitioned].map((id) => ({
      id,
      data: { strategy: 'row' as const },
    }));
    for (const replica of replicas) {
      const first = gateways.length === 0;
      const gateway = await startTestGateway({
        signer,
        dataSource,
        tenants: fileTenants,
        routes: first
          ? {
              '/admin/*': createAdminRoute({
                verifier: createTokenVerifier({
                  issuer: TEST_ISSUER,
                  audience: TEST_AUDIENCE,
                  algorithms: ['ES256'],
                  keys: [{ kid: signer.kid, alg: 'ES256', jwk: { ...signer.publicJwk } }],
                }),
                tenants: createTenantConfigAdmin({
                  store: replica.store,
                  baseTenants: fileTenants.map((t) =>
                    tenantSchema.parse({ displayName: t.id, ...t }),
                  ),
                  plans: DEFAULT_PLANS,
                  reservedIds: [operator],
                }),
                // The registry of the gateway it is mounted on (created just below).
                registry: {
                  get: (id) => gateways[0]?.registry.get(id),
                  list: () => gateways[0]?.registry.list() ?? [],
                },
                adminTenant: operator,
                scope: 'atrium:admin',
                bodyLimitBytes: 64 * 1024,
                logger: createLogger({ level: 'silent' }),
              }),
            }
          : undefined,
      });
      gateways.push(gateway);
      const sync = createLiveTenantConfig({
        store: replica.store,
        registry: gateway.registry,
        baseTenants: fileTenants.map((t) => tenantSchema.parse({ displayName: t.id, ...t })),
        pollIntervalMs: 200,
      });
      await sync.start();
      live.push(sync);
    }
  });

  afterAll(async () => {
    await Promise.all(live.map((sync) => sync.stop()));
    await Promise.all(gateways.map((g) => g.stop()));
    if (redis) {
      await redis.del(...ids.map((id) => tenantConfigKey(id)));
      await redis.srem(tenantIndexKey(), ...ids);
      if ((await redis.scard(tenantIndexKey())) === 0) await redis.del(tenantIndexKey());
      await redis.del(tenantConfigRevisionKey());
    }
    await Promise.all(replicas.map((r) => closeReplica(r)));
    await proxy?.close();
    await dataSource?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const viewer = '{ viewer { tenant { id displayName } } }';

  async function admin(method: string, path: string, body?: unknown, token = adminToken) {
    const response = await fetch(`${gateways[0]!.url}/admin/tenants${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  /** Resolves how long it took until every gateway answered `tenant` with `status`. */
  async function untilEveryReplica(tenant: string, status: number, code?: string) {
    const token = await signer.sign({ tenant });
    const started = performance.now();
    await eventually(
      async () => {
        for (const gateway of gateways) {
          const answer = await gateway.query(viewer, { token });
          expect(answer.status).toBe(status);
          if (code) expect(answer.body.errors?.[0]?.extensions?.code).toBe(code);
        }
      },
      5_000,
      10,
    );
    return performance.now() - started;
  }

  it('suspends and resumes a tenant on every replica within 1 s', async () => {
    expect(await untilEveryReplica(base, 200)).toBeLessThan(1_000);
    const suspended = await admin('POST', `/${base}/suspend`);
    expect(suspended.status).toBe(200);
    expect(suspended.body.stored).toMatchObject({ status: 'suspended' });
    const refusedAfter = await untilEveryReplica(base, 403, 'FORBIDDEN');
    expect(refusedAfter).toBeLessThan(1_000);

    expect((await admin('POST', `/${base}/resume`)).status).toBe(200);
    expect(await untilEveryReplica(base, 200)).toBeLessThan(1_000);
    // The measured figure, for the acceptance report.
    // eslint-disable-next-line no-console
    console.info(`suspension refused by every replica after ${refusedAfter.toFixed(0)} ms`);
  });

  it('creates, changes and deletes a tenant at run time, validated like the config file', async () => {
    const config = { id: created, displayName: 'Created at run time', data: { strategy: 'row' } };
    const put = await admin('PUT', `/${created}`, config);
    expect(put.status).toBe(200);
    expect(put.body.tenant).toMatchObject({ id: created, plan: 'free', status: 'active' });
    await untilEveryReplica(created, 200);

    await admin('PUT', `/${created}`, { ...config, plan: 'pro', features: ['fraud'] });
    await eventually(() => {
      for (const gateway of gateways) {
        expect(gateway.registry.get(created)).toMatchObject({ plan: 'pro' });
        expect(gateway.registry.get(created)?.features.has('fraud')).toBe(true);
      }
    });

    // Refused before anything is written: schema errors, unknown plans, the operator's id.
    const invalid = await admin('PUT', `/${created}`, { ...config, data: { strategy: 'nope' } });
    expect(invalid.status).toBe(400);
    expect(invalid.body.errors).toMatchObject([
      { extensions: { code: 'BAD_USER_INPUT', reason: 'INVALID_TENANT_CONFIG' } },
    ]);
    const plan = await admin('PUT', `/${created}`, { ...config, plan: 'platinum' });
    expect(plan.status).toBe(400);
    const reserved = await admin('PUT', `/${operator}`, { ...config, id: operator });
    expect(reserved.status).toBe(400);
    expect(gateways[1]!.registry.get(created)?.plan).toBe('pro');

    // Only operator tokens may call it.
    expect((await admin('GET', '', undefined, 'not-a-token')).status).toBe(401);
    const tenantToken = await signer.sign({ tenant: created, scope: 'atrium:admin' });
    expect((await admin('GET', '', undefined, tenantToken)).status).toBe(403);

    const listed = await admin('GET', '');
    expect(listed.status).toBe(200);
    expect((listed.body.stored as { id: string }[]).map((s) => s.id)).toContain(created);

    expect((await admin('DELETE', `/${created}`)).status).toBe(200);
    expect(await untilEveryReplica(created, 403, 'TENANT_NOT_FOUND')).toBeLessThan(1_000);
    // The tombstone outranks a config file too: a file tenant can be deleted.
    expect((await admin('DELETE', `/${base}`)).status).toBe(200);
    await untilEveryReplica(base, 403, 'TENANT_NOT_FOUND');
    // reset drops the record: the file's entry is served again.
    expect((await admin('POST', `/${base}/reset`)).body).toEqual({ reset: true });
    await untilEveryReplica(base, 200);
    expect(await redis.sismember(tenantIndexKey(), base)).toBe(0);
  });

  it('applies changes made with `npm run tenants` (the CLI)', async () => {
    const file = join(dir, 'tenant.yaml');
    await writeFile(
      file,
      [`id: ${viaCli}`, 'displayName: From the CLI', 'plan: free', 'data:', '  strategy: row'].join(
        '\n',
      ),
    );
    // The CLI checks changes against the gateways' config file: the same tenants and operator.
    const config = await writeGatewayConfig(dir, 'gateway', signer, {
      admin: { tenant: operator },
      tenants: [base, partitioned].map((id) => ({
        id,
        displayName: id,
        data: { strategy: 'row' },
      })),
    });
    const cli = (...args: string[]) =>
      run(process.execPath, ['--import', 'tsx', 'scripts/tenants.ts', ...args], {
        env: { PATH: process.env.PATH, REDIS_URL, ATRIUM_CONFIG: config },
        timeout: 20_000,
      });
    const put = await cli('put', file);
    expect(JSON.parse(put.stdout)).toMatchObject([{ id: viaCli, displayName: 'From the CLI' }]);
    await untilEveryReplica(viaCli, 200);

    await cli('suspend', viaCli);
    const refusedAfter = await untilEveryReplica(viaCli, 403, 'FORBIDDEN');
    expect(refusedAfter).toBeLessThan(1_000);
    // What the CLI stored is what `get` would print (each CLI run costs a process start).
    const stored = JSON.parse((await redis.get(tenantConfigKey(viaCli))) ?? '{}') as {
      status?: string;
      config?: { displayName?: string };
    };
    expect(stored).toMatchObject({ status: 'suspended', config: { displayName: 'From the CLI' } });
  });

  it('reconciles a replica that missed the message while it was cut off from Redis', async () => {
    await untilEveryReplica(partitioned, 200);
    const token = await signer.sign({ tenant: partitioned });
    await proxy.cut();
    // Replica 1 cannot hear this suspension; replica 0 applies it at once.
    expect((await admin('POST', `/${partitioned}/suspend`)).status).toBe(200);
    await eventually(async () =>
      expect((await gateways[0]!.query(viewer, { token })).status).toBe(403),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await gateways[1]!.query(viewer, { token })).status).toBe(200);

    // Back on the network: the revision poll finds the change after the client reconnects.
    await proxy.restore();
    const restored = performance.now();
    await eventually(
      async () => expect((await gateways[1]!.query(viewer, { token })).status).toBe(403),
      10_000,
      50,
    );
    // eslint-disable-next-line no-console
    console.info(`reconciled ${(performance.now() - restored).toFixed(0)} ms after reconnecting`);
  });
});
