import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ApolloServer, HeaderMap, type HTTPGraphQLResponse } from '@apollo/server';
import { DEFAULT_BODY_TIMEOUT_MS } from '../config/schema.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { GatewayContext } from '../graphql/context.js';
import type { RequestDeadline } from '../limits/deadline.js';
import type { Logger } from '../telemetry/logger.js';
import { upstreamTraceparent } from '../telemetry/tracing.js';
import { tenantHintFromHost } from '../tenancy/resolve-tenant.js';
import type { Tenant } from '../tenancy/tenant.js';
import { checkRequestSize } from './operation-limits.js';
import {
  admitRequest,
  type ContextDependencies,
  createRequestContext,
  requestDeadline,
} from './context.js';
import { parseBody, readBody } from './body.js';
import { type CorsPolicy, isPreflight } from './cors.js';
import { formatError } from './format-error.js';
import {
  APPLICATION_JSON,
  contentTypeOf,
  negotiateMediaType,
  type ResponseMediaType,
} from './media-type.js';
import type { RequestObservation, RequestObserver } from './observability.js';
import { type PersistedQueries, persistedQueryNotFound } from './persisted-queries.js';
import { prefersHtml } from './playground.js';
import { withTimeout } from '../util/timeout.js';

export interface Probe {
  /** Resolves when the dependency answers; rejects (or times out) otherwise. */
  (): Promise<void>;
}

export interface HttpHandlerOptions extends ContextDependencies {
  /** The Apollo Server for a tenant's schema variant (started). */
  apolloFor(tenant: Tenant): Promise<ApolloServer<GatewayContext>>;
  bodyLimitBytes: number;
  /** Deadline of reading a request body; default DEFAULT_BODY_TIMEOUT_MS (then 408). */
  bodyTimeoutMs?: number | undefined;
  baseDomain?: string | undefined;
  /** Named readiness checks run by GET /readyz, each bounded by `probeTimeoutMs`. */
  readiness: Readonly<Record<string, Probe>>;
  probeTimeoutMs?: number;
  logger: Logger;
  /** Metrics, the per-request log line and the request span (server/observability.ts). */
  observer?: RequestObserver | undefined;
  /**
   * Automatic persisted queries and trusted documents, resolved per tenant after admission.
   * Omitted → requests reach Apollo Server as sent (which refuses the APQ extension).
   */
  persistedQueries?: PersistedQueries | undefined;
  /**
   * Answers browsers on the GraphQL paths (GET or HEAD preferring text/html), before auth: the
   * playground page. Omitted → browsers get the API's answer like any client.
   */
  playground?: ((req: IncomingMessage, res: ServerResponse) => Promise<void> | void) | undefined;
  /**
   * Cross-origin access to the GraphQL endpoints (server/cors.ts). Omitted → no CORS headers,
   * and every preflight is refused (403 `ORIGIN_NOT_ALLOWED`).
   */
  cors?: CorsPolicy | undefined;
  /** Extra routes (metrics, playground) answered before GraphQL routing. */
  routes?: Readonly<
    Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void>
  >;
}

const TENANT_PATH = /^\/t\/([^/]+)\/graphql\/?$/;

type Route = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

/**
 * The extra routes by path: a key ending in `/*` answers every path under that prefix (e.g.
 * `/admin/*`), any other key its path alone. Sorted out once, not per request.
 */
function routeTable(
  routes: Readonly<Record<string, Route>> | undefined,
): (path: string) => Route | undefined {
  const exact = new Map<string, Route>();
  const prefixes: [prefix: string, route: Route][] = [];
  for (const [key, route] of Object.entries(routes ?? {})) {
    if (key.endsWith('/*')) prefixes.push([key.slice(0, -1), route]);
    else exact.set(key, route);
  }
  return (path) => {
    const route = exact.get(path);
    if (route !== undefined) return route;
    for (const [prefix, under] of prefixes) if (path.startsWith(prefix)) return under;
    return undefined;
  };
}
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The path and query string of a request, as the WHATWG URL parser reads them. */
type RequestTarget = Pick<URL, 'pathname' | 'search'>;

/** A path that URL parsing leaves as it is: segments of word characters and hyphens only. */
const PLAIN_PATH = /^(?:\/[\w-]+)+\/?$/;

/**
 * The request target's path and query string. The usual one (`POST /graphql`, `/t/acme/graphql`)
 * needs no URL parse; anything else (a query string, escapes, dot segments, an absolute form)
 * goes through the WHATWG parser, which normalizes it.
 */
export function requestTarget(raw: string | undefined): RequestTarget {
  if (raw !== undefined && PLAIN_PATH.test(raw)) return { pathname: raw, search: '' };
  return new URL(raw ?? '/', 'http://gateway.invalid');
}
const GRAPHQL_PATH = /^\/graphql\/?$/;

/**
 * What every answer to one request shares, settled as the request goes: the media type
 * negotiated from `Accept` and, on the GraphQL endpoints, the CORS decision (which depends on
 * the tenant once the token names one).
 */
interface Answer {
  mediaType: ResponseMediaType;
  /** A GraphQL endpoint or an unknown path: answers carry CORS headers and `Vary`. */
  cors: boolean;
  /** The verified tenant, once admission knows it. */
  tenant?: Tenant | undefined;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  mediaType: ResponseMediaType = APPLICATION_JSON,
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'cache-control': 'no-store',
    ...headers,
    'content-type': contentTypeOf(mediaType),
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** A GraphQL-shaped error answer for refusals that happen before Apollo sees the request. */
function sendError(
  res: ServerResponse,
  error: GatewayError,
  headers: Record<string, string>,
  mediaType: ResponseMediaType,
): void {
  const formatted = formatError({ message: error.message, extensions: error.extensions }, error);
  sendJson(
    res,
    error.status ?? 500,
    { errors: [formatted] },
    { ...error.headers, ...headers },
    mediaType,
  );
}

/**
 * The request's headers for Apollo Server, without `Accept`: the adapter has negotiated the
 * media type already (the one place where it is chosen) and writes it on the answer
 * ({@link writeResponse}). Without `Accept`, Apollo answers `application/json` without
 * negotiating its content type again (the negotiation of its incremental-delivery formats still
 * runs on every execution); it never answers incrementally either way (the negotiated type is
 * never multipart).
 */
function toHeaderMap(req: IncomingMessage): HeaderMap {
  const headers = new HeaderMap();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === 'accept') continue;
    headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return headers;
}

function notAcceptable(): GatewayError {
  return new GatewayError(
    'BAD_USER_INPUT',
    `The Accept header admits neither ${APPLICATION_JSON} nor application/graphql-response+json.`,
    { status: 406, extensions: { reason: 'NOT_ACCEPTABLE' } },
  );
}

function originNotAllowed(): GatewayError {
  return new GatewayError('FORBIDDEN', 'Cross-origin requests from this origin are not allowed.', {
    extensions: { reason: 'ORIGIN_NOT_ALLOWED' },
  });
}

async function writeResponse(
  res: ServerResponse,
  response: HTTPGraphQLResponse,
  mediaType: ResponseMediaType,
  extra: Record<string, string>,
): Promise<void> {
  // Tenant- and caller-specific: never stored by a shared or browser cache, unless the answer
  // says otherwise (a persisted-query miss asks for revalidation).
  res.setHeader('cache-control', 'no-store');
  for (const [name, value] of response.headers) res.setHeader(name, value);
  for (const [name, value] of Object.entries(extra)) res.setHeader(name, value);
  // The type the adapter negotiated; Apollo, which never saw `Accept`, said application/json.
  if (response.body.kind === 'complete') res.setHeader('content-type', contentTypeOf(mediaType));
  res.statusCode = response.status ?? 200;
  if (response.body.kind === 'complete') {
    res.end(response.body.string);
    return;
  }
  for await (const chunk of response.body.asyncIterator) res.write(chunk);
  res.end();
}

/**
 * The node:http adapter: routing, body limits and the hand-off to Apollo Server's
 * `executeHTTPGraphQLRequest`. Whatever happens inside, the client gets a coded JSON answer;
 * an unexpected error is logged and masked, never sent with a stack.
 */
export function createHttpHandler(options: HttpHandlerOptions) {
  const { logger } = options;
  const probeTimeoutMs = options.probeTimeoutMs ?? 2_000;
  const routeOf = routeTable(options.routes);

  async function ready(res: ServerResponse): Promise<void> {
    const entries = await Promise.all(
      Object.entries(options.readiness).map(async ([name, probe]) => {
        try {
          await withTimeout(probe(), probeTimeoutMs, () => {
            throw new Error(`no answer within ${probeTimeoutMs} ms`);
          });
          return [name, 'ok'] as const;
        } catch (error) {
          logger.warn({ check: name, err: (error as Error).message }, 'readiness check failed');
          return [name, 'unavailable'] as const;
        }
      }),
    );
    const checks = Object.fromEntries(entries);
    const ok = entries.every(([, state]) => state === 'ok');
    sendJson(res, ok ? 200 : 503, { status: ok ? 'ok' : 'unavailable', checks });
  }

  /** Headers every answer of the request carries: its id, and CORS where it applies. */
  function answerHeaders(
    req: IncomingMessage,
    answer: Answer,
    requestId: string,
  ): Record<string, string> {
    if (!answer.cors) return { 'x-request-id': requestId };
    return {
      // The body's type follows Accept and the CORS headers follow Origin, allowed or not.
      vary: 'Accept, Origin',
      ...options.cors?.response(req.headers.origin, answer.tenant),
      'x-request-id': requestId,
    };
  }

  /**
   * A CORS preflight, answered before auth: it carries no token (see server/cors.ts). A
   * refused one gets a coded body and no CORS headers at all, so the browser stops there.
   */
  function preflight(
    req: IncomingMessage,
    res: ServerResponse,
    pathTenant: string | undefined,
    answer: Answer,
    requestId: string,
  ): void {
    const origin = req.headers.origin ?? '';
    const hint = pathTenant ?? tenantHintFromHost(req.headers.host, options.baseDomain);
    const headers = options.cors?.preflight(origin, hint);
    const common = { vary: 'Origin', 'x-request-id': requestId };
    if (headers === undefined) {
      return sendError(res, originNotAllowed(), common, answer.mediaType);
    }
    res.writeHead(204, { ...headers, ...common, 'content-length': '0' });
    res.end();
  }

  async function graphql(
    req: IncomingMessage,
    res: ServerResponse,
    url: RequestTarget,
    pathTenant: string | undefined,
    requestId: string,
    answer: Answer,
  ): Promise<void> {
    const route = pathTenant === undefined ? '/graphql' : '/t/{tenant}/graphql';
    const observation = options.observer?.start(req, res, requestId, route);
    if (observation === undefined)
      return serveGraphql(req, res, url, pathTenant, requestId, answer);
    try {
      await observation.run(() =>
        serveGraphql(req, res, url, pathTenant, requestId, answer, observation),
      );
    } catch (error) {
      observation.fail(error);
      throw error;
    }
  }

  async function serveGraphql(
    req: IncomingMessage,
    res: ServerResponse,
    url: RequestTarget,
    pathTenant: string | undefined,
    requestId: string,
    answer: Answer,
    observation?: RequestObservation,
  ): Promise<void> {
    // Admission before the body is read: a refused request costs no parsing.
    const admitted = await admitRequest(options, {
      authorization: req.headers.authorization,
      hints: [pathTenant, tenantHintFromHost(req.headers.host, options.baseDomain)],
      onTenant: (tenant) => {
        answer.tenant = tenant;
        observation?.onTenant(tenant);
      },
    });
    // The admission (the tenant's concurrency lease) ends with the request however it ends:
    // answered or failed (finally below), or its client gone. A client gone before the answer
    // also ends the request's deadline, so its pending backend calls stop being waited for.
    let deadline: RequestDeadline | undefined;
    let gone = false;
    const onClose = (): void => {
      if (!res.writableFinished) {
        gone = true;
        deadline?.end();
      }
      admitted.admission.release();
    };
    res.once('close', onClose);
    try {
      const method = req.method ?? 'GET';
      const text =
        method === 'POST'
          ? await readBody(
              req,
              options.bodyLimitBytes,
              options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
            )
          : '';
      let body = parseBody(text, req.headers['content-type']);
      let search = url.search;
      let register: (() => Promise<void>) | undefined;
      if (options.persistedQueries) {
        const resolved = await options.persistedQueries.resolve(admitted.tenant, {
          method,
          search,
          body,
        });
        if (resolved.kind === 'not-found') {
          const notFound = persistedQueryNotFound(answer.mediaType);
          return sendJson(
            res,
            notFound.status,
            notFound.body,
            {
              ...notFound.headers,
              ...admitted.admission.headers,
              ...answerHeaders(req, answer, requestId),
            },
            answer.mediaType,
          );
        }
        ({ search, body, register } = resolved);
      }
      // Before Apollo parses, validates and executes: an oversized document costs a bounded lexer
      // pass and no AST; fragment fan-out a bounded parse and a linear count, nothing expanded.
      checkRequestSize(
        { method, search, body },
        admitted.tenant.limits.operation,
        admitted.tenant.id,
      );
      const apollo = await options.apolloFor(admitted.tenant);
      const response = await apollo.executeHTTPGraphQLRequest({
        httpGraphQLRequest: {
          method,
          headers: toHeaderMap(req),
          search,
          body,
        },
        context: () => {
          deadline = requestDeadline(options);
          if (gone) deadline.end();
          const context = createRequestContext(
            options,
            {
              ...admitted,
              traceparent: observation
                ? observation.traceparent
                : upstreamTraceparent(req.headers.traceparent),
            },
            requestId,
            deadline,
          );
          observation?.bind(context);
          return Promise.resolve(context);
        },
      });
      // A persisted query is kept only once it has run: what validation or limits refused
      // costs no storage.
      if (register && (response.status ?? 200) < 300) await register();
      await writeResponse(res, response, answer.mediaType, {
        ...admitted.admission.headers,
        ...answerHeaders(req, answer, requestId),
      });
    } finally {
      res.off('close', onClose);
      admitted.admission.release();
    }
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const header = req.headers['x-request-id'];
    const requestId = typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
    const negotiated = negotiateMediaType(req.headers.accept);
    // With nothing acceptable, the 406 (and any other refusal) is plain JSON.
    const answer: Answer = { mediaType: negotiated ?? APPLICATION_JSON, cors: false };
    try {
      const url = requestTarget(req.url);
      const path = url.pathname;
      const extra = routeOf(path);
      if (extra) return await extra(req, res);
      if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
      if (path === '/readyz') return await ready(res);
      const match = TENANT_PATH.exec(path);
      const page = options.playground;
      if (
        page &&
        (req.method === 'GET' || req.method === 'HEAD') &&
        (match || GRAPHQL_PATH.test(path)) &&
        prefersHtml(req.headers.accept)
      )
        return await page(req, res);
      answer.cors = true;
      if (!match && !GRAPHQL_PATH.test(path)) {
        throw new GatewayError('BAD_USER_INPUT', `No route for ${path}.`, {
          status: 404,
          extensions: { reason: 'NOT_FOUND' },
        });
      }
      let pathTenant: string | undefined;
      if (match) {
        try {
          pathTenant = decodeURIComponent(match[1] ?? '');
        } catch {
          pathTenant = '';
        }
      }
      if (isPreflight(req)) return preflight(req, res, pathTenant, answer, requestId);
      if (negotiated === undefined) throw notAcceptable();
      return await graphql(req, res, url, pathTenant, requestId, answer);
    } catch (error) {
      if (res.headersSent) {
        logger.error({ err: error, requestId }, 'error after the response started');
        res.destroy();
        return;
      }
      const headers = answerHeaders(req, answer, requestId);
      if (isGatewayError(error)) return sendError(res, error, headers, answer.mediaType);
      logger.error({ err: error, requestId }, 'unexpected error in the HTTP handler');
      sendError(
        res,
        new GatewayError('INTERNAL_SERVER_ERROR', 'Internal server error'),
        headers,
        answer.mediaType,
      );
    }
  };
}
