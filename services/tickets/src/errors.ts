/** Error codes of the tickets service's JSON error bodies `{ "error": "...", "code": "..." }`. */
export type TicketsErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'BAD_REQUEST'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'JWKS_UNAVAILABLE'
  | 'INJECTED_FAULT'
  | 'INTERNAL';

/** An answer other than 200, with its status and code. */
export class TicketsError extends Error {
  constructor(
    readonly status: number,
    readonly code: TicketsErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'TicketsError';
  }
}
