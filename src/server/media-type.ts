import Negotiator from 'negotiator';

/**
 * The media types of a GraphQL answer (GraphQL over HTTP, "Media Types"). The HTTP adapter
 * negotiates once per request with {@link negotiateMediaType}; its own answers (401, 429, 413,
 * …) use the result, and Apollo Server is handed the same result as the request's `Accept`, so
 * every answer of a request has one media type.
 */
export const GRAPHQL_RESPONSE_JSON = 'application/graphql-response+json';
export const APPLICATION_JSON = 'application/json';
export type ResponseMediaType = typeof GRAPHQL_RESPONSE_JSON | typeof APPLICATION_JSON;

// Offered with the charset we send, so `Accept: application/json; charset=utf-8` matches (and
// another charset does not). On a tie (`*/*`, `application/*`) the first wins: application/json,
// which every client understands; the spec asks for it when the client does not say.
const OFFERED = [
  `${APPLICATION_JSON}; charset=utf-8`,
  `${GRAPHQL_RESPONSE_JSON}; charset=utf-8`,
] as const;

/**
 * The media type to answer with, or `undefined` when the client accepts neither (answer 406).
 * No `Accept` (or an empty one) means `application/json`, as the spec says for legacy clients.
 * With `application/graphql-response+json`, request errors keep their 4xx status; with
 * `application/json` they keep it too (README: "GraphQL over HTTP").
 */
export function negotiateMediaType(accept: string | undefined): ResponseMediaType | undefined {
  if (accept === undefined || accept.trim() === '') return APPLICATION_JSON;
  const known = negotiated.get(accept);
  if (known !== undefined) return known ?? undefined;
  const chosen = new Negotiator({ headers: { accept } }).mediaType([...OFFERED]);
  const type =
    chosen === undefined
      ? null
      : chosen.startsWith(GRAPHQL_RESPONSE_JSON)
        ? GRAPHQL_RESPONSE_JSON
        : APPLICATION_JSON;
  // Clients send a handful of distinct headers; an unbounded variety only costs re-parsing.
  if (negotiated.size >= NEGOTIATED_MAX) negotiated.clear();
  negotiated.set(accept, type);
  return type ?? undefined;
}

/**
 * The answers to the `Accept` headers seen last, by their text (`null`: 406). A function of the
 * header alone, like a compiled pattern: it holds no tenant's state.
 */
const negotiated = new Map<string, ResponseMediaType | null>();
/** Headers remembered at most; past it the memo starts again. */
export const NEGOTIATED_MAX = 64;

/** The `Content-Type` header of an answer in `type`. */
export function contentTypeOf(type: ResponseMediaType): string {
  return `${type}; charset=utf-8`;
}
