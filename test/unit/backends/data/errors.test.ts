import { describe, expect, it } from 'vitest';
import { translateDataError } from '../../../../src/backends/data/errors.js';
import { GatewayError } from '../../../../src/errors.js';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('translateDataError', () => {
  it('maps PostgreSQL and socket failures to stable codes', () => {
    const cases: [unknown, string, string?][] = [
      // Constraints an insert broke and values a column cannot hold: the client's input.
      [withCode('23503'), 'BAD_USER_INPUT', 'Mutation.createOrder'],
      [withCode('23514'), 'BAD_USER_INPUT', 'Mutation.createOrder'],
      [withCode('23505'), 'BAD_USER_INPUT', 'Mutation.createOrder'],
      [withCode('22003'), 'BAD_USER_INPUT', 'Mutation.createOrder'],
      [withCode('57014'), 'BACKEND_TIMEOUT'],
      [withCode('08006'), 'BACKEND_UNAVAILABLE'],
      [withCode('57P01'), 'BACKEND_UNAVAILABLE'],
      [withCode('53300'), 'BACKEND_UNAVAILABLE'],
      [withCode('3D000'), 'BACKEND_UNAVAILABLE'],
      [withCode('28P01'), 'BACKEND_UNAVAILABLE'],
      [withCode('42P01'), 'INTERNAL_SERVER_ERROR'],
      [withCode('ECONNREFUSED'), 'BACKEND_UNAVAILABLE'],
      [withCode('ETIMEDOUT'), 'BACKEND_TIMEOUT'],
      [
        new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNREFUSED')]),
        'BACKEND_UNAVAILABLE',
      ],
      [new Error('timeout exceeded when trying to connect'), 'BACKEND_TIMEOUT'],
      [new Error('Connection terminated unexpectedly'), 'BACKEND_UNAVAILABLE'],
      [new Error('something else'), 'INTERNAL_SERVER_ERROR'],
    ];
    for (const [error, code, operation = 'Query.items'] of cases) {
      expect(translateDataError(error, operation).code, String(error)).toBe(code);
    }
  });

  it('keeps SQL details out of the client message but in the cause', () => {
    const cause = withCode('42P01', 'relation "tenant_acme.customers" does not exist');
    const translated = translateDataError(cause, 'Query.items');
    expect(translated.message).not.toContain('tenant_acme');
    expect(translated.originalError).toBe(cause);
  });

  it('passes GatewayErrors through', () => {
    const original = new GatewayError('BAD_USER_INPUT', 'no');
    expect(translateDataError(original, 'x')).toBe(original);
  });
});
