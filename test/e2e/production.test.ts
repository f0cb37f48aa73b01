import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClientSchema, getIntrospectionQuery, type IntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway, type SpawnedGateway } from '../support/spawn-gateway.js';
import { createTestSigner } from '../support/tokens.js';
import { writeGatewayConfig } from '../support/traffic.js';

// The real process (`node --import tsx src/main.ts`) under NODE_ENV=production, the way it is
// deployed: introspection is the plan's to allow (Apollo Server's own production default refused
// it for everyone), and no error a client reads names the implementation or suggests schema
// members.

let dir: string;
let gateway: SpawnedGateway;
const tokens = { open: '', closed: '' };

beforeAll(async () => {
  const signer = await createTestSigner();
  dir = await mkdtemp(join(tmpdir(), 'atrium-production-'));
  const config = await writeGatewayConfig(dir, 'production', signer, {
    tenants: [
      { id: 'open', displayName: 'Open', plan: 'pro', data: { strategy: 'schema' } },
      {
        id: 'closed',
        displayName: 'Closed',
        plan: 'pro',
        data: { strategy: 'schema' },
        limits: { introspection: false },
      },
    ],
  });
  // No DATABASE_URL or REDIS_URL: embedded PGlite and the in-process store (warned about).
  gateway = await spawnGateway({ env: { ATRIUM_CONFIG: config, NODE_ENV: 'production' } });
  tokens.open = await signer.sign({ tenant: 'open' }, { expiresIn: '1h' });
  tokens.closed = await signer.sign({ tenant: 'closed' }, { expiresIn: '1h' });
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: { data?: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] };
}

async function post(
  token: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<Answer> {
  const response = await fetch(`${gateway.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: (await response.json()) as Answer['body'] };
}

/** What must never reach a client: the implementation's names, graphql-js's suggestions. */
const LEAKS = /apollo|graphql-jit|did you mean/i;

describe('NODE_ENV=production, the real process', () => {
  it('answers the standard introspection query where the plan allows it (code generators work)', async () => {
    const answer = await post(tokens.open, getIntrospectionQuery({ descriptions: true }));
    expect(answer.status).toBe(200);
    expect(answer.body.errors).toBeUndefined();
    const schema = buildClientSchema(answer.body.data as IntrospectionQuery);
    expect(Object.keys(schema.getQueryType()?.getFields() ?? {})).toContain('customers');
  });

  it('refuses it with 400 OPERATION_LIMIT where the plan does not, naming no implementation', async () => {
    const answer = await post(tokens.closed, getIntrospectionQuery());
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([
      {
        message: "Operation refused: introspection is not enabled for this tenant's plan.",
        extensions: { code: 'OPERATION_LIMIT', limit: 'introspection' },
      },
    ]);
    // The SDL download is the same capability.
    const sdl = await fetch(`${gateway.url}/schema.graphql`, {
      headers: { authorization: `Bearer ${tokens.closed}` },
    });
    expect(sdl.status).toBe(400);
    expect(await sdl.json()).toMatchObject({
      errors: [{ extensions: { code: 'OPERATION_LIMIT', limit: 'introspection' } }],
    });
  });

  it('suggests nothing on any path: validation, enum values, input fields, variable coercion', async () => {
    const cases: [string, Record<string, unknown>?][] = [
      ['{ viewer { subjec } }'],
      ['{ customers(frist: 1) { edges { cursor } } }'],
      ['{ customers(first: 1, segment: smb) { edges { cursor } } }'],
      ['query($s: Segmnt) { customers(segment: $s) { edges { cursor } } }'],
      [
        'mutation { createOrder(input: { customerId: "c", amount: 1, currency: "EUR", channel: WEB, itemcount: 2 }) { id } }',
      ],
      [
        'query($s: Segment) { customers(first: 1, segment: $s) { edges { cursor } } }',
        { s: 'ENTERPRIS' },
      ],
      [
        'mutation($i: CreateOrderInput!) { createOrder(input: $i) { id } }',
        { i: { customerId: 'c', amount: 1, currency: 'EUR', channel: 'WEB', itemcount: 2 } },
      ],
      [
        'mutation($i: CreateOrderInput!) { createOrder(input: $i) { id } }',
        { i: { customerId: 'c', amount: 1, currency: 'EUR', channel: 'WBE' } },
      ],
    ];
    for (const [query, variables] of cases) {
      const answer = await post(tokens.open, query, variables);
      expect(answer.status, query).toBe(400);
      const messages = (answer.body.errors ?? []).map((e) => e.message);
      expect(messages.length, query).toBeGreaterThan(0);
      for (const message of messages) expect(message, query).not.toMatch(LEAKS);
      expect(answer.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
  });

  it('names no implementation when refusing a method', async () => {
    const response = await fetch(`${gateway.url}/graphql`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.open}` },
      body: JSON.stringify({ query: '{ viewer { subject } }' }),
    });
    expect(response.status).toBe(405);
    const body = (await response.json()) as Answer['body'];
    expect(body.errors?.[0]?.message).toBe('Only GET and POST requests are supported.');
    expect(JSON.stringify(body)).not.toMatch(LEAKS);
  });
});
