import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from '../../src/backends/data/types.js';
import { createAdmissionControl } from '../../src/limits/admission.js';
import { createConcurrencyLimiter } from '../../src/limits/concurrency.js';
import { createRateLimiter } from '../../src/limits/rate-limit.js';
import { createMemoryStore } from '../../src/store/memory-store.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { createTestSigner } from '../support/tokens.js';
import { unusedDataSource } from '../integration/shared-state/support.js';

// A front-end on another origin, in a real browser: a page served by a second loopback server
// calls the gateway with fetch and a bearer token, as a React or Vue app would. Chromium sends
// the preflights and enforces the answers' CORS headers; the page reads what it is allowed to.

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let site: Server;
let siteOrigin: string;
let gw: TestGateway;
let dataSource: DataSource;
let browser: Browser;
let page: Page;
const tokens: Record<'acme' | 'globex' | 'tiny', string> = { acme: '', globex: '', tiny: '' };

beforeAll(async () => {
  site = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>front-end</title><p>front-end</p>');
  });
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  siteOrigin = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;

  const signer = await createTestSigner();
  dataSource = unusedDataSource();
  const store = createMemoryStore();
  [gw, browser] = await Promise.all([
    startTestGateway({
      signer,
      dataSource,
      admission: createAdmissionControl({
        rateLimiter: createRateLimiter({ store, fallback: 'local' }),
        concurrency: createConcurrencyLimiter({ store, fallback: 'local' }),
      }),
      // No global origin: the page's origin is acme's (and tiny's) own front-end only.
      tenants: [
        { id: 'acme', data: { strategy: 'row' }, cors: { origins: [siteOrigin] } },
        { id: 'globex', data: { strategy: 'row' } },
        {
          id: 'tiny',
          data: { strategy: 'row' },
          cors: { origins: [siteOrigin] },
          limits: { rateLimit: { perSecond: 0.001, burst: 0 } },
        },
      ],
    }),
    chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }),
  ]);
  for (const tenant of ['acme', 'globex', 'tiny'] as const) {
    tokens[tenant] = await signer.sign({ tenant });
  }
  page = await browser.newPage();
  await page.goto(`${siteOrigin}/`);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await dataSource?.close();
  await new Promise((resolve) => site?.close(resolve));
});

interface PageAnswer {
  status?: number;
  contentType?: string | null;
  requestId?: string | null;
  rateLimit?: string | null;
  retryAfter?: string | null;
  body?: { data?: unknown; errors?: { extensions?: { code?: string } }[] };
  /** Set when fetch itself failed: the browser withheld the answer (CORS). */
  failed?: string;
}

/** fetch, run by the page on its own origin: what the front-end's code sees. */
function fetchFromPage(input: {
  url: string;
  token: string;
  method: 'GET' | 'POST';
  query: string;
}): Promise<PageAnswer> {
  return page.evaluate(async ({ url, token, method, query }) => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      accept: 'application/graphql-response+json, application/json;q=0.9',
    };
    let target = url;
    let body: string | undefined;
    if (method === 'GET') target = `${url}?query=${encodeURIComponent(query)}`;
    else {
      headers['content-type'] = 'application/json';
      body = JSON.stringify({ query });
    }
    try {
      const response = await fetch(target, { method, headers, body });
      return {
        status: response.status,
        contentType: response.headers.get('content-type'),
        requestId: response.headers.get('x-request-id'),
        rateLimit: response.headers.get('ratelimit'),
        retryAfter: response.headers.get('retry-after'),
        body: (await response.json()) as PageAnswer['body'],
      };
    } catch (error) {
      return { failed: String(error) };
    }
  }, input);
}

describe('a front-end on another origin, in Chromium', () => {
  const query = '{ viewer { subject tenant { id } } }';

  it('calls the gateway over POST and GET with its tenant’s token and reads data and exposed headers', async () => {
    for (const method of ['POST', 'GET'] as const) {
      const answer = await fetchFromPage({
        url: `${gw.url}/graphql`,
        token: tokens.acme,
        method,
        query,
      });
      expect(answer.failed, method).toBeUndefined();
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        data: { viewer: { subject: 'tester', tenant: { id: 'acme' } } },
      });
      expect(answer.contentType).toBe('application/graphql-response+json; charset=utf-8');
      expect(answer.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(answer.rateLimit).toMatch(/;r=\d+;t=\d+$/);
    }
  });

  it('reads the code of a 401 and of a 429', async () => {
    const unauthenticated = await fetchFromPage({
      url: `${gw.url}/graphql`,
      token: 'expired-or-garbage',
      method: 'POST',
      query,
    });
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.body?.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const url = `${gw.url}/graphql`;
    await fetchFromPage({ url, token: tokens.tiny, method: 'POST', query });
    const limited = await fetchFromPage({ url, token: tokens.tiny, method: 'POST', query });
    expect(limited.status).toBe(429);
    expect(limited.body?.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    expect(limited.retryAfter).toMatch(/^\d+$/);
  });

  it('cannot read another tenant’s answers: the origin is acme’s front-end, not globex’s', async () => {
    const answer = await fetchFromPage({
      url: `${gw.url}/graphql`,
      token: tokens.globex,
      method: 'POST',
      query,
    });
    expect(answer.failed).toMatch(/Failed to fetch/);
    expect(answer.body).toBeUndefined();
  });
});
