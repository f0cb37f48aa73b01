import { GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  captureErrorLogs,
  type SecurityGateway,
  startSecurityGateway,
} from '../../security/support.js';

// An error the client sees masked as INTERNAL_SERVER_ERROR is a bug somewhere behind the
// gateway: it must reach the operator's log at error level, with the request id the client got
// back, under either executor — whatever shape it has.

/** What `modelReady` does next: the fault each case injects behind `ModelInfo.ready: Boolean!`. */
let fault: () => unknown = () => true;

const logs = captureErrorLogs();
const gateways: Partial<Record<'graphql-js' | 'graphql-jit', SecurityGateway>> = {};

beforeAll(async () => {
  for (const executor of ['graphql-js', 'graphql-jit'] as const) {
    gateways[executor] = await startSecurityGateway({
      data: gateways['graphql-js']?.data,
      logger: logs.logger,
      executor,
      // Compiled at once, so graphql-jit's own execution meets the fault.
      jit: { compileAfterUses: 1 },
      modelReady: async () => fault() as boolean,
    });
  }
}, 60_000);
afterAll(async () => {
  await gateways['graphql-jit']?.stop();
  await gateways['graphql-js']?.stop();
});

const CASES: [string, () => unknown, RegExp][] = [
  [
    'a null in a non-null field',
    () => null,
    /Cannot return null for non-nullable field ModelInfo\.ready/,
  ],
  [
    'an uncoded GraphQLError from a dependency',
    () => {
      throw new GraphQLError('model registry said no');
    },
    /model registry said no/,
  ],
  [
    'a plain Error',
    () => {
      throw new TypeError('cannot read properties of undefined');
    },
    /cannot read properties of undefined/,
  ],
];

describe('uncoded errors inside execution', () => {
  for (const executor of ['graphql-js', 'graphql-jit'] as const) {
    it.each(CASES)(
      `${executor}: %s is masked for the client and logged at error level with the request id`,
      async (_name, inject, logged) => {
        fault = inject;
        logs.lines.length = 0;
        const g = gateways[executor] as SecurityGateway;
        const requestId = `unexpected-${executor}-${logs.lines.length}-${Math.random()}`;
        const answer = await g.gateway.query('query Models { models { name ready } }', {
          token: g.tokens.acme,
          headers: { 'x-request-id': requestId },
        });
        expect(answer.status).toBe(200);
        expect(answer.headers.get('x-request-id')).toBe(requestId);
        // `models` is non-null: one masked error per model nulls the whole answer.
        expect(answer.body.data).toBeNull();
        expect(answer.body.errors?.[0]).toEqual({
          message: 'Internal server error',
          path: ['models', 0, 'ready'],
          extensions: { code: 'INTERNAL_SERVER_ERROR' },
        });
        const lines = logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
        expect(lines.length).toBeGreaterThan(0);
        for (const line of lines) {
          expect(line).toMatchObject({
            level: 50,
            msg: 'unexpected error in a GraphQL request',
            requestId,
            tenant: 'acme',
            operationName: 'Models',
            path: ['models', expect.any(Number), 'ready'],
          });
          expect((line.err as { message: string }).message).toMatch(logged);
        }
      },
    );
  }

  it('does not log coded errors: they are the client’s or a backend’s, and say so', async () => {
    fault = () => true;
    logs.lines.length = 0;
    const g = gateways['graphql-js'] as SecurityGateway;
    const answers = await Promise.all([
      g.gateway.query('{ customer(id: "") { id } }', { token: g.tokens.acme }),
      g.gateway.query('{ nope }', { token: g.tokens.acme }),
      g.gateway.query('query($n: Int!) { customers(first: $n) { edges { cursor } } }', {
        token: g.tokens.acme,
        variables: { n: 'x' },
      }),
      g.gateway.query('{ predict(model: "churn", inputs: [[1, 2, 3, 4, 5]]) { score } }', {
        token: g.tokens.acme,
      }),
    ]);
    expect(answers.map((a) => a.body.errors?.[0]?.extensions?.code)).toEqual([
      'BAD_USER_INPUT',
      'BAD_USER_INPUT',
      'BAD_USER_INPUT',
      'BACKEND_UNAVAILABLE',
    ]);
    expect(logs.lines).toEqual([]);
  });
});
