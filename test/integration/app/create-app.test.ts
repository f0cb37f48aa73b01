import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../../src/app.js';
import { createPgliteDataSource } from '../../../src/backends/data/pglite.js';
import type { DataSource } from '../../../src/backends/data/types.js';
import { type AtriumConfig, ConfigError, parseConfigFile } from '../../../src/config/load.js';
import { createMemoryStore } from '../../../src/store/memory-store.js';
import { eventually } from '../../support/eventually.js';
import {
  createTestSigner,
  TEST_AUDIENCE,
  TEST_ISSUER,
  type TestSigner,
} from '../../support/tokens.js';

// createApp's own contract: built from a config alone it serves real answers, and on stop it
// closes what it built and nothing a caller injected. (Most suites reach it through
// test/support/gateway.ts with their own dependencies injected.)

const REDIS_URL = 'redis://127.0.0.1:6379/9';

let signer: TestSigner;

function config(extra: Record<string, unknown> = {}): AtriumConfig {
  const file = parseConfigFile(
    {
      server: { host: '127.0.0.1', port: 0, drainTimeoutMs: 1_000 },
      auth: {
        issuer: TEST_ISSUER,
        audience: TEST_AUDIENCE,
        algorithms: ['ES256'],
        keys: [{ kid: signer.kid, alg: 'ES256', jwk: { ...signer.publicJwk } }],
      },
      tenants: [
        { id: 'acme', displayName: 'Acme', data: { strategy: 'schema' } },
        { id: 'globex', displayName: 'Globex', data: { strategy: 'row' } },
      ],
      ...extra,
    },
    'the create-app test',
  );
  return {
    ...file,
    mode: 'production',
    production: true,
    logLevel: 'silent',
    home: '.atrium',
    modelServerPort: 0,
  };
}

beforeAll(async () => {
  signer = await createTestSigner();
});

describe('createApp', () => {
  it('builds a working gateway from the config alone and closes what it built on stop', async () => {
    const app = await createApp(config({ telemetry: { metrics: { onMainPort: 'all' } } }));
    const url = await app.listen();
    expect(app.url).toBe(url);
    try {
      const token = await signer.sign({ tenant: 'acme' });
      const answer = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({
          query: '{ viewer { tenant { id } } customers(first: 2) { edges { node { id } } } }',
        }),
      });
      expect(answer.status).toBe(200);
      const body = (await answer.json()) as {
        data: { viewer: { tenant: { id: string } }; customers: { edges: unknown[] } };
      };
      // The embedded demo data, seeded for the configured tenants.
      expect(body.data.viewer.tenant.id).toBe('acme');
      expect(body.data.customers.edges).toHaveLength(2);

      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({
        status: 'ok',
        checks: { data: 'ok', store: 'ok', 'tenant-config': 'ok', keys: 'ok' },
      });
      // Metrics are on by default; this config serves them on the main port.
      const metrics = await eventually(async () => {
        const text = await (await fetch(`${url}/metrics`)).text();
        expect(text).toMatch(/^atrium_graphql_requests_total\{tenant="acme",.*\} 1$/m);
        return text;
      });
      expect(metrics).toContain('atrium_backend_');
    } finally {
      await app.stop();
    }
    expect(app.store.status().state).toBe('closed');
    await expect(app.dataSource.ping()).rejects.toThrow();
  });

  it('leaves the dependencies a caller injected open', async () => {
    const store = createMemoryStore();
    const inner = createPgliteDataSource();
    let dataClosed = 0;
    const dataSource: DataSource = {
      ...inner,
      close: () => {
        dataClosed += 1;
        return inner.close();
      },
    };
    try {
      const app = await createApp(config(), { store, dataSource });
      expect(app.store).toBe(store);
      expect(app.dataSource).toBe(dataSource);
      const url = await app.listen();
      // By default the main port does not serve /metrics: it names tenants and operations.
      expect((await fetch(`${url}/metrics`)).status).toBe(404);
      await app.stop();
      expect(store.status().state).toBe('ready');
      expect(dataClosed).toBe(0);
    } finally {
      await store.close();
      await inner.close();
    }
  });

  describe('with a Redis store', () => {
    let redis: Redis;

    beforeAll(() => {
      redis = new Redis(REDIS_URL);
    });

    afterAll(async () => {
      await redis?.quit();
    });

    /** Whether a connection named `name` shows up in CLIENT LIST within `ms` (sampled). */
    async function seenWithin(name: string, ms: number): Promise<boolean> {
      const until = performance.now() + ms;
      while (performance.now() < until) {
        const list = (await redis.call('CLIENT', 'LIST')) as string;
        if (list.includes(` name=${name} `)) return true;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return false;
    }

    it('a config that fails half way through names the field and closes what was built', async () => {
      const dataSource = createPgliteDataSource();
      // ioredis takes its options from the URL's query: the app's connection is named.
      const name = `atrium-create-app-${process.pid}`;
      try {
        const failed = await createApp(
          config({
            redis: { url: `${REDIS_URL}?connectionName=${name}` },
            // The store is built before the admin routes, which refuse a served tenant.
            admin: { tenant: 'acme' },
          }),
          { dataSource },
        ).catch((error: unknown) => error);
        expect(failed).toBeInstanceOf(ConfigError);
        expect((failed as Error).message).toMatch(/^admin\.tenant: acme is a served tenant/);
        // A client left open connects within milliseconds on loopback and stays.
        expect(await seenWithin(name, 500)).toBe(false);
      } finally {
        await dataSource.close();
      }
    });
  });
});
