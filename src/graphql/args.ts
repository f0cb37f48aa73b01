import { GatewayError } from '../errors.js';

/** Validates a page size argument; lists are bounded so one query cannot ask for everything. */
export function pageSize(
  value: number | null | undefined,
  fallback: number,
  max: number,
  name = 'first',
): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new GatewayError('BAD_USER_INPUT', `"${name}" must be between 1 and ${max}; got ${n}.`, {
      extensions: { argument: name },
    });
  }
  return n;
}

const CURSOR_PREFIX = 'c1:';

/** Opaque cursors: clients must not build them, so their format may change. */
export function encodeCursor(id: string): string {
  return Buffer.from(CURSOR_PREFIX + id, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | null | undefined): string | undefined {
  if (cursor === null || cursor === undefined) return undefined;
  const text = cursor.length <= 200 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  if (!text.startsWith(CURSOR_PREFIX) || text.length === CURSOR_PREFIX.length) {
    throw new GatewayError('BAD_USER_INPUT', 'Invalid cursor "after".', {
      extensions: { argument: 'after' },
    });
  }
  return text.slice(CURSOR_PREFIX.length);
}
