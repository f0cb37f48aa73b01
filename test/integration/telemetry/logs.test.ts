import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CUSTOMERS_QUERY, eventually, type ObservedStack, startObservedStack } from './stack.js';

let stack: ObservedStack;

beforeAll(async () => {
  stack = await startObservedStack();
});

afterAll(async () => {
  await stack?.stop();
});

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

/** The one request line with this request id (waits for the response's close). */
function lineFor(requestId: string) {
  return eventually(() => {
    const lines = stack.log.requests().filter((l) => l.requestId === requestId);
    expect(lines).toHaveLength(1);
    return lines[0]!;
  });
}

describe('the per-request log line', () => {
  it('carries the request id, trace id, tenant, operation, status, outcome and duration', async () => {
    const answer = await stack.gateway.query(CUSTOMERS_QUERY, {
      token: stack.tokens.a,
      variables: { first: 3 },
      headers: { 'x-request-id': 'req-0001.abc:def', traceparent: TRACEPARENT },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-request-id')).toBe('req-0001.abc:def');
    const line = await lineFor('req-0001.abc:def');
    expect(line).toMatchObject({
      level: 30,
      service: 'atrium',
      msg: 'request',
      requestId: 'req-0001.abc:def',
      traceId: TRACE_ID,
      method: 'POST',
      route: '/graphql',
      tenant: stack.tenants.a,
      operation: 'Customers',
      operationType: 'query',
      status: 200,
      outcome: 'ok',
    });
    expect(typeof line.durationMs).toBe('number');
    expect(line.durationMs as number).toBeGreaterThan(0);
    expect(line.errors).toBeUndefined();
  });

  it('makes up a request id when the client sends none or a bad one, and echoes it', async () => {
    const answer = await stack.gateway.query('{ viewer { tenant { id } } }', {
      token: stack.tokens.b,
      headers: { 'x-request-id': 'has spaces and ; semicolons' },
    });
    const id = answer.headers.get('x-request-id')!;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const line = await lineFor(id);
    expect(line).toMatchObject({
      tenant: stack.tenants.b,
      operation: '(anonymous)',
      outcome: 'ok',
    });
    expect(line.traceId).toBeUndefined();
  });

  it('logs refusals: no verified tenant on 401, the tenant on 429, the path template', async () => {
    const unauthenticated = await stack.gateway.query('{ viewer { subject } }', {
      token: 'not-a-jwt',
      headers: { 'x-request-id': 'refused-401' },
    });
    expect(unauthenticated.status).toBe(401);
    expect(await lineFor('refused-401')).toMatchObject({
      status: 401,
      outcome: 'UNAUTHENTICATED',
      errors: ['UNAUTHENTICATED'],
    });
    expect((await lineFor('refused-401')).tenant).toBeUndefined();

    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const answer = await stack.gateway.query('{ viewer { subject } }', {
        token: stack.tokens.busy,
        path: `/t/${stack.tenants.busy}/graphql`,
        headers: { 'x-request-id': `busy-${i}` },
      });
      statuses.push(answer.status);
    }
    const refused = statuses.indexOf(429);
    expect(refused).toBeGreaterThan(0);
    expect(await lineFor(`busy-${refused}`)).toMatchObject({
      tenant: stack.tenants.busy,
      route: '/t/{tenant}/graphql',
      status: 429,
      outcome: 'RATE_LIMITED',
    });
  });

  it('writes exactly one line per request', async () => {
    const before = stack.log.requests().length;
    const ids = Array.from({ length: 12 }, (_, i) => `burst-${i}`);
    await Promise.all(
      ids.map((id, i) =>
        stack.gateway.query('query Burst { viewer { tenant { id } } }', {
          token: i % 2 === 0 ? stack.tokens.a : stack.tokens.b,
          headers: { 'x-request-id': id },
        }),
      ),
    );
    for (const id of ids) expect((await lineFor(id)).operation).toBe('Burst');
    // Nothing else logged a request line meanwhile (no duplicates, no extra lines).
    expect(stack.log.requests().length - before).toBe(ids.length);
  });

  it('never logs tokens, variables, subjects or customer data', async () => {
    const answer = await stack.gateway.query(
      `query One($id: ID!) { customer(id: $id) { id name email } }`,
      {
        token: stack.tokens.a,
        variables: { id: 'cust-probe-7f3a' },
        headers: { 'x-request-id': 'privacy-1', cookie: 'session=cookie-secret-1' },
      },
    );
    expect(answer.status).toBe(200);
    const page = await stack.gateway.query(CUSTOMERS_QUERY, {
      token: stack.tokens.a,
      variables: { first: 5 },
      headers: { 'x-request-id': 'privacy-2' },
    });
    await lineFor('privacy-1');
    await lineFor('privacy-2');
    const customers = (
      page.body.data as { customers: { edges: { node: { name: string; email: string } }[] } }
    ).customers.edges.map((e) => e.node);
    expect(customers.length).toBe(5);

    const text = stack.log.text();
    for (const secret of [
      stack.tokens.a,
      stack.tokens.b,
      stack.tokens.busy,
      stack.tokens.a.split('.')[2]!,
      'Bearer',
      'cookie-secret-1',
      'cust-probe-7f3a',
      'alice@example.com',
      'bob@example.com',
      ...customers.flatMap((c) => [c.name, c.email]),
    ]) {
      expect(text).not.toContain(secret);
    }
  });
});
