import { buildSchema, graphql, GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/errors.js';
import { gatewayErrorOf, toGraphQLError } from '../../../src/graphql/errors.js';
import { formatError } from '../../../src/server/format-error.js';

describe('coded errors below the GraphQL layer', () => {
  it('are plain errors with a code and extensions, not GraphQL errors', () => {
    const cause = new Error('pg: connection refused');
    const error = new GatewayError('BACKEND_UNAVAILABLE', 'The data source is unavailable.', {
      cause,
      extensions: { reason: 'DOWN' },
    });
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(GraphQLError);
    expect(error.code).toBe('BACKEND_UNAVAILABLE');
    expect(error.extensions).toEqual({ reason: 'DOWN', code: 'BACKEND_UNAVAILABLE' });
    expect(error.originalError).toBe(cause);
    expect(error.cause).toBe(cause);
  });

  it('become GraphQL errors at the edge with the same message and extensions', () => {
    const error = new GatewayError('RATE_LIMITED', 'Slow down.', {
      request: true,
      headers: { 'retry-after': '2' },
      extensions: { retryAfterSeconds: 2 },
    });
    const translated = toGraphQLError(error);
    expect(translated).toBeInstanceOf(GraphQLError);
    expect(translated.message).toBe('Slow down.');
    expect(translated.extensions).toEqual(error.extensions);
    expect(translated.extensions.http).toEqual({
      status: 429,
      headers: new Map([['retry-after', '2']]),
    });
    expect(gatewayErrorOf(translated)).toBe(error);
    expect(formatError({ message: translated.message }, translated)).toEqual({
      message: 'Slow down.',
      extensions: { code: 'RATE_LIMITED', retryAfterSeconds: 2 },
    });
  });

  it("keep their code and message when a resolver throws one (graphql-js's own translation)", async () => {
    const schema = buildSchema('type Query { a: Int }');
    const result = await graphql({
      schema,
      source: '{ a }',
      rootValue: {
        a: () => {
          throw new GatewayError('BACKEND_TIMEOUT', 'Too late.', { extensions: { limit: 5 } });
        },
      },
    });
    const [error] = result.errors ?? [];
    expect(error?.extensions).toEqual({ limit: 5, code: 'BACKEND_TIMEOUT' });
    expect(formatError(error!.toJSON(), error)).toEqual({
      message: 'Too late.',
      locations: [{ line: 1, column: 3 }],
      path: ['a'],
      extensions: { code: 'BACKEND_TIMEOUT', limit: 5 },
    });
  });
});
