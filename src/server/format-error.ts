import { unwrapResolverError } from '@apollo/server/errors';
import type { GraphQLFormattedError } from 'graphql';
import { isErrorCode } from '../errors.js';
import { gatewayErrorOf } from '../graphql/errors.js';

/** Apollo's own request-level codes that are the client's fault; shown as BAD_USER_INPUT. */
const CLIENT_CODES = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'BAD_USER_INPUT',
  'OPERATION_RESOLUTION_FAILURE',
]);
/** Protocol codes that Automatic Persisted Query clients act on; passed through unchanged. */
const PROTOCOL_CODES = new Set(['PERSISTED_QUERY_NOT_FOUND', 'PERSISTED_QUERY_NOT_SUPPORTED']);

export const MASKED_MESSAGE = 'Internal server error';

/** Apollo Server's own client messages that name it, in the gateway's words. */
const REWORDED: ReadonlyMap<string, string> = new Map([
  ['Apollo Server supports only GET/POST requests.', 'Only GET and POST requests are supported.'],
]);

/** graphql-js's suggestion at the end of a message (the pattern Apollo Server also strips). */
const SUGGESTION = / ?Did you mean(.+?)\?$/;

export interface FormatErrorOptions {
  /**
   * Drop graphql-js's "Did you mean …?" suggestions (NODE_ENV=production), from every message:
   * validation, variable coercion, enum values and input fields, under either executor. They
   * name schema members a client did not ask about.
   */
  hideSuggestions?: boolean | undefined;
}

/**
 * Every error a client sees carries a code from the one union (plus the APQ protocol codes).
 * GatewayErrors keep their safe message; graphql-js and Apollo client errors keep theirs under
 * BAD_USER_INPUT (with the original code as `reason`); everything else is masked. It never
 * throws: a formatter that throws would turn one bad error into a 500 for the whole response.
 */
export function formatError(
  formatted: GraphQLFormattedError,
  error: unknown,
  options: FormatErrorOptions = {},
): GraphQLFormattedError {
  try {
    const original = unwrapResolverError(error);
    let message = REWORDED.get(formatted.message) ?? formatted.message;
    if (options.hideSuggestions) message = message.replace(SUGGESTION, '');
    const base = { message, locations: formatted.locations, path: formatted.path };
    const coded = gatewayErrorOf(original);
    if (coded) {
      const { http: _http, ...extensions } = coded.extensions;
      return { ...base, message: coded.message, extensions };
    }
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && PROTOCOL_CODES.has(code)) {
      return { ...base, extensions: { code } };
    }
    if (typeof code === 'string' && CLIENT_CODES.has(code)) {
      return { ...base, extensions: { code: 'BAD_USER_INPUT', reason: code } };
    }
    if (typeof code === 'string' && isErrorCode(code) && code !== 'INTERNAL_SERVER_ERROR') {
      return { ...base, extensions: { code } };
    }
    return {
      message: MASKED_MESSAGE,
      path: formatted.path,
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    };
  } catch {
    return { message: MASKED_MESSAGE, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  }
}

/** The code of a GraphQL or gateway error as the client sees it (the mapping of responses). */
export function clientCode(error: unknown): string {
  const extensions = (error as { extensions?: Record<string, unknown> } | null)?.extensions;
  const message = error instanceof Error ? error.message : '';
  const code = formatError({ message, extensions }, error).extensions?.code;
  return typeof code === 'string' ? code : 'INTERNAL_SERVER_ERROR';
}
