import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, type SecurityGateway, startSecurityGateway } from './support.js';

// The armour around the GraphQL endpoint, checked over real HTTP against the real gateway.
let g: SecurityGateway;

beforeAll(async () => {
  g = await startSecurityGateway();
});
afterAll(() => g?.stop());

const json = (token: string, extra: Record<string, string> = {}) => ({
  'content-type': 'application/json',
  authorization: `Bearer ${token}`,
  ...extra,
});

interface Body {
  data?: unknown;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

async function post(token: string, query: string, variables?: Record<string, unknown>) {
  const { status, text } = await request(g.pool, {
    headers: json(token),
    body: JSON.stringify({ query, variables }),
  });
  return { status, body: JSON.parse(text) as Body };
}

describe('operation limits over HTTP', () => {
  it('serves the acceptance query and client introspection on the plans that allow it', async () => {
    const acceptance =
      '{ customers(first: 50) { edges { node { id churnRisk { score label version } orders(first: 5) { fraudRisk { score } } } } } }';
    const answer = await post(g.tokens.acme, acceptance);
    expect(answer.status).toBe(200);
    const codes = new Set(answer.body.errors?.map((e) => e.extensions?.code));
    // No model backend in this gateway: predictions are coded field errors, data still comes.
    expect([...codes]).toEqual(['BACKEND_UNAVAILABLE']);
    expect(answer.body.data).toMatchObject({ customers: { edges: expect.any(Array) } });
    for (const token of [g.tokens.acme, g.tokens.globex]) {
      const intro = await post(token, getIntrospectionQuery());
      expect(intro.status).toBe(200);
      expect(intro.body.errors).toBeUndefined();
    }
  });

  it('refuses a 1 MB document before parsing it: 400 OPERATION_LIMIT naming tokens', async () => {
    const query = `{ ${'viewer '.repeat(120_000)}}`;
    const answer = await post(g.tokens.acme, query);
    expect(answer.status).toBe(400);
    expect(answer.body.errors?.[0]?.extensions).toMatchObject({
      code: 'OPERATION_LIMIT',
      limit: 'tokens',
      max: 1_000,
    });
    expect(answer.body.errors?.[0]?.message).toMatch(/more than 1000 tokens/);
  });

  it('refuses depth and cost with the value and the maximum, per plan', async () => {
    const deep =
      '{ customers(first: 1) { edges { node { orders(first: 1) { customer { orders(first: 1) { customer { churnRisk { score } } } } } } } } }';
    expect((await post(g.tokens.acme, deep)).status).toBe(200);
    const refused = await post(g.tokens.globex, deep);
    expect(refused.status).toBe(400);
    expect(refused.body.errors?.[0]).toMatchObject({
      message: 'Operation refused: depth 9 exceeds the limit of 8.',
      extensions: { code: 'OPERATION_LIMIT', limit: 'depth', value: 9, max: 8 },
    });
    const costly = await post(
      g.tokens.acme,
      'query($n: Int) { customers(first: $n) { edges { node { orders(first: 50) { id } } } } }',
      { n: 100 },
    );
    expect(costly.status).toBe(400);
    expect(costly.body.errors?.[0]?.extensions).toMatchObject({
      limit: 'cost',
      value: 1 + 100 * 52,
      max: 5_000,
    });
  });

  it('refuses introspection for a tenant whose configuration disables it (400 OPERATION_LIMIT)', async () => {
    const answer = await post(g.tokens.closed, getIntrospectionQuery());
    expect(answer.status).toBe(400);
    expect(answer.body.errors?.[0]?.extensions).toEqual({
      code: 'OPERATION_LIMIT',
      limit: 'introspection',
    });
    expect((await post(g.tokens.closed, '{ __typename viewer { subject } }')).status).toBe(200);
  });
});

describe('HTTP armour', () => {
  it('hides field suggestions in production', async () => {
    const answer = await post(g.tokens.acme, '{ custmers { edges { node { id } } } }');
    expect(answer.status).toBe(400);
    expect(answer.body.errors?.[0]?.message).toMatch(/Cannot query field "custmers"/);
    expect(JSON.stringify(answer.body)).not.toMatch(/Did you mean|customers/);
  });

  it('limits the body size: 413 before buffering the rest', async () => {
    const big = JSON.stringify({ query: '{ viewer { subject } }', pad: 'x'.repeat(1024 * 1024) });
    const { status, text } = await request(g.pool, { headers: json(g.tokens.acme), body: big });
    expect(status).toBe(413);
    expect(JSON.parse(text)).toMatchObject({
      errors: [{ extensions: { code: 'BAD_USER_INPUT', reason: 'PAYLOAD_TOO_LARGE' } }],
    });
  });

  it('refuses mutations over GET (405, Allow: POST)', async () => {
    const query = encodeURIComponent(
      'mutation { createOrder(input: { customerId: "x", amount: 1, currency: "EUR", channel: WEB }) { id } }',
    );
    const response = await g.pool.request({
      method: 'GET',
      path: `/graphql?query=${query}`,
      headers: { authorization: `Bearer ${g.tokens.acme}`, 'apollo-require-preflight': 'true' },
    });
    const body = (await response.body.json()) as Body;
    expect(response.statusCode).toBe(405);
    expect(response.headers.allow).toBe('POST');
    expect(body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('prevents CSRF without breaking GET: what a cross-site page can send never runs; bearer GETs do', async () => {
    // A cross-site form or no-cors fetch cannot send Authorization: refused before Apollo.
    const form = await request(g.pool, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'query=%7B%20viewer%20%7B%20subject%20%7D%20%7D',
    });
    expect(form.status).toBe(401);
    expect(JSON.parse(form.text)).toMatchObject({
      errors: [{ extensions: { code: 'UNAUTHENTICATED' } }],
    });
    // With a bearer token (so preflighted, not a CSRF), a text or form body is still no
    // GraphQL request: a coded 400, nothing executed.
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded']) {
      const plain = await request(g.pool, {
        headers: { 'content-type': contentType, authorization: `Bearer ${g.tokens.acme}` },
        body: JSON.stringify({ query: '{ viewer { subject } }' }),
      });
      expect(plain.status, contentType).toBe(400);
      expect(plain.text).not.toMatch(/"data"/);
      expect(JSON.parse(plain.text)).toMatchObject({
        errors: [{ extensions: { code: 'BAD_USER_INPUT' } }],
      });
    }
    const path = `/graphql?query=${encodeURIComponent('{ viewer { subject } }')}`;
    const anonymousGet = await request(g.pool, { method: 'GET', path, headers: {} });
    expect(anonymousGet.status).toBe(401);
    // What urql (preferGetMethod), graphql-request (method: 'GET') and APQ GETs send.
    const bearerGet = await request(g.pool, {
      method: 'GET',
      path,
      headers: { authorization: `Bearer ${g.tokens.acme}` },
    });
    expect(bearerGet.status).toBe(200);
    expect(JSON.parse(bearerGet.text)).toEqual({ data: { viewer: { subject: 'tester' } } });
  });

  it('refuses batched requests (arrays) with a coded 400', async () => {
    const { status, text } = await request(g.pool, {
      headers: json(g.tokens.acme),
      body: JSON.stringify([
        { query: '{ viewer { subject } }' },
        { query: '{ viewer { subject } }' },
      ]),
    });
    expect(status).toBe(400);
    expect(JSON.parse(text)).toMatchObject({
      errors: [{ extensions: { code: 'BAD_USER_INPUT' } }],
    });
  });
});
