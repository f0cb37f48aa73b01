import type { ApolloServerPlugin } from '@apollo/server';
import { isDeepStrictEqual } from 'node:util';
import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayContext } from '../../src/graphql/context.js';
import { createCompileBudget, type JitPlanReason } from '../../src/graphql/jit.js';
import { generateBattery, SEED } from './documents.js';
import {
  captureErrorLogs,
  judge,
  request,
  runPool,
  type SecurityGateway,
  startSecurityGateway,
  Tally,
} from './support.js';

// ≥ 10,000 generated and mutated GraphQL documents over HTTP, from a seeded generator that
// walks the real schema (./documents.ts): every answer a coded 4xx, or a 200 whose errors are
// coded. Every document that reaches an executor is also run by graphql-jit, which must answer
// exactly as graphql-js (the default executor) does.

/** Ids of the requests whose operation reached the executor (Apollo's executionDidStart). */
function executionProbe(executed: Set<string>): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      return {
        async executionDidStart({ contextValue }) {
          executed.add(contextValue.requestId);
        },
      };
    },
  };
}

let g: SecurityGateway;
let jit: SecurityGateway;
const logs = captureErrorLogs();
const executedJs = new Set<string>();
const executedJit = new Set<string>();
const plans = new Map<JitPlanReason, number>();

beforeAll(async () => {
  g = await startSecurityGateway({
    logger: logs.logger,
    executor: 'graphql-js',
    plugins: [executionProbe(executedJs)],
  });
  // Over the same rows: any difference is the executor's.
  jit = await startSecurityGateway({
    data: g.data,
    logger: logs.logger,
    executor: 'graphql-jit',
    // Every operation compiled on its first use, so graphql-jit itself answers each one: with a
    // budget that covers every compile, not one that defers some to graphql-js as time allows.
    jit: {
      compileAfterUses: 1,
      compileBudget: createCompileBudget({ burstMs: 1e9 }),
      onCompile: ({ reason }) => plans.set(reason, (plans.get(reason) ?? 0) + 1),
    },
    plugins: [executionProbe(executedJit)],
  });
}, 60_000);
afterAll(async () => {
  await jit?.stop();
  await g?.stop();
});

interface Answer {
  status: number;
  data?: unknown;
  errors?: { message?: unknown; path?: unknown; extensions?: unknown }[];
}

/**
 * How graphql-jit's answer compares with graphql-js's: identical (status, data with its key
 * order, and the same errors — message, locations, path and extensions — in any order, as
 * the spec gives errors none), or `nulled root` — a non-null root field failed, so `data` is
 * null in both, and graphql-js answered as soon as it knew, with the errors collected by then,
 * while graphql-jit waits for the other root fields and reports theirs too: then graphql-js's
 * errors must all be among graphql-jit's.
 */
function compare(js: Answer, other: Answer): 'identical' | 'nulled root' | string {
  const text = (a: Answer) => JSON.stringify(a).slice(0, 400);
  if (js.status !== other.status || JSON.stringify(js.data) !== JSON.stringify(other.data)) {
    return `graphql-js ${text(js)} / graphql-jit ${text(other)}`;
  }
  const unmatched = [...(other.errors ?? [])];
  const allFound = (js.errors ?? []).every((e) => {
    const at = unmatched.findIndex((m) => isDeepStrictEqual(m, e));
    return at >= 0 && unmatched.splice(at, 1).length === 1;
  });
  if (allFound && unmatched.length === 0) return 'identical';
  if (allFound && js.data === null) return 'nulled root';
  return `errors differ: graphql-js ${text(js)} / graphql-jit ${text(other)}`;
}

/**
 * What no client may read in production: the implementation's names, or graphql-js's
 * suggestions of schema members it did not ask about.
 */
const LEAKS = /apollo|graphql-jit|did you mean/i;

function leaks(text: string): string | undefined {
  const { errors } = JSON.parse(text) as { errors?: { message?: unknown }[] };
  return errors?.map((e) => String(e.message)).find((m) => LEAKS.test(m));
}

describe('GraphQL document battery', () => {
  it('answers ≥ 10,000 generated and mutated documents with coded answers, never a 5xx; graphql-jit as graphql-js', async () => {
    const docs = generateBattery(SEED);
    const tally = new Tally();
    const jitTally = new Tally();
    const byKind = new Map<string, number>();
    const comparisons = new Map<string, number>();
    const mismatches: string[] = [];
    const leaked: string[] = [];
    await runPool(docs, 16, async (doc, i) => {
      byKind.set(doc.kind, (byKind.get(doc.kind) ?? 0) + 1);
      const body = JSON.stringify({
        query: doc.query,
        variables: doc.variables,
        operationName: doc.operationName,
      });
      const tenant = (['acme', 'globex', 'closed'] as const)[i % 3] ?? 'acme';
      const requestId = `doc-${i}`;
      const send = (to: SecurityGateway) =>
        request(to.pool, {
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${to.tokens[tenant]}`,
            'x-request-id': requestId,
          },
          body,
        });
      const label = `#${i} ${doc.kind}: ${doc.query.slice(0, 160)}`;
      try {
        const js = await send(g);
        tally.add(judge(js.status, js.text), label);
        const leak = js.status < 500 ? leaks(js.text) : undefined;
        if (leak !== undefined && leaked.length < 10) leaked.push(`${label}: ${leak}`);
        // Refused before any executor ran (parse, validation, limits): nothing to compare.
        if (!executedJs.has(requestId)) return;
        const other = await send(jit);
        jitTally.add(judge(other.status, other.text), label);
        const jitLeak = other.status < 500 ? leaks(other.text) : undefined;
        if (jitLeak !== undefined && leaked.length < 10) leaked.push(`${label}: ${jitLeak}`);
        const outcome = executedJit.has(requestId)
          ? compare(
              { status: js.status, ...(JSON.parse(js.text) as object) },
              { status: other.status, ...(JSON.parse(other.text) as object) },
            )
          : 'graphql-jit refused it before execution';
        const key = outcome === 'identical' || outcome === 'nulled root' ? outcome : 'different';
        comparisons.set(key, (comparisons.get(key) ?? 0) + 1);
        if (key === 'different' && mismatches.length < 10) mismatches.push(`${label}: ${outcome}`);
      } catch (error) {
        tally.add({ status: 0, key: 'client error', problem: String(error) }, `#${i} ${doc.kind}`);
      }
    });
    console.log(
      `GraphQL documents (seed ${SEED}): ${tally.total} sent, ${tally.problemCount} contract breaches\nby kind:`,
      Object.fromEntries(byKind),
      '\noutcomes:',
      tally.histogram(),
      `\ngraphql-jit vs graphql-js: ${executedJs.size} documents reached an executor, ${jitTally.total} run by both:`,
      Object.fromEntries(comparisons),
      '\ngraphql-jit plans:',
      Object.fromEntries(plans),
    );
    expect(tally.problems).toEqual([]);
    expect(jitTally.problems).toEqual([]);
    expect(mismatches).toEqual([]);
    expect(leaked).toEqual([]);
    expect(tally.total).toBeGreaterThanOrEqual(10_000);
    expect(
      [...tally.counts.keys()].filter((k) => k.startsWith('5') || k === 'client error'),
    ).toEqual([]);
    // Both kinds of refusal and real answers occur: the battery reached execution.
    expect(tally.counts.get('200 data') ?? 0).toBeGreaterThan(500);
    expect(tally.counts.get('400 OPERATION_LIMIT') ?? 0).toBeGreaterThan(100);
    // The comparison compared compiled code, not graphql-js with itself.
    expect(jitTally.total).toBeGreaterThan(2_000);
    expect(plans.get('compiled') ?? 0).toBeGreaterThan(1_000);
    expect(logs.lines).toEqual([]);
    const alive = await request(g.pool, {
      headers: { 'content-type': 'application/json', authorization: `Bearer ${g.tokens.acme}` },
      body: JSON.stringify({ query: '{ viewer { subject } }' }),
    });
    expect(alive.status).toBe(200);
  }, 180_000);
});

/** One real operation of the schema, run by graphql-js once and by graphql-jit twice. */
interface Operation {
  name: string;
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
  tenant?: 'acme' | 'globex' | 'closed';
}

const CREATE_ORDER = `mutation Create($i: CreateOrderInput!) {
  createOrder(input: $i) {
    id amount currency channel itemCount isInternational paymentAttempts customer { id }
  }
}`;

describe('graphql-jit on the schema’s real operations', () => {
  it('answers every query and mutation, with variables, defaults and input objects, as graphql-js', async () => {
    const ask = async (to: SecurityGateway, op: Operation) => {
      const { status, text } = await request(to.pool, {
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${to.tokens[op.tenant ?? 'acme']}`,
        },
        body: JSON.stringify({
          query: op.query,
          variables: op.variables,
          operationName: op.operationName,
        }),
      });
      expect(leaks(text), `${op.name}: ${text}`).toBeUndefined();
      // New orders get random ids; everything else must match.
      return {
        status,
        ...(JSON.parse(text.replace(/"ord_[0-9a-f]{32}"/g, '"ord_new"')) as object),
      } as Answer;
    };
    const page = (await ask(g, {
      name: 'ids',
      query: '{ customers(first: 2) { edges { cursor node { id orders(first: 1) { id } } } } }',
    })) as Answer & {
      data: {
        customers: { edges: { cursor: string; node: { id: string; orders: { id: string }[] } }[] };
      };
    };
    const [first, second] = page.data.customers.edges;
    if (!first || !second) throw new Error('the seed has fewer than two customers');
    const customerId = first.node.id;
    const orderId = first.node.orders[0]?.id ?? second.node.orders[0]?.id ?? 'ord_none';
    const queries: Operation[] = [
      {
        name: 'viewer',
        query: 'query Viewer { viewer { subject scopes tenant { id displayName plan features } } }',
      },
      {
        name: 'a page left to the argument default (first: 20)',
        query: `query Page($segment: Segment, $after: String) {
          customers(segment: $segment, after: $after) {
            edges { cursor node { id name email segment country createdAt lifetimeValue tenureMonths monthlySpend supportTickets daysSinceLastLogin } }
            pageInfo { hasNextPage endCursor }
          }
        }`,
      },
      {
        name: 'an enum variable and a cursor',
        query: `query Page($segment: Segment, $after: String) {
          customers(first: 5, segment: $segment, after: $after) { edges { node { id segment } } pageInfo { hasNextPage } }
        }`,
        variables: { segment: 'ENTERPRISE', after: first.cursor },
      },
      {
        name: 'a variable default and nested lists',
        query: `query Customer($id: ID!, $orders: Int = 2) {
          customer(id: $id) {
            id name orders(first: $orders) { id amount currency channel itemCount isInternational paymentAttempts hourOfDay createdAt customer { id } }
            churnRisk { score label }
          }
        }`,
        variables: { id: customerId },
      },
      {
        name: 'the variable given',
        query: `query Customer($id: ID!, $orders: Int = 2) { customer(id: $id) { id orders(first: $orders) { id } } }`,
        variables: { id: customerId, orders: 5 },
      },
      {
        name: 'an order with its feature-flagged prediction',
        query: `query Order($id: ID!) { order(id: $id) { id amount channel customer { id name } fraudRisk { score label } } }`,
        variables: { id: orderId },
      },
      {
        name: 'a field outside the tenant’s variant',
        query: `query Order($id: ID!) { order(id: $id) { id fraudRisk { score } } }`,
        variables: { id: orderId },
        tenant: 'globex',
      },
      {
        name: 'models',
        query: '{ models { name version features thresholds { label min } ready } }',
      },
      {
        name: 'predictions from a list-of-lists variable',
        query: `query Predict($model: String!, $rows: [[Float!]!]!) { predict(model: $model, inputs: $rows) { model version score label cached } }`,
        variables: { model: 'churn', rows: [[1, 2, 3, 4, 5]] },
      },
      {
        name: 'fragments and aliases',
        query: `query Frag($n: Int!) {
          a: customers(first: $n) { ...Page }
          b: customers(first: 1) { ...Page edges { cursor } }
        }
        fragment Page on CustomerConnection { edges { node { id ...Name } } }
        fragment Name on Customer { name tenureMonths }`,
        variables: { n: 3 },
      },
      {
        name: '@include from a variable default',
        query: `query Inc($full: Boolean = true) { viewer { subject tenant @include(if: $full) { id } } }`,
      },
      {
        name: 'the named operation of several',
        query: `query A { viewer { subject } } query B($id: ID!) { customer(id: $id) { name } }`,
        variables: { id: customerId },
        operationName: 'B',
      },
      {
        name: 'a variable of the wrong type',
        query: 'query($n: Int!) { customers(first: $n) { edges { node { id } } } }',
        variables: { n: 'two' },
      },
      {
        name: 'a required variable left out',
        query: 'query($n: Int!) { customers(first: $n) { edges { node { id } } } }',
      },
      {
        name: 'an enum value in the wrong case (graphql-js would suggest one)',
        query: 'query($s: Segment) { customers(first: 1, segment: $s) { edges { node { id } } } }',
        variables: { s: 'smb' },
      },
      {
        name: 'an input field misspelt (graphql-js would suggest one)',
        query: CREATE_ORDER,
        variables: {
          i: { customerId, amount: 1, currency: 'EUR', channel: 'WEB', itemcount: 2 },
        },
      },
      { name: 'introspection the plan allows', query: getIntrospectionQuery() },
      { name: 'introspection the plan refuses', query: getIntrospectionQuery(), tenant: 'closed' },
    ];
    // Mutations last: each run writes an order, which the queries above must not see.
    const mutations: Operation[] = [
      {
        name: 'createOrder leaving every non-null default out (itemCount, isInternational, paymentAttempts)',
        query: CREATE_ORDER,
        variables: { i: { customerId, amount: 12.5, currency: 'EUR', channel: 'WEB' } },
      },
      {
        name: 'createOrder with every field given',
        query: CREATE_ORDER,
        variables: {
          i: {
            customerId,
            amount: 99.9,
            currency: 'USD',
            channel: 'MOBILE',
            itemCount: 3,
            isInternational: true,
            paymentAttempts: 2,
            hourOfDay: 7,
          },
        },
      },
      {
        name: 'createOrder from scalar variables into an input literal with defaults',
        query: `mutation Create($c: ID!, $channel: Channel!, $items: Int = 4) {
          createOrder(input: { customerId: $c, amount: 5, currency: "EUR", channel: $channel, itemCount: $items }) {
            id itemCount isInternational paymentAttempts channel
          }
        }`,
        variables: { c: customerId, channel: 'STORE' },
      },
      {
        name: 'createOrder refused by the data layer',
        query: CREATE_ORDER,
        variables: { i: { customerId: 'cus_none', amount: -1, currency: 'EURO', channel: 'WEB' } },
      },
    ];
    const outcomes = new Map<string, number>();
    for (const op of [...queries, ...mutations]) {
      const expected = await ask(g, op);
      // Twice: graphql-jit's plan for an operation may change after its first answer.
      for (let run = 0; run < 2; run += 1) {
        const outcome = compare(expected, await ask(jit, op));
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        expect(outcome, op.name).toBe('identical');
      }
    }
    // The finding: with graphql-jit, the second run of this answered 400 with one masked
    // INTERNAL_SERVER_ERROR per omitted field. Its answer, through both executors:
    const created = await ask(jit, mutations[0] as Operation);
    expect(created).toEqual({
      status: 200,
      data: {
        createOrder: {
          id: 'ord_new',
          amount: 12.5,
          currency: 'EUR',
          channel: 'WEB',
          itemCount: 1,
          isInternational: false,
          paymentAttempts: 1,
          customer: { id: customerId },
        },
      },
    });
    console.log(
      `real operations: ${queries.length} queries and ${mutations.length} mutations, each by graphql-js once and graphql-jit twice:`,
      Object.fromEntries(outcomes),
      '\ngraphql-jit plans so far:',
      Object.fromEntries(plans),
    );
    expect(plans.get('variables') ?? 0).toBeGreaterThan(0);
    expect(logs.lines).toEqual([]);
  });
});
