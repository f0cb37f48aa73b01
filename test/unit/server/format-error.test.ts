import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../src/errors.js';
import { MASKED_MESSAGE, formatError } from '../../../src/server/format-error.js';

describe('formatError', () => {
  it('keeps a GatewayError message and code and strips the http extension', () => {
    const error = new GatewayError('RATE_LIMITED', 'Slow down', {
      headers: { 'retry-after': '1' },
    });
    const out = formatError({ message: error.message, extensions: error.extensions }, error);
    expect(out).toMatchObject({ message: 'Slow down', extensions: { code: 'RATE_LIMITED' } });
    expect(out.extensions).not.toHaveProperty('http');
  });

  it('masks unknown errors without a stack or the original message', () => {
    const secret = new Error('password=hunter2 at /srv/app.js:10');
    const out = formatError(
      { message: secret.message, extensions: { code: 'INTERNAL_SERVER_ERROR', stacktrace: ['x'] } },
      secret,
    );
    expect(out).toEqual({
      message: MASKED_MESSAGE,
      path: undefined,
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(JSON.stringify(out)).not.toContain('hunter2');
  });

  it('shows client errors from Apollo and graphql-js as BAD_USER_INPUT with the reason', () => {
    const error = new GraphQLError('Cannot query field "nope" on type "Query".');
    const out = formatError(
      { message: error.message, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } },
      error,
    );
    expect(out.extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'GRAPHQL_VALIDATION_FAILED' });
    expect(out.message).toContain('nope');
  });

  it('passes the APQ protocol codes through and never throws', () => {
    const out = formatError(
      { message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } },
      new Error(),
    );
    expect(out.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    const hostile = {
      get message(): string {
        throw new Error('boom');
      },
    };
    expect(formatError(hostile as never, undefined).extensions?.code).toBe('INTERNAL_SERVER_ERROR');
  });
});
