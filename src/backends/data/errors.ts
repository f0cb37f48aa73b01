import { GatewayError, isGatewayError } from '../../errors.js';

/** Socket-level failures: the server is not there (or went away). */
const UNAVAILABLE_ERRNO = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ECONNABORTED',
]);

const SQLSTATE = /^[0-9A-Z]{5}$/;

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Node reports a failed multi-address connect (localhost → ::1 and 127.0.0.1) as an
  // AggregateError; its members carry the errno.
  if (error instanceof AggregateError) {
    for (const inner of error.errors) {
      const innerCode = codeOf(inner);
      if (innerCode !== undefined) return innerCode;
    }
  }
  return undefined;
}

/** True for an error PostgreSQL itself reported (it carries a SQLSTATE). */
export function isServerError(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && SQLSTATE.test(code);
}

const unavailable = (cause: unknown): GatewayError =>
  new GatewayError('BACKEND_UNAVAILABLE', 'The data backend is unavailable', { cause });
const timedOut = (cause: unknown): GatewayError =>
  new GatewayError('BACKEND_TIMEOUT', 'The data backend did not answer in time', { cause });

/**
 * Translates what node-postgres or PGlite threw into a GatewayError, at the edge of the data
 * layer. Client-facing messages never contain SQL, schema, role or connection details; the
 * original error stays as `cause` for logs.
 */
export function translateDataError(error: unknown, _operation: string): GatewayError {
  if (isGatewayError(error)) return error;
  const code = codeOf(error);
  if (code !== undefined && SQLSTATE.test(code)) {
    // 23: a constraint (foreign key, unique, check, not null) the input broke; 22: a value
    // the column cannot hold. The source layer names the field from `cause` (its column,
    // constraint or detail) where it can.
    if (code.startsWith('23') || code.startsWith('22')) {
      return new GatewayError('BAD_USER_INPUT', 'The input has a value out of range', {
        cause: error,
      });
    }
    // 57014 query_canceled (statement_timeout), 55P03 lock_not_available.
    if (code === '57014' || code === '55P03') return timedOut(error);
    // 08 connection exception, 53 insufficient resources (too many connections),
    // 57P01-03 shutdown / cannot connect now, 3D000 unknown database, 28 authentication.
    if (
      code.startsWith('08') ||
      code.startsWith('53') ||
      code.startsWith('57P') ||
      code === '3D000' ||
      code.startsWith('28')
    ) {
      return unavailable(error);
    }
    return new GatewayError('INTERNAL_SERVER_ERROR', 'The data backend failed', { cause: error });
  }
  if (code === 'ETIMEDOUT') return timedOut(error);
  if (code !== undefined && UNAVAILABLE_ERRNO.has(code)) return unavailable(error);
  const message = error instanceof Error ? error.message : String(error);
  // node-postgres: "timeout exceeded when trying to connect" (pool), "Connection terminated
  // due to connection timeout", "Query read timeout" (query_timeout).
  if (/timeout/i.test(message)) return timedOut(error);
  // "Connection terminated unexpectedly", "Client has encountered a connection error…",
  // "Cannot use a pool after calling end on the pool".
  if (/connection|terminated|pool/i.test(message)) return unavailable(error);
  return new GatewayError('INTERNAL_SERVER_ERROR', 'The data backend failed', { cause: error });
}
