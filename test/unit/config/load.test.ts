import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDemoConfig, DEMO_CONFIG_PATH } from '../../../src/config/demo.js';
import { ConfigError, loadConfigFile, parseConfigFile } from '../../../src/config/load.js';

const valid = {
  auth: {
    issuer: 'https://issuer.example',
    audience: 'atrium',
    jwks: { url: 'https://issuer.example/jwks' },
  },
  tenants: [{ id: 'acme', displayName: 'Acme', data: { strategy: 'schema' } }],
};

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe('config', () => {
  it('applies defaults to a minimal valid file', () => {
    const config = parseConfigFile(valid, 'test');
    expect(config.server.port).toBe(4000);
    expect(config.auth?.algorithms).toEqual(['RS256', 'ES256', 'EdDSA']);
    expect(config.auth?.tenantClaims).toEqual(['tenant', 'https://atrium.dev/tenant']);
    expect(config.tenants[0]?.status).toBe('active');
    expect(config.plans.free?.operation.aliases).toBe(15);
  });

  it('names the field, the expected shape and the value found', () => {
    const bad = {
      ...valid,
      tenants: [{ id: 'Acme Corp', displayName: 'Acme', data: { strategy: 'sharded' } }],
    };
    const text = message(() => parseConfigFile(bad, 'atrium.yaml'));
    expect(text).toContain('atrium.yaml');
    expect(text).toContain('tenants.0.id');
    expect(text).toContain('"Acme Corp"');
    expect(text).toContain('tenants.0.data.strategy');
    expect(text).toContain('"sharded"');
  });

  it('refuses unknown keys at every level, naming them (a typo is never ignored)', () => {
    const typos = {
      ...valid,
      server: { prot: 4000 },
      tenants: [{ ...valid.tenants[0], limts: {} }],
      inference: { microBatch: { windowMS: 2 } },
    };
    const text = message(() => parseConfigFile(typos, 'atrium.yaml'));
    expect(text).toContain('server: Unrecognized key: "prot"');
    expect(text).toContain('tenants.0: Unrecognized key: "limts"');
    expect(text).toContain('inference.microBatch: Unrecognized key: "windowMS"');
  });

  it('leaves the tenant share of the shared pool to its default and refuses one above the pool', () => {
    expect(parseConfigFile(valid, 't').data.tenantShareMax).toBeUndefined();
    const text = message(() =>
      parseConfigFile({ ...valid, data: { poolMax: 4, tenantShareMax: 5 } }, 't'),
    );
    expect(text).toContain('data.tenantShareMax: at most data.poolMax (4); found 5');
  });

  it('refuses HS256 without a secret and a config with no key source', () => {
    expect(
      message(() =>
        parseConfigFile({ ...valid, auth: { ...valid.auth, algorithms: ['HS256'] } }, 't'),
      ),
    ).toMatch(/HS256 is listed/);
    expect(
      message(() => parseConfigFile({ ...valid, auth: { issuer: 'i', audience: 'a' } }, 't')),
    ).toMatch(/at least one key source/);
  });

  it('loads YAML from ATRIUM_CONFIG and lets the environment override connections', () => {
    const dir = mkdtempSync(join(tmpdir(), 'atrium-config-'));
    scratch.push(dir);
    const path = join(dir, 'atrium.yaml');
    writeFileSync(
      path,
      [
        'auth:',
        '  issuer: https://issuer.example',
        '  audience: atrium',
        '  jwks: { url: "https://issuer.example/jwks" }',
        'tenants:',
        '  - { id: acme, displayName: Acme, data: { strategy: row } }',
      ].join('\n'),
    );
    const config = loadConfigFile({
      ATRIUM_CONFIG: path,
      PORT: '5055',
      DATABASE_URL: 'postgres://db/x',
      NODE_ENV: 'production',
    });
    expect(config.mode).toBe('production');
    expect(config.production).toBe(true);
    expect(config.server.port).toBe(5055);
    expect(config.data.url).toBe('postgres://db/x');
    expect(message(() => loadConfigFile({ ATRIUM_CONFIG: path, PORT: 'eighty' }))).toMatch(
      /PORT must be a port number/,
    );
    expect(message(() => loadConfigFile({ ATRIUM_CONFIG: join(dir, 'missing.yaml') }))).toMatch(
      /Cannot read config file/,
    );
  });

  it('builds demo mode from the demo example: two differently isolated tenants, dev auth, the model server as every backend, paths from the example', () => {
    const demo = buildDemoConfig({
      publicJwk: { kty: 'EC' },
      kid: 'k1',
      alg: 'ES256',
      issuer: 'https://issuer.test',
      audience: 'atrium',
      modelServerUrl: 'http://127.0.0.1:8123',
    });
    expect(demo.auth?.keys[0]).toMatchObject({ kid: 'k1', alg: 'ES256' });
    expect(Object.values(demo.inference.backends).map((b) => b.url)).toEqual([
      'http://127.0.0.1:8123',
    ]);
    const example = dirname(DEMO_CONFIG_PATH);
    expect(demo.schema.files).toEqual([join(example, 'schema/*.graphql')]);
    expect(demo.data.migrations).toBe(join(example, 'migrations'));
    expect(demo.data.seed).toBe(join(example, 'seed.ts'));
    expect(demo.tenants.map((t) => [t.id, t.data.strategy])).toEqual([
      ['acme', 'schema'],
      ['globex', 'row'],
    ]);
    expect(demo.tenants[0]?.models.churn?.version).not.toBe(demo.tenants[1]?.models.churn?.version);
    expect(demo.server.cors.origins).toEqual(['http://localhost:*', 'http://127.0.0.1:*']);
  });

  it('defaults CORS to no global origin, bounded lists and no credentials', () => {
    const { server, tenants } = parseConfigFile(valid, 'test');
    expect(server.cors).toMatchObject({ origins: [], credentials: false, maxAgeSeconds: 600 });
    expect(server.cors.exposedHeaders).toEqual([
      'RateLimit',
      'RateLimit-Policy',
      'Retry-After',
      'x-request-id',
    ]);
    expect(tenants[0]?.cors.origins).toEqual([]);
  });

  it('accepts origins and patterns, globally and per tenant', () => {
    const config = parseConfigFile(
      {
        ...valid,
        server: { cors: { origins: ['https://app.example.com', 'https://*.example.com', '*'] } },
        tenants: [
          {
            ...valid.tenants[0],
            cors: { origins: ['https://acme.example', 'http://localhost:*', 'http://[::1]:3000'] },
          },
        ],
      },
      'test',
    );
    expect(config.server.cors.origins).toHaveLength(3);
    expect(config.tenants[0]?.cors.origins).toHaveLength(3);
  });

  it.each([
    ['server.cors.origins.0', { server: { cors: { origins: ['https://app.example.com/'] } } }],
    ['server.cors.origins.0', { server: { cors: { origins: ['app.example.com'] } } }],
    ['server.cors.origins.0', { server: { cors: { origins: ['https://App.example.com'] } } }],
    ['server.cors.origins.0', { server: { cors: { origins: ['https://*.com'] } } }],
    ['server.cors.origins.0', { server: { cors: { origins: ['null'] } } }],
    ['server.cors.credentials', { server: { cors: { origins: ['*'], credentials: true } } }],
    ['server.cors.allowedHeaders.0', { server: { cors: { allowedHeaders: ['bad header'] } } }],
    ['tenants.0.cors.origins.0', { tenants: [{ ...valid.tenants[0], cors: { origins: ['*'] } }] }],
  ])('refuses a bad CORS setting, naming %s', (field, override) => {
    const text = message(() => parseConfigFile({ ...valid, ...override }, 'atrium.yaml'));
    expect(text).toContain(`${field}:`);
  });
});

describe('auth and demo configs', () => {
  it('requires auth unless the config is a demo (a dev section), naming the field', () => {
    const raw = {
      tenants: [{ id: 'acme', displayName: 'Acme', data: { strategy: 'schema' } }],
    };
    expect(() => parseConfigFile(raw, 'test')).toThrow(/auth: required: how tokens are verified/);
    const demo = parseConfigFile({ ...raw, dev: {} }, 'test');
    expect(demo.auth).toBeUndefined();
    expect(demo.dev?.exampleQuery).toMatch(/viewer/);
  });
});
