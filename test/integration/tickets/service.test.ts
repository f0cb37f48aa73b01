import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import {
  spawnTicketsService,
  type SpawnedTicketsService,
} from '../../../services/tickets/spawn.js';
import { ticketsOf } from '../../../services/tickets/src/tickets.js';
import {
  type Answer,
  AUDIENCE,
  call,
  closedPort,
  createGatewayKey,
  type GatewayKey,
  GATEWAY_ISSUER,
  items,
  type JwksServer,
  signToken,
  startJwksServer,
  type TokenSpec,
} from './helpers.js';

// The reference tenant service as the gateway meets it: a real process, tokens really signed
// by a "gateway" key published on a local JWKS endpoint.

const KEYS = { acme: 'acme-key-5f1c9e', globex: 'globex-key-0b77d2' };

let gatewayKey: GatewayKey;
let strangerKey: GatewayKey;
let jwks: JwksServer;
let open: SpawnedTicketsService;
let keyed: SpawnedTicketsService;

beforeAll(async () => {
  gatewayKey = await createGatewayKey('gateway-1');
  // Same kid, other key: a token the JWKS cannot vouch for.
  strangerKey = await createGatewayKey('gateway-1');
  jwks = await startJwksServer([gatewayKey.publicJwk]);
  [open, keyed] = await Promise.all([
    spawnTicketsService({ jwks: jwks.url, audience: AUDIENCE, issuer: GATEWAY_ISSUER }),
    spawnTicketsService({ jwks: jwks.url, audience: AUDIENCE, keys: KEYS }),
  ]);
});

afterAll(async () => {
  await Promise.all([open?.stop(), keyed?.stop()]);
  await jwks?.close();
});

const token = (spec: TokenSpec = {}): Promise<string> => signToken(gatewayKey, spec);
const customers = (n: number, prefix = 'cust-'): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
const batch = async (
  service: SpawnedTicketsService,
  tenant: string,
  ids: string[],
  extra = '',
): Promise<Answer> =>
  call(`${service.url}/tickets?customerId=${ids.map(encodeURIComponent).join(',')}${extra}`, {
    token: await token({ tenant }),
  });

describe('data per tenant', () => {
  it('answers a verified tenant with deterministic, well-formed tickets of any customer id', async () => {
    const ids = customers(60);
    const first = items(await batch(open, 'acme', ids));
    const again = items(await batch(open, 'acme', ids));
    expect(again).toEqual(first);
    expect(first).toEqual(ids.flatMap((id) => ticketsOf('acme', id)));

    const perCustomer = new Map<string, number>();
    for (const ticket of first) {
      expect(ticket).toEqual({
        id: expect.stringMatching(/^TCK-[0-9a-f]{24}$/),
        customerId: expect.any(String),
        subject: expect.any(String),
        status: expect.stringMatching(/^(OPEN|PENDING|SOLVED)$/),
        priority: expect.stringMatching(/^(LOW|NORMAL|HIGH|URGENT)$/),
        openedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      });
      expect(new Date(ticket.openedAt as string).toISOString()).toBe(ticket.openedAt);
      expect(ticket.id).not.toContain('acme');
      perCustomer.set(
        ticket.customerId as string,
        (perCustomer.get(ticket.customerId as string) ?? 0) + 1,
      );
    }
    expect(Math.max(...perCustomer.values())).toBeLessThanOrEqual(4);
    // 60 customers: some have none, so the 0 case is real, and the others have tickets.
    expect(perCustomer.size).toBeGreaterThan(0);
    expect(perCustomer.size).toBeLessThan(60);
    expect(new Set(first.map((t) => t.id)).size).toBe(first.length);

    // Any string is a customer id, including ones that need encoding in the path.
    const odd = 'ünïcødé/ and spaces?&';
    const single = items(
      await call(`${open.url}/customers/${encodeURIComponent(odd)}/tickets`, {
        token: await token(),
      }),
    );
    expect(single).toEqual(ticketsOf('acme', odd));
  });

  it('gives the same tickets through the batched and the single-customer endpoint', async () => {
    const ids = customers(25, 'agree-');
    for (const extra of ['', '&status=OPEN', '&status=PENDING,SOLVED']) {
      const batched = items(await batch(open, 'globex', ids, extra));
      const singles = [];
      for (const id of ids) {
        const query = extra === '' ? '' : `?${extra.slice(1)}`;
        singles.push(
          ...items(
            await call(`${open.url}/customers/${id}/tickets${query}`, {
              token: await token({ tenant: 'globex' }),
            }),
          ),
        );
      }
      expect(batched).toEqual(singles);
    }
    const open_ = items(await batch(open, 'globex', ids, '&status=OPEN'));
    expect(open_.every((t) => t.status === 'OPEN')).toBe(true);
    // Repeated ids and the repeated-parameter form ask for each customer once.
    const repeated = items(
      await call(`${open.url}/tickets?customerId=agree-1,agree-2&customerId=agree-1`, {
        token: await token({ tenant: 'globex' }),
      }),
    );
    expect(repeated).toEqual([
      ...ticketsOf('globex', 'agree-1'),
      ...ticketsOf('globex', 'agree-2'),
    ]);
  });

  it('gives two tenants different tickets for the same customer ids', async () => {
    const ids = customers(40, 'shared-');
    const acme = items(await batch(open, 'acme', ids));
    const globex = items(await batch(open, 'globex', ids));
    expect(acme).not.toEqual(globex);
    const globexIds = new Set(globex.map((t) => t.id));
    expect(acme.filter((t) => globexIds.has(t.id))).toEqual([]);
    // Per customer too, and in content, not only in the ids: the tenant seeds the generator.
    const content = (tickets: Array<Record<string, unknown>>, id: string): string =>
      JSON.stringify(tickets.filter((t) => t.customerId === id).map(({ id: _, ...rest }) => rest));
    const differing = ids.filter((id) => content(acme, id) !== content(globex, id));
    expect(differing.length).toBeGreaterThan(ids.length / 2);
  });

  it('takes up to 1000 ids per batch and refuses bad queries with 400 BAD_REQUEST', async () => {
    expect((await batch(open, 'acme', customers(1000))).status).toBe(200);
    const tooMany = await batch(open, 'acme', customers(1001));
    expect(tooMany.status).toBe(400);
    expect(tooMany.body).toEqual({ error: expect.stringMatching(/1000/), code: 'BAD_REQUEST' });
    const t = await token();
    for (const query of [
      '',
      '?customerId=',
      '?customerId=a,,b',
      '?customerId=a&status=CLOSED',
      '?customerIds=a',
    ]) {
      const answer = await call(`${open.url}/tickets${query}`, { token: t });
      expect(answer.status, query).toBe(400);
      expect((answer.body as { code: string }).code, query).toBe('BAD_REQUEST');
    }
    const notFound = await call(`${open.url}/customers/x/invoices`, { token: t });
    expect(notFound.status).toBe(404);
    expect((notFound.body as { code: string }).code).toBe('NOT_FOUND');
    const post = await call(`${open.url}/tickets?customerId=a`, { token: t, method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
  });

  it('keeps each tenant to its own tickets under 50 interleaved concurrent requests', async () => {
    await call(`${open.url}/_stats/reset`, { method: 'POST' });
    const jobs = Array.from({ length: 200 }, (_, i) => ({
      tenant: i % 2 === 0 ? 'acme' : 'globex',
      ids: [`canary-${i % 17}`, `canary-${(i * 7) % 23}`],
    }));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < jobs.length) {
        const job = jobs[next++]!;
        const got = items(await batch(open, job.tenant, job.ids));
        expect(got).toEqual([...new Set(job.ids)].flatMap((id) => ticketsOf(job.tenant, id)));
      }
    };
    await Promise.all(Array.from({ length: 50 }, worker));
    const log = (await call(`${open.url}/_requests`)).body as Array<{ tenant: string }>;
    expect(log).toHaveLength(200);
    expect(log.filter((r) => r.tenant === 'acme')).toHaveLength(100);
    expect(log.filter((r) => r.tenant === 'globex')).toHaveLength(100);
  });
});

describe('identity', () => {
  const expect401 = async (answer: Answer, message: RegExp): Promise<void> => {
    expect(answer.status, answer.text).toBe(401);
    expect(answer.body).toEqual({ error: expect.stringMatching(message), code: 'UNAUTHENTICATED' });
  };
  const now = (): number => Math.floor(Date.now() / 1000);
  const tickets = `/tickets?customerId=c1`;

  it('refuses a missing, malformed, foreign or wrongly claimed token with 401 UNAUTHENTICATED', async () => {
    await expect401(await call(`${open.url}${tickets}`), /missing Authorization/);
    await expect401(
      await call(`${open.url}${tickets}`, { headers: { authorization: 'Basic YTpi' } }),
      /Bearer/,
    );
    await expect401(await call(`${open.url}${tickets}`, { token: 'not.a.jwt' }), /ERR_JW/);
    await expect401(
      await call(`${open.url}${tickets}`, { token: await token({ aud: 'billing' }) }),
      /aud/,
    );
    await expect401(
      await call(`${open.url}${tickets}`, { token: await token({ iss: 'https://evil.test' }) }),
      /iss/,
    );
    await expect401(
      await call(`${open.url}${tickets}`, {
        token: await token({ iat: now() - 120, exp: now() - 90 }),
      }),
      /ERR_JWT_EXPIRED/,
    );
    await expect401(
      await call(`${open.url}${tickets}`, { token: await token({ iat: now(), exp: now() + 61 }) }),
      /lifetime/,
    );
    await expect401(
      await call(`${open.url}${tickets}`, { token: await token({ iat: null }) }),
      /iat/,
    );
    await expect401(
      await call(`${open.url}${tickets}`, { token: await token({ tenant: null }) }),
      /tenant/,
    );
    await expect401(
      await call(`${open.url}${tickets}`, { token: await token({ sub: null }) }),
      /sub/,
    );
    await expect401(
      await call(`${open.url}/customers/c1/tickets`, { token: await signToken(strangerKey) }),
      /signature/,
    );
    // A symmetric "token" (alg HS256 keyed with anything) is never accepted.
    const hs = await new SignJWT({ tenant: 'acme' })
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience(AUDIENCE)
      .setIssuer(GATEWAY_ISSUER)
      .setSubject('alice')
      .setIssuedAt()
      .setExpirationTime('30s')
      .sign(new TextEncoder().encode('x'.repeat(32)));
    await expect401(await call(`${open.url}${tickets}`, { token: hs }), /ERR_JOSE_ALG_NOT_ALLOWED/);
    // A lifetime of exactly 60 s is still short-lived.
    expect(
      (await call(`${open.url}${tickets}`, { token: await token({ iat: now(), exp: now() + 60 }) }))
        .status,
    ).toBe(200);
  });

  it("answers 503 JWKS_UNAVAILABLE, not 401, when the gateway's keys cannot be fetched", async () => {
    const port = await closedPort();
    const orphan = await spawnTicketsService({
      jwks: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    });
    try {
      const answer = await call(`${orphan.url}${tickets}`, { token: await token() });
      expect(answer.status).toBe(503);
      expect((answer.body as { code: string }).code).toBe('JWKS_UNAVAILABLE');
    } finally {
      await orphan.stop();
    }
  });

  it("with --keys, needs the key of the token's tenant (403 FORBIDDEN otherwise)", async () => {
    await call(`${keyed.url}/_stats/reset`, { method: 'POST' });
    const acme = await token({ tenant: 'acme' });
    const url = `${keyed.url}/customers/k1/tickets`;
    const ok = await call(url, { token: acme, apiKey: KEYS.acme });
    expect(items(ok)).toEqual(ticketsOf('acme', 'k1'));

    const refusals: Array<[Answer, RegExp]> = [
      [await call(url, { token: acme }), /missing x-api-key/],
      [await call(url, { token: acme, apiKey: KEYS.globex }), /not the key of tenant "acme"/],
      [await call(url, { token: acme, apiKey: 'guess' }), /not the key of tenant "acme"/],
      [
        await call(url, { token: await token({ tenant: 'initech' }), apiKey: KEYS.acme }),
        /no API key is configured for tenant "initech"/,
      ],
    ];
    for (const [answer, message] of refusals) {
      expect(answer.status, answer.text).toBe(403);
      expect(answer.body).toEqual({ error: expect.stringMatching(message), code: 'FORBIDDEN' });
      expect(answer.text).not.toContain(KEYS.acme);
      expect(answer.text).not.toContain(KEYS.globex);
    }
    // Without a token the key does not help: identity comes first.
    expect((await call(url, { apiKey: KEYS.acme })).status).toBe(401);

    const log = (await call(`${keyed.url}/_requests`)).body as Array<Record<string, unknown>>;
    expect(log.map((r) => [r.tenant, r.apiKey, r.status])).toEqual([
      ['acme', 'acme', 200],
      ['acme', undefined, 403],
      ['acme', 'globex', 403],
      ['acme', '<unknown>', 403],
      ['initech', 'acme', 403],
    ]);
    const text = JSON.stringify(log);
    expect(text).not.toContain(KEYS.acme);
    expect(text).not.toContain(KEYS.globex);
  });
});

describe('faults', () => {
  const t = (): Promise<string> => token({ tenant: 'acme' });
  const url = (): string => `${open.url}/tickets?customerId=f1,f2,f3`;
  const setFault = async (fault: unknown): Promise<Answer> =>
    call(`${open.url}/_faults`, { method: 'POST', body: fault });

  beforeEach(async () => {
    expect((await setFault({ mode: 'none' })).status).toBe(200);
  });
  afterAll(async () => {
    await setFault({ mode: 'none' });
  });

  it('status500 answers 500 until cleared, or for the next `count` requests only', async () => {
    await setFault({ mode: 'status500' });
    for (let i = 0; i < 3; i++) {
      const answer = await call(url(), { token: await t() });
      expect(answer.status).toBe(500);
      expect((answer.body as { code: string }).code).toBe('INJECTED_FAULT');
    }
    // Refused requests do not reach the fault (and do not use it up).
    expect((await call(url())).status).toBe(401);
    await setFault({ mode: 'none' });
    expect((await call(url(), { token: await t() })).status).toBe(200);

    await setFault({ mode: 'status500', count: 2 });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await call(url(), { token: await t() })).status);
    expect(statuses).toEqual([500, 500, 200, 200]);
    expect((await call(`${open.url}/_faults`)).body).toMatchObject({ mode: 'none' });
  });

  it('oversized answers valid JSON of 10 MB by default, or of `bytes`', async () => {
    await setFault({ mode: 'oversized' });
    const big = await call(url(), { token: await t() });
    expect(big.status).toBe(200);
    expect(Number(big.headers.get('content-length'))).toBe(10_000_000);
    expect(Buffer.byteLength(big.text)).toBe(10_000_000);
    expect((big.body as { items: unknown[] }).items).toEqual(
      ['f1', 'f2', 'f3'].flatMap((id) => ticketsOf('acme', id)),
    );

    await setFault({ mode: 'oversized', bytes: 250_000 });
    const sized = await call(url(), { token: await t() });
    expect(Buffer.byteLength(sized.text)).toBe(250_000);
    expect(sized.body).toBeDefined();

    // A client that stops reading half way (what a size limit does) leaves the service well.
    await setFault({ mode: 'oversized', bytes: 200_000_000 });
    const abort = new AbortController();
    const res = await fetch(url(), {
      headers: { authorization: `Bearer ${await t()}` },
      signal: abort.signal,
    });
    expect(res.headers.get('content-length')).toBe('200000000');
    const reader = res.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    abort.abort();
    await reader.read().catch(() => undefined);
    await setFault({ mode: 'none' });
    expect((await call(`${open.url}/healthz`)).status).toBe(200);
    expect(items(await call(url(), { token: await t() }))).toHaveLength(
      ['f1', 'f2', 'f3'].flatMap((id) => ticketsOf('acme', id)).length,
    );
  });

  it('malformed answers 200 application/json that does not parse', async () => {
    await setFault({ mode: 'malformed' });
    const answer = await call(url(), { token: await t() });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
    expect(answer.text.length).toBeGreaterThan(0);
    expect(() => JSON.parse(answer.text) as unknown).toThrow(SyntaxError);
  });

  it('slow holds the answer for delayMs, and the request is logged before it is answered', async () => {
    await call(`${open.url}/_stats/reset`, { method: 'POST' });
    // A delay no test run reaches: the answer cannot have come when the log already shows it.
    await setFault({ mode: 'slow', delayMs: 600_000 });
    const abort = new AbortController();
    let settled = false;
    const pending = call(url(), { token: await t(), signal: abort.signal }).finally(() => {
      settled = true;
    });
    for (;;) {
      const log = (await call(`${open.url}/_requests`)).body as unknown[];
      if (log.length === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(settled).toBe(false);
    abort.abort();
    await expect(pending).rejects.toThrow();

    await setFault({ mode: 'slow', delayMs: 50 });
    expect(items(await call(url(), { token: await t() }))).toEqual(
      ['f1', 'f2', 'f3'].flatMap((id) => ticketsOf('acme', id)),
    );
  });

  it('refuses a bad fault with 400 and keeps the one in force', async () => {
    await setFault({ mode: 'status500' });
    for (const bad of [
      { mode: 'explode' },
      { mode: 'slow', delayMs: -1 },
      { mode: 'none', x: 1 },
      [],
    ]) {
      const answer = await setFault(bad);
      expect(answer.status, JSON.stringify(bad)).toBe(400);
      expect((answer.body as { code: string }).code).toBe('BAD_REQUEST');
    }
    expect((await call(`${open.url}/_faults`)).body).toMatchObject({ mode: 'status500' });
  });
});

describe('stats and the request log', () => {
  it('count data requests per tenant, path and status and record who asked for what', async () => {
    expect((await call(`${open.url}/_stats/reset`, { method: 'POST' })).status).toBe(200);
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await call(`${open.url}/tickets?customerId=s1,s2,s3&status=OPEN`, {
      token: await token({ tenant: 'acme', sub: 'alice' }),
      headers: { traceparent, 'x-request-id': 'req-1' },
    });
    await call(`${open.url}/customers/s1/tickets`, {
      token: await token({ tenant: 'globex', sub: 'bob' }),
    });
    await call(`${open.url}/tickets?customerId=s1`);
    // Control and health routes are not data requests.
    await call(`${open.url}/healthz`);
    await call(`${open.url}/_faults`);

    expect((await call(`${open.url}/_stats`)).body).toEqual({
      requests: 3,
      byTenant: { acme: 1, globex: 1 },
      byPath: { '/tickets': 2, '/customers/{id}/tickets': 1 },
      byStatus: { '200': 2, '401': 1 },
      customerIds: { acme: 3, globex: 1 },
    });
    expect((await call(`${open.url}/_requests`)).body).toEqual([
      {
        tenant: 'acme',
        subject: 'alice',
        path: '/tickets',
        query: { customerId: 's1,s2,s3', status: 'OPEN' },
        customerIds: ['s1', 's2', 's3'],
        traceparent,
        requestId: 'req-1',
        status: 200,
      },
      {
        tenant: 'globex',
        subject: 'bob',
        path: '/customers/s1/tickets',
        query: {},
        customerIds: ['s1'],
        status: 200,
      },
    ]);

    await call(`${open.url}/_stats/reset`, { method: 'POST' });
    expect((await call(`${open.url}/_stats`)).body).toEqual({
      requests: 0,
      byTenant: {},
      byPath: {},
      byStatus: {},
      customerIds: {},
    });
    expect((await call(`${open.url}/_requests`)).body).toEqual([]);
  });

  it('serve /healthz without a token', async () => {
    const health = await call(`${open.url}/healthz`);
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok' });
  });
});
