import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../../src/backends/data/types.js';
import { createAdmissionControl } from '../../../src/limits/admission.js';
import { createConcurrencyLimiter } from '../../../src/limits/concurrency.js';
import { createRateLimiter } from '../../../src/limits/rate-limit.js';
import { createPersistedQueries } from '../../../src/server/persisted-queries.js';
import { createMemoryStore } from '../../../src/store/memory-store.js';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestSigner } from '../../support/tokens.js';
import { unusedDataSource } from '../shared-state/support.js';

// What browser front-ends and GraphQL clients meet at the HTTP surface, over real HTTP against
// the real gateway: CORS (global and per tenant), media types that follow Accept on every
// answer, and CSRF prevention that lets GET clients through.

const LOCAL_UI = 'http://localhost:3000';
const APP = 'https://app.example.com';
const ACME_UI = 'https://acme.example.net';
const GLOBEX_UI = 'https://ui.globex.example';
const EVIL = 'https://evil.example';
const GQL = 'application/graphql-response+json';

let gw: TestGateway;
let dataSource: DataSource;
const tokens: Record<'acme' | 'globex' | 'tiny', string> = { acme: '', globex: '', tiny: '' };

beforeAll(async () => {
  const signer = await createTestSigner();
  dataSource = unusedDataSource();
  const store = createMemoryStore();
  gw = await startTestGateway({
    signer,
    dataSource,
    cors: { origins: [LOCAL_UI, APP] },
    admission: createAdmissionControl({
      rateLimiter: createRateLimiter({ store, fallback: 'local' }),
      concurrency: createConcurrencyLimiter({ store, fallback: 'local' }),
    }),
    persistedQueries: createPersistedQueries({ store, enabled: true, ttlSeconds: 60 }),
    tenants: [
      { id: 'acme', data: { strategy: 'row' }, cors: { origins: [ACME_UI] } },
      { id: 'globex', data: { strategy: 'row' }, cors: { origins: [GLOBEX_UI] } },
      // One request, then 429 for the rest of the file.
      {
        id: 'tiny',
        data: { strategy: 'row' },
        limits: { rateLimit: { perSecond: 0.001, burst: 0 } },
      },
    ],
  });
  for (const tenant of ['acme', 'globex', 'tiny'] as const) {
    tokens[tenant] = await signer.sign({ tenant });
  }
});

afterAll(async () => {
  await gw?.stop();
  await dataSource?.close();
});

interface Sent {
  status: number;
  headers: Headers;
  text: string;
  /** `extensions.code` of the first error, if the body is JSON with errors. */
  code: string | undefined;
}

async function send(
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Sent> {
  const response = await fetch(`${gw.url}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: init.headers,
    body: init.body,
  });
  const text = await response.text();
  let code: string | undefined;
  try {
    const parsed = JSON.parse(text) as { errors?: { extensions?: { code?: string } }[] };
    code = parsed.errors?.[0]?.extensions?.code;
  } catch {
    code = undefined;
  }
  return { status: response.status, headers: response.headers, text, code };
}

const body = JSON.stringify({ query: '{ __typename }' });
const post = (token: string | undefined, headers: Record<string, string> = {}, path = '/graphql') =>
  send(path, {
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      ...headers,
    },
    body,
  });

function preflight(origin: string, path = '/graphql') {
  return send(path, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type',
    },
  });
}

function corsHeaders(headers: Headers): Record<string, string> {
  return Object.fromEntries([...headers].filter(([name]) => name.startsWith('access-control-')));
}

describe('CORS', () => {
  it('answers a preflight from an allowed origin before auth: 204 with the CORS headers', async () => {
    for (const origin of [LOCAL_UI, APP, ACME_UI, GLOBEX_UI]) {
      const answer = await preflight(origin);
      expect(answer.status, origin).toBe(204);
      expect(answer.text).toBe('');
      expect(answer.headers.get('vary')).toMatch(/Origin/);
      expect(corsHeaders(answer.headers)).toMatchObject({
        'access-control-allow-origin': origin,
        'access-control-allow-methods': 'GET, POST',
        'access-control-max-age': '600',
      });
      expect(answer.headers.get('access-control-allow-headers')).toMatch(
        /authorization, content-type/,
      );
      expect(answer.headers.get('access-control-allow-credentials')).toBeNull();
    }
  });

  it('refuses a preflight from another origin, or from another tenant’s on its path: 403 coded, no CORS headers', async () => {
    for (const [origin, path] of [
      [EVIL, '/graphql'],
      ['null', '/graphql'],
      [GLOBEX_UI, '/t/acme/graphql'],
    ] as const) {
      const answer = await preflight(origin, path);
      expect(answer.status, `${origin} ${path}`).toBe(403);
      expect(answer.code).toBe('FORBIDDEN');
      expect(JSON.parse(answer.text)).toMatchObject({
        errors: [{ extensions: { reason: 'ORIGIN_NOT_ALLOWED' } }],
      });
      expect(corsHeaders(answer.headers)).toEqual({});
      expect(answer.headers.get('vary')).toMatch(/Origin/);
    }
    expect((await preflight(ACME_UI, '/t/acme/graphql')).status).toBe(204);
  });

  it('honours a tenant’s origin on an answer only once the token names that tenant', async () => {
    const own = await post(tokens.acme, { origin: ACME_UI });
    expect(own.status).toBe(200);
    expect(corsHeaders(own.headers)).toEqual({
      'access-control-allow-origin': ACME_UI,
      'access-control-expose-headers': 'RateLimit, RateLimit-Policy, Retry-After, x-request-id',
    });
    expect(own.headers.get('vary')).toBe('Accept, Origin');
    const other = await post(tokens.globex, { origin: ACME_UI });
    expect(other.status).toBe(200);
    expect(corsHeaders(other.headers)).toEqual({});
    expect(other.headers.get('vary')).toBe('Accept, Origin');
    const global = await post(tokens.globex, { origin: APP });
    expect(global.headers.get('access-control-allow-origin')).toBe(APP);
    const evil = await post(tokens.acme, { origin: EVIL });
    expect(evil.status).toBe(200);
    expect(corsHeaders(evil.headers)).toEqual({});
  });

  it('puts the CORS headers on refusals written before Apollo: 401, 403, 429, 413, 404', async () => {
    const refusals: [string, Sent][] = [
      // No token: the tenant is not known, so any tenant's front-end may read the refusal.
      ['401', await post(undefined, { origin: ACME_UI })],
      ['403', await post(tokens.acme, { origin: APP }, '/t/globex/graphql')],
      [
        '429',
        await (async () => {
          await post(tokens.tiny);
          return post(tokens.tiny, { origin: APP });
        })(),
      ],
      [
        '413',
        await send('/graphql', {
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${tokens.acme}`,
            origin: ACME_UI,
          },
          body: JSON.stringify({ query: '{ __typename }', pad: 'x'.repeat(1024 * 1024) }),
        }),
      ],
      ['404', await send('/nope', { headers: { origin: APP } })],
    ];
    for (const [status, answer] of refusals) {
      expect(String(answer.status)).toBe(status);
      expect(answer.code, status).toBeDefined();
      expect(answer.headers.get('access-control-allow-origin'), status).toMatch(/^https:\/\//);
      expect(answer.headers.get('access-control-expose-headers'), status).toContain('Retry-After');
      expect(answer.headers.get('vary'), status).toBe('Accept, Origin');
    }
    const limited = refusals[2]![1];
    expect(limited.code).toBe('RATE_LIMITED');
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
  });
});

describe('errors follow Accept', () => {
  it('answers gateway-written errors in the negotiated media type', async () => {
    const cases: [string | undefined, string][] = [
      [GQL, GQL],
      [`${GQL}, application/json;q=0.9`, GQL],
      ['application/json', 'application/json'],
      ['*/*', 'application/json'],
      [undefined, 'application/json'],
    ];
    for (const [accept, type] of cases) {
      const headers: Record<string, string> = accept === undefined ? {} : { accept };
      const answers = [
        await post(undefined, headers),
        await post(tokens.acme, headers, '/t/globex/graphql'),
        await post(tokens.tiny, headers),
        await send('/nope', { headers }),
      ];
      expect(answers.map((a) => [a.status, a.code])).toEqual([
        [401, 'UNAUTHENTICATED'],
        [403, 'TENANT_MISMATCH'],
        [429, 'RATE_LIMITED'],
        [404, 'BAD_USER_INPUT'],
      ]);
      for (const answer of answers) {
        expect(answer.headers.get('content-type'), `${accept}`).toBe(`${type}; charset=utf-8`);
      }
    }
  });

  it('gives Apollo’s answers the same media type', async () => {
    const ok = await post(tokens.acme, { accept: GQL });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe(`${GQL}; charset=utf-8`);
    const invalid = await send('/graphql', {
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${tokens.acme}`,
        accept: GQL,
      },
      body: JSON.stringify({ query: '{ nope }' }),
    });
    expect(invalid.status).toBe(400);
    expect(invalid.headers.get('content-type')).toBe(`${GQL}; charset=utf-8`);
    const legacy = await post(tokens.acme, { accept: 'application/json' });
    expect(legacy.headers.get('content-type')).toBe('application/json; charset=utf-8');
  });

  it('marks every GraphQL answer, the gateway’s and Apollo’s, as not to be stored', async () => {
    const answers = [
      await post(tokens.acme, { accept: GQL }),
      await post(undefined, {}),
      await post(tokens.acme, {}, '/t/globex/graphql'),
      await send('/graphql', {
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.acme}` },
        body: JSON.stringify({ query: '{ nope }' }),
      }),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 401, 403, 400]);
    for (const answer of answers) expect(answer.headers.get('cache-control')).toBe('no-store');
  });

  it('answers an unknown persisted query 404 for graphql-response+json, 200 for application/json', async () => {
    const unknown = JSON.stringify({
      extensions: { persistedQuery: { version: 1, sha256Hash: 'a'.repeat(64) } },
    });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${tokens.acme}` };
    const modern = await send('/graphql', { headers: { ...headers, accept: GQL }, body: unknown });
    expect([modern.status, modern.code]).toEqual([404, 'PERSISTED_QUERY_NOT_FOUND']);
    expect(modern.headers.get('content-type')).toBe(`${GQL}; charset=utf-8`);
    const legacy = await send('/graphql', { headers, body: unknown });
    expect([legacy.status, legacy.code]).toEqual([200, 'PERSISTED_QUERY_NOT_FOUND']);
    expect(legacy.headers.get('content-type')).toBe('application/json; charset=utf-8');
  });

  it('answers 406 before auth when the client accepts neither JSON type', async () => {
    for (const accept of ['text/html', 'application/xml', 'application/json; charset=latin1']) {
      const answer = await post(undefined, { accept });
      expect([answer.status, answer.code], accept).toEqual([406, 'BAD_USER_INPUT']);
      expect(JSON.parse(answer.text)).toMatchObject({
        errors: [{ extensions: { reason: 'NOT_ACCEPTABLE' } }],
      });
      expect(answer.headers.get('content-type')).toBe('application/json; charset=utf-8');
    }
  });
});

describe('CSRF prevention that lets GET clients through', () => {
  const path = `/graphql?query=${encodeURIComponent('{ viewer { subject } }')}`;

  it('runs a GET that carries a bearer token and no preflight header', async () => {
    const answer = await send(path, { headers: { authorization: `Bearer ${tokens.acme}` } });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual({ data: { viewer: { subject: 'tester' } } });
  });

  it('refuses what a cross-site page can send (no Authorization) before anything runs: 401', async () => {
    const simple = [
      await send(path),
      await send('/graphql', {
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'query=%7B%20viewer%20%7B%20subject%20%7D%20%7D',
      }),
      await send('/graphql', { headers: { 'content-type': 'text/plain' }, body }),
    ];
    expect(simple.map((a) => [a.status, a.code])).toEqual([
      [401, 'UNAUTHENTICATED'],
      [401, 'UNAUTHENTICATED'],
      [401, 'UNAUTHENTICATED'],
    ]);
  });
});
