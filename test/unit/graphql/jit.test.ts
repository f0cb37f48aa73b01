import { ApolloServer } from '@apollo/server';
import { GraphQLScalarType, Kind } from 'graphql';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/errors.js';
import {
  createCompileBudget,
  createJitGateway,
  DEFAULT_JIT_COMPILE_MS_PER_FIELD,
  type JitPlanEvent,
} from '../../../src/graphql/jit.js';
import { formatError } from '../../../src/server/format-error.js';

interface Context {
  tenant: string;
  calls: string[];
}

const typeDefs = /* GraphQL */ `
  scalar DateTime
  enum Segment {
    SMB
    ENTERPRISE
  }
  interface Node {
    id: ID!
  }
  type Customer implements Node {
    id: ID!
    name: String!
    segment: Segment!
    createdAt: DateTime!
    orders(first: Int = 2): [Order!]!
    risk: Float
    strictRisk: Float!
  }
  type Order implements Node {
    id: ID!
    amount: Float!
  }
  union Result = Customer | Order
  type Viewer {
    tenant: String!
    scopes: [String!]!
  }
  type Query {
    viewer: Viewer!
    customer(id: ID!): Customer
    customers(first: Int!, segment: Segment): [Customer!]!
    node(id: ID!): Node
    search(term: String!): [Result!]!
    failing: String
    unexpected: String
    broken: String!
    brokenList: [Customer!]
    echo(input: OrderInput!, count: Int! = 2): String!
  }
  input OrderInput {
    customerId: ID!
    itemCount: Int! = 1
    rush: Boolean! = false
    note: String = "none"
    lines: [LineInput!]
  }
  input LineInput {
    sku: String!
    quantity: Int! = 1
  }
`;

const customers = [
  { id: 'c1', name: 'Ada', segment: 'SMB', createdAt: new Date(Date.UTC(2025, 0, 1)) },
  { id: 'c2', name: 'Grace', segment: 'ENTERPRISE', createdAt: new Date(Date.UTC(2025, 1, 2)) },
  { id: 'c3', name: 'Alan', segment: 'SMB', createdAt: new Date(Date.UTC(2025, 2, 3)) },
];
const orders = (customerId: string, first: number) =>
  [1, 2, 3].slice(0, first).map((i) => ({ id: `${customerId}-o${i}`, amount: i * 10.5 }));

function schema() {
  return makeExecutableSchema<Context>({
    typeDefs,
    resolvers: {
      DateTime: new GraphQLScalarType({
        name: 'DateTime',
        serialize: (value) => (value as Date).toISOString(),
        parseValue: (value) => new Date(String(value)),
        parseLiteral: (ast) => (ast.kind === Kind.STRING ? new Date(ast.value) : null),
      }),
      Node: { __resolveType: (node: { name?: string }) => (node.name ? 'Customer' : 'Order') },
      Result: { __resolveType: (node: { name?: string }) => (node.name ? 'Customer' : 'Order') },
      Query: {
        viewer: (_p, _a, ctx) => ({ tenant: ctx.tenant, scopes: ['read', 'predict'] }),
        customer: async (_p, { id }: { id: string }, ctx) => {
          ctx.calls.push(`customer:${id}`);
          return customers.find((c) => c.id === id) ?? null;
        },
        customers: (_p, { first, segment }: { first: number; segment?: string }) => {
          if (first > 2) {
            throw new GatewayError('BAD_USER_INPUT', '"first" must be between 1 and 2', {
              extensions: { argument: 'first' },
            });
          }
          return customers.filter((c) => !segment || c.segment === segment).slice(0, first);
        },
        node: (_p, { id }: { id: string }) =>
          customers.find((c) => c.id === id) ?? (id.includes('-o') ? { id, amount: 1 } : null),
        search: (_p, { term }: { term: string }) => [
          ...customers.filter((c) => c.name.startsWith(term)),
          { id: `${term}-o1`, amount: 2 },
        ],
        failing: () => {
          throw new GatewayError('BACKEND_UNAVAILABLE', 'The model backend is unavailable');
        },
        unexpected: () => {
          throw new Error('a secret internal detail');
        },
        broken: () => null,
        brokenList: () => [customers[0], null],
        echo: (_p, args: Record<string, unknown>) => JSON.stringify(args),
      },
      Customer: {
        orders: (c: { id: string }, { first }: { first: number }) => orders(c.id, first),
        risk: async (c: { id: string }) => {
          if (c.id === 'c2') throw new GatewayError('BACKEND_TIMEOUT', 'The model timed out');
          return c.id === 'c1' ? 0.25 : 0.75;
        },
        strictRisk: async (c: { id: string }) => {
          if (c.id === 'c2') throw new GatewayError('BACKEND_UNAVAILABLE', 'no model');
          return 0.5;
        },
      },
    },
  });
}

const common = {
  formatError,
  includeStacktraceInErrorResponses: false,
  hideSchemaDetailsFromClientErrors: true,
};
let reference: ApolloServer<Context>;
let jit: ApolloServer<Context>;
const compiles: JitPlanEvent[] = [];

beforeAll(async () => {
  const s = schema();
  reference = new ApolloServer<Context>({ ...common, schema: s });
  jit = new ApolloServer<Context>({
    ...common,
    // Compile on first use, so every case below is answered by graphql-jit itself.
    // The budget is not what these cases are about (see 'a compile budget' below).
    gateway: createJitGateway(s, {
      compileAfterUses: 1,
      onCompile: (e) => compiles.push(e),
      compileBudget: createCompileBudget({ burstMs: 1e9 }),
    }),
  });
  await Promise.all([reference.start(), jit.start()]);
});

afterAll(async () => {
  await Promise.all([reference?.stop(), jit?.stop()]);
});

async function both(query: string, variables?: Record<string, unknown>, operationName?: string) {
  const run = async (server: ApolloServer<Context>) => {
    const context: Context = { tenant: 'acme', calls: [] };
    const response = await server.executeOperation(
      { query, variables, operationName },
      { contextValue: context },
    );
    if (response.body.kind !== 'single') throw new Error('incremental answer');
    return {
      status: response.http.status ?? 200,
      result: JSON.parse(JSON.stringify(response.body.singleResult)) as {
        data?: unknown;
        errors?: { message: string; path?: unknown; extensions?: { code?: string } }[];
      },
      calls: context.calls,
    };
  };
  return { expected: await run(reference), actual: await run(jit) };
}

/** Name, query, variables, operation name, how it runs (default: compiled). */
const CASES: [string, string, Record<string, unknown>?, string?, JitPlanEvent['reason']?][] = [
  ['the viewer with its tenant from the context', '{ viewer { tenant scopes } }'],
  [
    'variables, defaults, enums, custom scalars, nested lists',
    'query($first: Int!, $segment: Segment) { customers(first: $first, segment: $segment) { id name segment createdAt orders { id amount } } }',
    { first: 2, segment: 'SMB' },
  ],
  [
    'aliases, fragments and @skip/@include',
    `query($full: Boolean!) {
      a: customer(id: "c1") { ...Basic orders(first: 1) @include(if: $full) { id } }
      b: customer(id: "c3") { ...Basic name @skip(if: $full) }
      missing: customer(id: "nope") { id }
    }
    fragment Basic on Customer { id segment }`,
    { full: true },
    undefined,
    // graphql-jit keys `name` by its first mention even when @skip drops it: not compiled.
    'directives',
  ],
  [
    'interfaces, unions and __typename',
    '{ node(id: "c2") { __typename id ... on Customer { name } } search(term: "A") { __typename ... on Customer { id } ... on Order { id amount } } }',
  ],
  [
    'a coded field error keeps its code and the other fields (partial result)',
    '{ customers(first: 2) { id risk } viewer { tenant } }',
  ],
  [
    'a null in a non-null field propagates to the nearest nullable parent',
    '{ customer(id: "c2") { id strictRisk } viewer { tenant } }',
  ],
  ['a coded resolver error at the root', '{ failing viewer { tenant } }'],
  ['an unexpected error is masked', '{ unexpected }'],
  ['null for a non-null root field', '{ broken }'],
  ['null in a list of non-null items', '{ brokenList { id } viewer { tenant } }'],
  ['a variable left to its default', 'query($first: Int = 1) { customers(first: $first) { id } }'],
  ['a coded argument error', '{ customers(first: 3) { id } }'],
  [
    'the named operation of several',
    'query A { viewer { tenant } } query B { customer(id: "c1") { name } }',
    undefined,
    'B',
  ],
  ['an empty operationName', '{ viewer { tenant } }', undefined, ''],
  [
    'an anonymous operation with a name given anyway',
    'query { viewer { tenant } }',
    undefined,
    'Whatever',
  ],
  [
    'introspection',
    '{ __schema { queryType { name } } __type(name: "Customer") { fields { name } } }',
    undefined,
    undefined,
    'introspection',
  ],
];

describe('graphql-jit through Apollo Server 5 (gateway executor)', () => {
  it.each(CASES)(
    'answers exactly as graphql-js: %s',
    async (_name, query, variables, operationName, reason = 'compiled') => {
      compiles.length = 0;
      const { expected, actual } = await both(query, variables, operationName);
      expect(actual).toEqual(expected);
      // Compiled by graphql-jit unless it is unfit; an operation Apollo could not resolve is
      // never planned (graphql-js words that refusal).
      const resolved = expected.result.data !== undefined;
      expect(compiles).toEqual(
        resolved ? [{ operationName, compiled: reason === 'compiled', reason }] : [],
      );
    },
  );

  it.each([
    ['a wrong type', { first: 'two' }],
    ['a missing required variable', {}],
    ['an unknown enum value', { first: 1, segment: 'HUGE' }],
  ])('refuses %s exactly like graphql-js: status 400, BAD_USER_INPUT', async (_name, variables) => {
    const query =
      'query($first: Int!, $segment: Segment) { customers(first: $first, segment: $segment) { id } }';
    const { expected, actual } = await both(query, variables);
    expect(expected.status).toBe(400);
    expect(expected.result.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(actual).toEqual(expected);
  });

  it('coded errors keep their GatewayError code and path', async () => {
    const { actual } = await both('{ customers(first: 2) { id risk } }');
    expect(actual.result.errors).toEqual([
      expect.objectContaining({
        path: ['customers', 1, 'risk'],
        extensions: { code: 'BACKEND_TIMEOUT' },
      }),
    ]);
  });

  it('compiles each operation once and reuses it', async () => {
    compiles.length = 0;
    const query = 'query Once { customer(id: "c1") { id } }';
    for (let i = 0; i < 3; i += 1) {
      const { actual } = await both(query);
      expect(actual.result.data).toEqual({ customer: { id: 'c1' } });
    }
    expect(compiles).toEqual([{ operationName: 'Once', compiled: true, reason: 'compiled' }]);
  });

  it('by default compiles an operation on its second use, never a one-off document', async () => {
    const events: JitPlanEvent[] = [];
    const s = schema();
    const lazy = new ApolloServer<Context>({
      ...common,
      gateway: createJitGateway(s, { onCompile: (e) => events.push(e) }),
    });
    await lazy.start();
    try {
      const ask = async () =>
        lazy.executeOperation(
          { query: 'query Twice { customer(id: "c1") { id } }' },
          { contextValue: { tenant: 'acme', calls: [] } },
        );
      await ask();
      expect(events).toEqual([]);
      await ask();
      await ask();
      expect(events).toEqual([{ operationName: 'Twice', compiled: true, reason: 'compiled' }]);
    } finally {
      await lazy.stop();
    }
  });

  it('answers like graphql-js where its own coercion drops non-null input defaults', async () => {
    // graphql-jit's variable coercion applies a default only to a nullable input: an omitted
    // `itemCount: Int! = 1` (or `$count: Int! = 2`) is "required but not provided" to it.
    const query =
      'query Echo($i: OrderInput!, $count: Int! = 2) { echo(input: $i, count: $count) }';
    const variables = { i: { customerId: 'c1', lines: [{ sku: 'a' }, { sku: 'b', quantity: 3 }] } };
    compiles.length = 0;
    for (let run = 0; run < 2; run += 1) {
      const { expected, actual } = await both(query, variables);
      expect(expected.result.data).toEqual({
        echo: JSON.stringify({
          input: {
            customerId: 'c1',
            itemCount: 1,
            rush: false,
            note: 'none',
            lines: [
              { sku: 'a', quantity: 1 },
              { sku: 'b', quantity: 3 },
            ],
          },
          count: 2,
        }),
      });
      expect(actual).toEqual(expected);
    }
    // Compiled, refused by graphql-jit's coercion once, on graphql-js from then on.
    expect(compiles.map((e) => e.reason)).toEqual(['compiled', 'variables']);
  });

  it('never compiles an operation past maxCompileFields, however far its fragments fan out', async () => {
    // 26 levels of fragments that spread the next twice: 2^25 fields once expanded. graphql-jit
    // took 32 s to compile this on the event loop; it is measured (linearly) and not compiled.
    const levels = 26;
    const fragments = Array.from(
      { length: levels },
      (_, i) =>
        `fragment F${i} on Viewer { ${i + 1 < levels ? `...F${i + 1} ...F${i + 1}` : 'tenant'} }`,
    ).join(' ');
    compiles.length = 0;
    const { expected, actual } = await both(`query Fan { viewer { ...F0 } } ${fragments}`);
    expect(actual).toEqual(expected);
    expect(expected.result.data).toEqual({ viewer: { tenant: 'acme' } });
    expect(compiles).toEqual([{ operationName: 'Fan', compiled: false, reason: 'expanded-size' }]);
    // At the bound it compiles: 1 + 99 fields.
    const wide = `query Wide { viewer { ${Array.from({ length: 99 }, (_, i) => `t${i}: tenant`).join(' ')} } }`;
    const { actual: wideActual } = await both(wide);
    expect(wideActual.result.errors).toBeUndefined();
    expect(compiles.at(-1)).toEqual({ operationName: 'Wide', compiled: true, reason: 'compiled' });
  });

  it('runs resolvers with the request context', async () => {
    const { actual } = await both('{ a: customer(id: "c1") { id } b: customer(id: "c2") { id } }');
    expect(actual.calls).toEqual(['customer:c1', 'customer:c2']);
  });

  it('refuses bad sizes at once', () => {
    expect(() => createJitGateway(schema(), { maxCompiledOperations: 0 })).toThrow(TypeError);
    expect(() => createJitGateway(schema(), { maxCompileFields: 1.5 })).toThrow(
      /maxCompileFields must be an integer ≥ 1, got 1.5/,
    );
  });
});

describe('a compile budget', () => {
  it('lets compiles through while it covers their estimate, then refills with the clock', () => {
    let now = 0;
    const budget = createCompileBudget({ msPerSecond: 10, burstMs: 10, clock: () => now });
    const ran: string[] = [];
    const attempt = (name: string, estimate: number) =>
      budget.attempt(estimate, () => {
        ran.push(name);
        return name;
      });
    expect(attempt('a', 4)).toEqual({ value: 'a' });
    expect(attempt('b', 4)).toEqual({ value: 'b' });
    // 2 ms left: a 4 ms estimate waits, and its compile never runs.
    expect(attempt('c', 4)).toBeUndefined();
    now += 200; // + 2 ms
    expect(attempt('c', 4)).toEqual({ value: 'c' });
    // Charged what a compile took where that is more than its estimate: 1 s here.
    now += 1_000; // full again (10 ms, the burst)
    expect(
      budget.attempt(1, () => {
        now += 1_000;
        return 'slow';
      }),
    ).toEqual({ value: 'slow' });
    // 10 + 0 (no refill counted during the compile) − 1,000: it takes 99 s to cover 1 ms again.
    now += 98_000;
    expect(attempt('d', 1)).toBeUndefined();
    now += 2_000;
    expect(attempt('d', 1)).toEqual({ value: 'd' });
    // An estimate above the burst runs once the budget is full, rather than never.
    now += 10_000;
    expect(attempt('huge', 50)).toEqual({ value: 'huge' });
    expect(attempt('e', 1)).toBeUndefined();
    expect(ran).toEqual(['a', 'b', 'c', 'd', 'huge']);
    expect(budget.stats()).toEqual({ compiles: 6, compileMs: 1_000, deferred: 3 });
  });

  it('refuses a rate or burst that is not a positive number', () => {
    expect(() => createCompileBudget({ msPerSecond: 0 })).toThrow(
      /msPerSecond must be a number > 0/,
    );
    expect(() => createCompileBudget({ burstMs: Number.NaN })).toThrow(/burstMs/);
  });

  it('defers the compiles it does not cover to later uses, graphql-js answering meanwhile', async () => {
    let now = 0;
    const fields = 5;
    // Room for exactly two compiles of five fields each, refilled at one per second.
    const cost = fields * DEFAULT_JIT_COMPILE_MS_PER_FIELD;
    const budget = createCompileBudget({
      burstMs: 2 * cost,
      msPerSecond: cost,
      clock: () => now,
    });
    const events: JitPlanEvent[] = [];
    const s = schema();
    const gated = new ApolloServer<Context>({
      ...common,
      gateway: createJitGateway(s, { onCompile: (e) => events.push(e), compileBudget: budget }),
    });
    await gated.start();
    try {
      const documents = ['A', 'B', 'C'].map(
        (name) => `query ${name} { customer(id: "c1") { id name segment createdAt } }`,
      );
      const ask = async (query: string) => {
        const response = await gated.executeOperation(
          { query },
          { contextValue: { tenant: 'acme', calls: [] } },
        );
        if (response.body.kind !== 'single') throw new Error('incremental answer');
        return response.body.singleResult;
      };
      const expected = {
        customer: { id: 'c1', name: 'Ada', segment: 'SMB', createdAt: '2025-01-01T00:00:00.000Z' },
      };
      for (let use = 0; use < 3; use += 1) {
        for (const query of documents) expect((await ask(query)).data).toEqual(expected);
      }
      // Second uses of A and B compiled; C's second and third uses waited for the budget.
      expect(events.map((e) => e.operationName)).toEqual(['A', 'B']);
      expect(budget.stats()).toMatchObject({ compiles: 2, deferred: 2 });
      now += 1_000;
      expect((await ask(documents[2] as string)).data).toEqual(expected);
      expect(events.map((e) => e.operationName)).toEqual(['A', 'B', 'C']);
      expect(events.every((e) => e.compiled && e.reason === 'compiled')).toBe(true);
    } finally {
      await gated.stop();
    }
  });
});
