import { ApolloServer, HeaderMap } from '@apollo/server';
import { buildSchema, getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_EXPANDED_FIELDS,
  DEFAULT_PLANS,
  type PlanLimits,
} from '../../../src/config/schema.js';
import { ENGINE_TYPE_DEFS } from '../../../src/graphql/schema.js';
import { demoTypeDefs } from '../../support/demo.js';
import { GatewayError } from '../../../src/errors.js';
import {
  checkRequestSize as checkRequestSizeOf,
  operationLimitsPlugin,
  type OperationLimitsContext,
} from '../../../src/server/operation-limits.js';
import { formatError } from '../../../src/server/format-error.js';

// The real SDL (with its @cost/@listSize) and no resolvers: nothing here reaches a backend,
// and the plugin runs before execution anyway.
const schema = buildSchema([...ENGINE_TYPE_DEFS, ...demoTypeDefs()].join('\n'));

function tenant(plan: string, overrides: Partial<PlanLimits> = {}): OperationLimitsContext {
  const limits = DEFAULT_PLANS[plan];
  if (!limits) throw new Error(`no plan ${plan}`);
  return { tenant: { id: plan, limits: { ...limits, ...overrides } } };
}

const pro = tenant('pro');
const free = tenant('free');

let server: ApolloServer<OperationLimitsContext>;

beforeAll(async () => {
  server = new ApolloServer<OperationLimitsContext>({
    schema,
    formatError,
    plugins: [operationLimitsPlugin()],
  });
  await server.start();
});
afterAll(() => server.stop());

interface Answer {
  status: number;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

async function send(
  context: OperationLimitsContext,
  query: string,
  variables?: Record<string, unknown>,
): Promise<Answer> {
  const response = await server.executeHTTPGraphQLRequest({
    httpGraphQLRequest: {
      method: 'POST',
      headers: new HeaderMap([['content-type', 'application/json']]),
      search: '',
      body: variables === undefined ? { query } : { query, variables },
    },
    context: () => Promise.resolve(context),
  });
  if (response.body.kind !== 'complete') throw new Error('unexpected streamed answer');
  const body = JSON.parse(response.body.string) as Pick<Answer, 'errors'>;
  return { status: response.status ?? 200, errors: body.errors };
}

const limitErrors = (answer: Answer) =>
  (answer.errors ?? []).filter((e) => e.extensions?.code === 'OPERATION_LIMIT');

function expectRefused(answer: Answer, limit: string, value: number | string, max: number) {
  expect(answer.status).toBe(400);
  expect(answer.errors).toHaveLength(1);
  const error = answer.errors?.[0];
  expect(error?.extensions).toEqual({ code: 'OPERATION_LIMIT', limit, value, max });
  expect(error?.message).toContain(String(max));
  // Counts that stop at max + 1 are worded "more than max".
  if (!['tokens', 'expandedFields', 'variableValues'].includes(limit)) {
    expect(error?.message).toContain(String(value));
  }
  expect(error?.message).not.toMatch(/stack|\.ts|node_modules/);
}

/** `{ viewer { ...F0 } }`, `levels` fragments each spreading the next twice: 1 + 2^(levels-1) fields. */
function fanOut(levels: number): string {
  const fragments = Array.from(
    { length: levels },
    (_, i) =>
      `fragment F${i} on Viewer { ${i + 1 < levels ? `...F${i + 1} ...F${i + 1}` : 'subject'} }`,
  );
  return `{ viewer { ...F0 } } ${fragments.join(' ')}`;
}

/** A legal selection `depth` fields deep: customers → edges → node → orders → customer → … */
function nest(depth: number): string {
  const path = ['customers', 'edges', 'node'];
  while (path.length < depth - 1)
    path.push(path.length % 2 === 1 ? 'orders(first: 1)' : 'customer');
  return `{ ${path.map((f) => `${f} { `).join('')}id${' }'.repeat(path.length)} }`;
}

describe('operationLimitsPlugin: legitimate operations pass', () => {
  const legitimate = [
    '{ customers(first: 50) { edges { node { id churnRisk { score label version } orders(first: 5) { fraudRisk { score } } } } } }',
    '{ customers(first: 100) { edges { cursor node { id name email segment country createdAt lifetimeValue tenureMonths monthlySpend supportTickets daysSinceLastLogin churnRisk { model version score label cached } orders { id amount currency channel createdAt itemCount isInternational paymentAttempts hourOfDay fraudRisk { model version score label cached } customer { id } } } } pageInfo { hasNextPage endCursor } } }',
    '{ viewer { subject scopes tenant { id displayName plan features } } models { name version features thresholds { label min } ready } }',
    'query($id: ID!) { customer(id: $id) { id orders(first: 50) { id customer { id churnRisk { label } } fraudRisk { label } } } }',
    'mutation($input: CreateOrderInput!) { createOrder(input: $input) { id amount fraudRisk { score label } customer { id churnRisk { score } } } }',
    '{ predict(model: "churn", inputs: [[1, 2, 3, 4, 5]]) { score label } }',
    getIntrospectionQuery(),
    getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
      oneOf: true,
    }),
  ];
  it.each(legitimate.map((q, i) => [i, q] as const))(
    'query %i passes the pro plan',
    async (_i, q) => {
      const answer = await send(pro, q, { id: 'cus_1', input: {} });
      expect(limitErrors(answer)).toEqual([]);
    },
  );

  it('the free plan allows a full page with churn scores and default orders, and introspection', async () => {
    for (const q of [
      '{ customers(first: 100) { edges { cursor node { id name churnRisk { score label } orders { id amount } } } pageInfo { hasNextPage endCursor } } }',
      '{ customers(first: 50) { edges { node { id churnRisk { score label version } orders(first: 5) { id } } } } }',
      getIntrospectionQuery(),
    ]) {
      expect(limitErrors(await send(free, q))).toEqual([]);
    }
  });
});

describe('operationLimitsPlugin: each limit refuses with 400 OPERATION_LIMIT', () => {
  it('depth', async () => {
    expect(limitErrors(await send(pro, nest(10)))).toEqual([]);
    expectRefused(await send(pro, nest(12)), 'depth', 12, 10);
    expectRefused(await send(free, nest(10)), 'depth', 10, 8);
  });

  it('aliases', async () => {
    const aliased = (n: number) =>
      `{ viewer { ${Array.from({ length: n }, (_, i) => `a${i}: subject`).join(' ')} } }`;
    expect(limitErrors(await send(pro, aliased(15)))).toEqual([]);
    expectRefused(await send(pro, aliased(16)), 'aliases', 16, 15);
  });

  it('root fields', async () => {
    const roots = (n: number) =>
      `{ ${Array.from({ length: n }, (_, i) => (i === 0 ? 'viewer { subject }' : `v${i}: __typename`)).join(' ')} }`;
    expectRefused(
      await send(
        tenant('pro', { operation: { ...DEFAULT_PLANS.pro!.operation, aliases: 50 } }),
        roots(16),
      ),
      'rootFields',
      16,
      15,
    );
  });

  it('directives', async () => {
    const directives = (n: number) => `{ viewer { ${'subject @include(if: true) '.repeat(n)}} }`;
    expect(limitErrors(await send(pro, directives(50)))).toEqual([]);
    expectRefused(await send(pro, directives(51)), 'directives', 51, 50);
  });

  it('tokens (a valid document that reached Apollo, e.g. through a persisted query)', async () => {
    expectRefused(
      // Many value tokens: cheap to validate (1,000 repeated fields would exceed graphql-js's
      // own overlap-check budget and fail validation first).
      await send(pro, `{ predict(model: "churn", inputs: [[${'1 '.repeat(1_000)}]]) { score } }`),
      'tokens',
      1_001,
      1_000,
    );
  });

  it('cost, with list sizes from literal arguments and from variables', async () => {
    const q =
      'query($n: Int) { customers(first: $n) { edges { node { id churnRisk { score } } } } }';
    expect(limitErrors(await send(pro, q, { n: 100 }))).toEqual([]);
    expectRefused(await send(pro, q, { n: 2_000 }), 'cost', 1 + 2_000 * 4, 5_000);
    expectRefused(
      await send(free, '{ customers(first: 100) { edges { node { orders(first: 50) { id } } } } }'),
      'cost',
      1 + 100 * (2 + 50),
      2_000,
    );
  });

  it('cost of an operation without variables, the same on every run and under every plan', async () => {
    const q = '{ customers(first: 40) { edges { node { orders(first: 50) { id } } } } }';
    const cost = 1 + 40 * (2 + 50);
    // Passes under a plan that admits it, then is refused with the same cost under one that
    // does not, and passes again: the cost kept with the operation is its exact cost.
    expect(limitErrors(await send(pro, q))).toEqual([]);
    expectRefused(await send(free, q), 'cost', cost, 2_000);
    const tight = tenant('pro', { operation: { ...DEFAULT_PLANS.pro!.operation, cost: cost - 1 } });
    expectRefused(await send(tight, q), 'cost', cost, cost - 1);
    expect(limitErrors(await send(pro, q))).toEqual([]);
    // The same text with a variable costs what its variable says, run after run.
    const v =
      'query($n: Int) { customers(first: $n) { edges { node { orders(first: 50) { id } } } } }';
    expectRefused(await send(free, v, { n: 40 }), 'cost', cost, 2_000);
    expect(limitErrors(await send(free, v, { n: 10 }))).toEqual([]);
    expectRefused(await send(free, v, { n: 40 }), 'cost', cost, 2_000);
  });

  it('introspection when the plan disallows it; __typename stays allowed', async () => {
    const closed = tenant('pro', { introspection: false });
    for (const q of [getIntrospectionQuery(), '{ __type(name: "Customer") { name } }']) {
      const answer = await send(closed, q);
      expect(answer.status).toBe(400);
      expect(answer.errors?.[0]?.extensions).toEqual({
        code: 'OPERATION_LIMIT',
        limit: 'introspection',
      });
    }
    expect(limitErrors(await send(closed, '{ __typename viewer { __typename } }'))).toEqual([]);
  });

  it('introspection depth: ofType chains are bounded, list fan-out is refused by validation', async () => {
    const chain = (n: number) =>
      `{ __type(name: "Customer") { ${'ofType { '.repeat(n)}name${' }'.repeat(n)} } }`;
    // __type + n × ofType + name
    expect(limitErrors(await send(pro, chain(18)))).toEqual([]);
    expectRefused(await send(pro, chain(19)), 'introspectionDepth', 21, 20);
    const fanOut = await send(
      pro,
      '{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }',
    );
    expect(fanOut.status).toBe(400);
    expect(fanOut.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('re-checks a document Apollo already validated and cached, against each tenant', async () => {
    const q = nest(10);
    expect(limitErrors(await send(pro, q))).toEqual([]);
    expectRefused(await send(free, q), 'depth', 10, 8);
    expect(limitErrors(await send(pro, q))).toEqual([]);
  });
});

describe('checkRequestSize (the HTTP adapter, before Apollo parses and validates)', () => {
  const limits = DEFAULT_PLANS.pro!.operation;
  let tenant = 'size-acme';
  type SizeArgs = Parameters<typeof checkRequestSizeOf>;
  const checkRequestSize = (request: SizeArgs[0], planLimits: SizeArgs[1]) =>
    checkRequestSizeOf(request, planLimits, tenant);

  function refusal(run: () => void) {
    try {
      run();
    } catch (error) {
      return error as GatewayError;
    }
    return undefined;
  }

  /** The refusal of `query` sent as a POST body under `planLimits`, if any. */
  const posted = (query: string, planLimits: SizeArgs[1] = limits) =>
    refusal(() => checkRequestSize({ method: 'POST', search: '', body: { query } }, planLimits));

  it('refuses a 1 MB document after lexing max + 1 tokens, in POST bodies and GET query strings', () => {
    const huge = `{ ${'a '.repeat(500_000)} ~~~ not even valid past the limit`;
    const started = performance.now();
    const post = refusal(() =>
      checkRequestSize({ method: 'POST', search: '', body: { query: huge } }, limits),
    );
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(post).toBeInstanceOf(GatewayError);
    expect(post?.extensions).toMatchObject({
      code: 'OPERATION_LIMIT',
      limit: 'tokens',
      max: 1_000,
    });
    expect((post?.extensions.http as { status: number }).status).toBe(400);
    const get = refusal(() =>
      checkRequestSize(
        {
          method: 'GET',
          search: `?query=${encodeURIComponent(huge.slice(0, 10_000))}`,
          body: undefined,
        },
        limits,
      ),
    );
    expect(get?.extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'tokens' });
  });

  it('lets documents at the limit through and leaves malformed requests to Apollo', () => {
    const atLimit = `{ ${'a '.repeat(998)}}`;
    for (const body of [
      { query: atLimit },
      { query: 42 },
      [{ query: `{${'a '.repeat(2_000)}}` }],
      'text',
      null,
    ]) {
      expect(
        refusal(() => checkRequestSize({ method: 'POST', search: '', body }, limits)),
      ).toBeUndefined();
    }
    expect(
      refusal(() => checkRequestSize({ method: 'GET', search: '', body: undefined }, limits)),
    ).toBeUndefined();
  });

  it('refuses fragment fan-out by its expanded size, counted without expanding it', () => {
    // 270 tokens that expand to 2^25 fields: inside the token limit, far past the field limit.
    const post = refusal(() =>
      checkRequestSize({ method: 'POST', search: '', body: { query: fanOut(26) } }, limits),
    );
    expect(post?.extensions).toMatchObject({
      code: 'OPERATION_LIMIT',
      limit: 'expandedFields',
      value: DEFAULT_MAX_EXPANDED_FIELDS + 1,
      max: DEFAULT_MAX_EXPANDED_FIELDS,
    });
    expect(post?.message).toBe(
      `Operation refused: the document has more than ${DEFAULT_MAX_EXPANDED_FIELDS} fields once its fragments are expanded (limit ${DEFAULT_MAX_EXPANDED_FIELDS}).`,
    );
    expect((post?.extensions.http as { status: number }).status).toBe(400);
    // Also in fragments no operation spreads (validation walks them too) and in GET requests.
    const unused = `{ viewer { subject } } ${fanOut(26).replace('{ viewer { ...F0 } }', '')}`;
    expect(
      refusal(() =>
        checkRequestSize(
          { method: 'GET', search: `?query=${encodeURIComponent(unused)}`, body: undefined },
          limits,
        ),
      )?.extensions,
    ).toMatchObject({ limit: 'expandedFields' });
  });

  it('lets the standard introspection query and documents at the field limit through', () => {
    for (const query of [
      getIntrospectionQuery(),
      getIntrospectionQuery({
        descriptions: true,
        specifiedByUrl: true,
        directiveIsRepeatable: true,
        schemaDescription: true,
        inputValueDeprecation: true,
        oneOf: true,
      }),
      // 11 levels: 1 + 2^10 = 1,025 fields.
      fanOut(11),
    ]) {
      expect(
        refusal(() => checkRequestSize({ method: 'POST', search: '', body: { query } }, limits)),
      ).toBeUndefined();
    }
    // The count stops at max + 1.
    expect(posted(fanOut(11), { ...limits, expandedFields: 1_024 })?.extensions).toMatchObject({
      limit: 'expandedFields',
      value: 1_025,
      max: 1_024,
    });
  });

  it('remembers what it counted of a document that passed, exactly, by tenant', () => {
    tenant = 'size-memo';
    const query = `{ ${'a '.repeat(98)}}`; // 100 tokens
    const post = (tokens: number) => posted(query, { ...limits, tokens });
    expect(post(100)).toBeUndefined();
    // The plan lowered since: refused with the exact count, as a first look would say.
    expect(post(99)?.extensions).toMatchObject({ limit: 'tokens', value: 100, max: 99 });
    expect(post(100)).toBeUndefined();
    // Fan-out remembered by its exact expanded size too.
    expect(posted(fanOut(8))).toBeUndefined();
    expect(posted(fanOut(8), { ...limits, expandedFields: 128 })?.extensions).toMatchObject({
      limit: 'expandedFields',
      value: 129,
      max: 128,
    });
    // Lowered further: still the exact count; another tenant's first look counts to max + 1.
    expect(post(50)?.extensions).toMatchObject({ limit: 'tokens', value: 100 });
    tenant = 'size-other';
    expect(post(50)?.extensions).toMatchObject({ limit: 'tokens', value: 51, max: 50 });
    tenant = 'size-acme';
  });

  it('refuses variables holding more values than the plan admits, before any coercion', () => {
    const body = (rows: number) => ({
      query: 'query($rows: [[Float!]!]!) { predict(model: "churn", inputs: $rows) { score } }',
      variables: { rows: Array.from({ length: rows }, () => [1, 2, 3, 4]) },
    });
    // rows (1) + 2,000 × (a row and its 4 numbers) = 10,001 values.
    const refused = refusal(() =>
      checkRequestSize({ method: 'POST', search: '', body: body(2_000) }, limits),
    );
    expect(refused?.extensions).toMatchObject({
      code: 'OPERATION_LIMIT',
      limit: 'variableValues',
      value: 10_001,
      max: 10_000,
    });
    expect(refused?.message).toBe(
      'Operation refused: the variables hold more than 10000 values (limit 10000).',
    );
    expect(
      refusal(() => checkRequestSize({ method: 'POST', search: '', body: body(1_999) }, limits)),
    ).toBeUndefined();
    const get = `?query=${encodeURIComponent('{ viewer { subject } }')}&variables=${encodeURIComponent(JSON.stringify({ v: Array.from({ length: 40 }, () => 1) }))}`;
    expect(
      refusal(() =>
        checkRequestSize(
          { method: 'GET', search: get, body: undefined },
          { ...limits, variableValues: 40 },
        ),
      )?.extensions,
    ).toMatchObject({ limit: 'variableValues', value: 41 });
  });

  it('leaves a document that does not parse to Apollo', () => {
    expect(
      refusal(() =>
        checkRequestSize({ method: 'POST', search: '', body: { query: '{ viewer { ' } }, limits),
      ),
    ).toBeUndefined();
  });
});

describe('operationLimitsPlugin: expanded fields and variable values', () => {
  it("refuses an operation past the plan's expanded-field limit that reached Apollo directly", async () => {
    const small = tenant('pro', {
      operation: { ...DEFAULT_PLANS.pro!.operation, expandedFields: 100 },
    });
    expect(limitErrors(await send(small, fanOut(7)))).toEqual([]);
    // viewer + 2^7 subjects: the plugin counts exactly (it saturates only at 2^53).
    expectRefused(await send(small, fanOut(8)), 'expandedFields', 129, 100);
  });

  it('refuses variables past the plan’s value limit that reached Apollo directly', async () => {
    const few = tenant('pro', {
      operation: { ...DEFAULT_PLANS.pro!.operation, variableValues: 10 },
    });
    const query = 'query($rows: [[Float!]!]!) { predict(model: "churn", inputs: $rows) { score } }';
    expect(limitErrors(await send(few, query, { rows: [[1, 2, 3, 4, 5, 6, 7, 8]] }))).toEqual([]);
    expectRefused(
      await send(few, query, { rows: [[1, 2, 3, 4, 5, 6, 7, 8, 9]] }),
      'variableValues',
      11,
      10,
    );
  });
});

describe('operationLimitsPlugin options', () => {
  it('rejects nonsense options at construction', () => {
    expect(() => operationLimitsPlugin({ defaultListSize: 0 })).toThrow(TypeError);
    expect(() => operationLimitsPlugin({ introspectionMaxDepth: 1.5 })).toThrow(TypeError);
  });
});
