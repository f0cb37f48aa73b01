/**
 * The one union of error codes a client can see. Anything else is masked as
 * `INTERNAL_SERVER_ERROR` by the error formatter.
 */
export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'TENANT_MISMATCH'
  | 'TENANT_NOT_FOUND'
  | 'TENANT_MISCONFIGURED'
  | 'RATE_LIMITED'
  | 'OPERATION_LIMIT'
  | 'BAD_USER_INPUT'
  | 'BACKEND_UNAVAILABLE'
  | 'BACKEND_TIMEOUT'
  | 'INTERNAL_SERVER_ERROR';

/**
 * HTTP status a code maps to when it ends the request. `undefined` means the error is a field
 * error inside a partial result: the response stays 200.
 */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number | undefined>> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  TENANT_MISMATCH: 403,
  TENANT_NOT_FOUND: 403,
  /** The tenant's database does not fit the schema's bindings (the log names what). */
  TENANT_MISCONFIGURED: 403,
  RATE_LIMITED: 429,
  OPERATION_LIMIT: 400,
  BAD_USER_INPUT: 400,
  BACKEND_UNAVAILABLE: undefined,
  BACKEND_TIMEOUT: undefined,
  INTERNAL_SERVER_ERROR: 500,
};

const CODES = new Set<string>(Object.keys(HTTP_STATUS));

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && CODES.has(value);
}

export interface GatewayErrorOptions {
  /** The underlying error; kept for logs, never sent to clients. */
  cause?: unknown;
  /** Extra response headers when this error ends the request (e.g. `WWW-Authenticate`). */
  headers?: Readonly<Record<string, string>>;
  /** Extra, client-safe extensions (e.g. `retryAfterSeconds`). */
  extensions?: Readonly<Record<string, unknown>>;
  /** Override the status from `HTTP_STATUS` (rarely needed). */
  status?: number;
  /**
   * The error ends the whole request (auth, tenancy, limits, body): its status and headers
   * become the response's. Field errors leave this off, so a partial result stays HTTP 200.
   */
  request?: boolean;
}

/**
 * A request error with a stable `code`. Lower layers throw it as a plain coded error (like jose's
 * typed errors, it knows nothing of GraphQL); the GraphQL layer and the HTTP adapter turn it into
 * a response (`src/graphql/errors.ts` `toGraphQLError`, `src/server/format-error.ts`). Its
 * message must be safe to show a client.
 */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number | undefined;
  readonly headers: Readonly<Record<string, string>>;
  /**
   * What a client sees under `extensions`: the code, the extra details and, for a request error,
   * `http` (status and headers), which Apollo Server reads to set the response, then strips. A
   * GraphQL error made from this one (graphql-js does so for a resolver's throw) takes these.
   */
  readonly extensions: Readonly<Record<string, unknown>>;
  /** The underlying error; kept for logs, never sent to clients. */
  readonly originalError: Error | undefined;

  constructor(code: ErrorCode, message: string, options: GatewayErrorOptions = {}) {
    const originalError = options.cause instanceof Error ? options.cause : undefined;
    super(message, originalError ? { cause: originalError } : undefined);
    const status = options.status ?? HTTP_STATUS[code];
    const headers = options.headers ?? {};
    const extensions: Record<string, unknown> = { ...options.extensions, code };
    if (options.request && status !== undefined) {
      extensions.http = { status, headers: new Map(Object.entries(headers)) };
    }
    this.name = 'GatewayError';
    this.code = code;
    this.status = status;
    this.headers = headers;
    this.extensions = extensions;
    this.originalError = originalError;
  }
}

export function isGatewayError(error: unknown): error is GatewayError {
  return error instanceof GatewayError;
}

/** The same error, marked to end the request with its status and headers. */
export function asRequestError(error: GatewayError): GatewayError {
  if (error.extensions.http !== undefined) return error;
  const { code: _code, ...extensions } = error.extensions;
  return new GatewayError(error.code, error.message, {
    cause: error.originalError ?? error,
    headers: error.headers,
    extensions,
    status: error.status,
    request: true,
  });
}

/** For exhaustive switches: a compile error when a case is missing, a thrown error at run time. */
export function unreachable(value: never): never {
  throw new TypeError(`Unreachable case: ${JSON.stringify(value)}`);
}
