import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ApolloServer, type ApolloServerPlugin, type GraphQLRequestListener } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import type { GraphQLSchema } from 'graphql';
import { DEFAULT_EXECUTOR } from '../config/schema.js';
import type { GatewayContext } from '../graphql/context.js';
import { createCompileBudget, createJitGateway, type JitGatewayOptions } from '../graphql/jit.js';
import type { Logger } from '../telemetry/logger.js';
import type { Tenant } from '../tenancy/tenant.js';
import { withTimeout } from '../util/timeout.js';
import { clientCode, formatError } from './format-error.js';
import { createHttpHandler, type HttpHandlerOptions } from './http-handler.js';
import { createSchemaSdlRoute } from './schema-sdl.js';

export interface GatewayOptions extends Omit<HttpHandlerOptions, 'apolloFor'> {
  /** The full schema. */
  schema: GraphQLSchema;
  /**
   * The schema a tenant sees (its feature variant). Must return the same object for the same
   * variant: one Apollo Server is kept per distinct schema. Default: `schema` for everyone.
   */
  schemaFor?: ((tenant: Tenant) => GraphQLSchema) | undefined;
  /** Extra Apollo plugins (operation limits, persisted queries, metrics). */
  plugins?: readonly ApolloServerPlugin<GatewayContext>[] | undefined;
  /** NODE_ENV=production: no "Did you mean …?" suggestions in any error a client sees. */
  production: boolean;
  /** What executes operations; default DEFAULT_EXECUTOR (`graphql-jit`, on its safe subset). */
  executor?: 'graphql-js' | 'graphql-jit' | undefined;
  /** graphql-jit settings (compile threshold, cache size, budget); only with `executor: 'graphql-jit'`. */
  jit?: JitGatewayOptions | undefined;
  /** How long a stop waits for in-flight requests before closing connections. */
  drainTimeoutMs: number;
  /** Closed after the HTTP server has drained (pools, Redis, child processes). */
  onStopped?: () => Promise<void>;
}

export interface Gateway {
  readonly httpServer: Server;
  /** Starts listening; resolves to the base URL. */
  listen(port: number, host: string): Promise<string>;
  /** Stops accepting, lets in-flight requests finish (up to the drain timeout), then closes. */
  stop(): Promise<void>;
  /** Requests being answered now. */
  inFlight(): number;
}

function apolloLogger(logger: Logger) {
  return {
    debug: (m: string) => logger.debug(m),
    info: (m: string) => logger.info(m),
    warn: (m: string) => logger.warn(m),
    error: (m: string) => logger.error(m),
  };
}

/**
 * Headers that make a request "not simple" for Apollo's CSRF prevention, which otherwise refuses
 * GET (and form or text POSTs) without them. A browser sends none of these cross-site without a
 * CORS preflight, and never adds `Authorization: Bearer` by itself; every GraphQL request needs
 * that header (401 before Apollo otherwise), so urql, graphql-request and APQ GETs work while
 * a cross-site form still cannot reach Apollo. Apollo's own two are kept for its clients.
 */
const CSRF_SAFE_HEADERS = ['authorization', 'x-apollo-operation-name', 'apollo-require-preflight'];

/**
 * Logs, at error level with the request id, every error of a request that the client sees
 * masked as INTERNAL_SERVER_ERROR: a resolver's uncoded throw, a null in a non-null field (an
 * error with no `originalError`), an uncoded GraphQLError, an executor's own error. The client
 * sees only "Internal server error"; this line is how an operator finds out what it was.
 */
function logUnexpectedErrors(logger: Logger): ApolloServerPlugin<GatewayContext> {
  // One listener for every request: it keeps nothing of its own.
  const listener: GraphQLRequestListener<GatewayContext> = {
    async didEncounterErrors({ errors, contextValue, operationName }) {
      for (const error of errors) {
        if (clientCode(error) !== 'INTERNAL_SERVER_ERROR') continue;
        // The request's logger carries its id and tenant; a failure before the context
        // exists has neither.
        const log = contextValue.log ?? logger.child({ requestId: contextValue.requestId });
        log.error(
          { err: error.originalError ?? error, path: error.path, operationName },
          'unexpected error in a GraphQL request',
        );
      }
    },
  };
  return {
    async requestDidStart() {
      return listener;
    },
  };
}

/** The coded body of an answer Node's HTTP layer gives without our handler. */
function protocolErrorBody(reason: string): string {
  return JSON.stringify({
    errors: [
      { message: `${reason}.`, extensions: { code: 'BAD_USER_INPUT', reason: 'MALFORMED_HTTP' } },
    ],
  });
}

/** A complete raw HTTP answer with a coded body, for sockets no handler of ours owns. */
function rawErrorResponse(status: number, reason: string, extra = ''): string {
  const body = protocolErrorBody(reason);
  return (
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n${extra}` +
    `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/** The answer to a request Node's parser refused (431 for oversized headers). */
function clientErrorResponse(code: string | undefined): string {
  if (code === 'HPE_HEADER_OVERFLOW')
    return rawErrorResponse(431, 'Request Header Fields Too Large');
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return rawErrorResponse(408, 'Request Timeout');
  return rawErrorResponse(400, 'Bad Request');
}

/** What one Apollo Server of the gateway is built from (see {@link createApolloServer}). */
export type ApolloServerSettings = Pick<
  GatewayOptions,
  'production' | 'executor' | 'jit' | 'plugins' | 'logger'
>;

/**
 * The Apollo Server the gateway runs for one schema variant (not started): the executor, error
 * formatting, introspection left to the plan, and the gateway's own plugins. Exported so tests
 * can run documents through exactly this pipeline (e.g. both executors side by side).
 */
export function createApolloServer(
  schema: GraphQLSchema,
  options: ApolloServerSettings,
): ApolloServer<GatewayContext> {
  return new ApolloServer<GatewayContext>({
    // graphql-jit plugs in through Apollo's gateway seam (AS5 has no executor option).
    ...((options.executor ?? DEFAULT_EXECUTOR) === 'graphql-jit'
      ? {
          gateway: createJitGateway(schema, {
            ...options.jit,
            onCompile:
              options.jit?.onCompile ??
              ((event) => options.logger.debug(event, 'graphql-jit plan')),
          }),
        }
      : { schema }),
    // The plan decides (operationLimitsPlugin refuses `__schema`/`__type` with
    // OPERATION_LIMIT where it disallows them); Apollo's own default would refuse them for
    // everyone under NODE_ENV=production.
    introspection: true,
    // In production no suggestion reaches a client: the formatter drops them from every message
    // (variable coercion runs inside execution, where no option reaches); validation does not
    // compute them at all.
    formatError: (formatted, error) =>
      formatError(formatted, error, { hideSuggestions: options.production }),
    validationOptions: { hideSuggestions: options.production },
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: options.production,
    allowBatchedHttpRequests: false,
    // Compact JSON: Apollo's default pretty-prints every answer (two-space indentation), which
    // on a list of a few hundred objects is a third more bytes to build, send and parse.
    stringifyResult: (result) => JSON.stringify(result),
    // APQ runs in the HTTP path, per tenant (server/persisted-queries.ts): Apollo's cache
    // has no tenant in its keys.
    persistedQueries: false,
    csrfPrevention: { requestHeaders: CSRF_SAFE_HEADERS },
    // The gateway drains on SIGTERM itself (stop()). Apollo's own handlers (on by default
    // outside NODE_ENV=test) would stop this server mid-drain, failing in-flight requests
    // with 500s, and then re-raise the signal, which main.ts takes as a second one.
    stopOnTerminationSignals: false,
    logger: apolloLogger(options.logger),
    plugins: [
      ApolloServerPluginLandingPageDisabled(),
      // Every answer is one tenant's and one caller's: nothing may be cached on the way, so
      // the HTTP layer sends `cache-control: no-store` itself. Apollo's cache-control plugin
      // (on by default) would compute a cache policy per resolved field only to arrive at the
      // same header; without it no plugin hooks every field, and Apollo leaves the resolvers
      // unwrapped.
      ApolloServerPluginCacheControlDisabled(),
      logUnexpectedErrors(options.logger),
      ...(options.plugins ?? []),
    ],
  });
}

export function createGateway(options: GatewayOptions): Gateway {
  const httpServer = createServer({
    requestTimeout: 30_000,
    headersTimeout: 10_000,
    keepAliveTimeout: 5_000,
  });
  const schemaFor = options.schemaFor ?? (() => options.schema);
  // One Apollo Server per schema variant, held only as long as its schema is: a variant that
  // tenant changes replace (a new realm, other models) takes its server with it when nothing
  // serves it any more. Apollo Servers hold no sockets or timers here (no signal handlers, no
  // reporting), so dropping one unstopped leaks nothing; stop() stops those still alive.
  const servers = new WeakMap<GraphQLSchema, Promise<ApolloServer<GatewayContext>>>();
  const started = new Set<WeakRef<ApolloServer<GatewayContext>>>();
  // One compile budget for every variant's graphql-jit: however many variants tenants have, the
  // process spends at most its budget's share of the event loop compiling.
  const settings: ApolloServerSettings = {
    ...options,
    jit: { ...options.jit, compileBudget: options.jit?.compileBudget ?? createCompileBudget() },
  };

  function apolloFor(tenant: Tenant): Promise<ApolloServer<GatewayContext>> {
    const schema = schemaFor(tenant);
    let server = servers.get(schema);
    if (!server) {
      const apollo = createApolloServer(schema, settings);
      server = apollo.start().then(() => {
        for (const ref of started) if (ref.deref() === undefined) started.delete(ref);
        started.add(new WeakRef(apollo));
        return apollo;
      });
      // A failed start is not cached: the next request tries again.
      server.catch(() => servers.delete(schema));
      servers.set(schema, server);
    }
    return server;
  }

  const handle = createHttpHandler({
    ...options,
    apolloFor,
    routes: {
      '/schema.graphql': createSchemaSdlRoute({ ...options, schemaFor }),
      ...options.routes,
    },
  });
  let active = 0;
  const idle: (() => void)[] = [];
  httpServer.on('request', (req, res) => {
    active += 1;
    res.once('close', () => {
      active -= 1;
      if (active === 0) idle.splice(0).forEach((resolve) => resolve());
    });
    void handle(req, res);
  });
  // A malformed request line or header never reaches the handler; answer it (coded, like every
  // other refusal) and move on.
  httpServer.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (socket.writable) socket.end(clientErrorResponse(error.code));
    else socket.destroy();
  });

  // CONNECT (proxying) is not served; without a listener Node would drop the socket silently.
  httpServer.on('connect', (_req, socket: Socket) => {
    socket.end(rawErrorResponse(405, 'Method Not Allowed', 'Allow: GET, POST\r\n'));
  });

  // Node answers an unknown `Expect` with a bare 417; give it the same coded body.
  httpServer.on('checkExpectation', (_req, res) => {
    const body = protocolErrorBody('Expectation Failed');
    res.writeHead(417, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body);
  });

  let stopping: Promise<void> | undefined;
  async function drain(): Promise<void> {
    // Stop accepting; idle keep-alive sockets close now, busy ones after their response.
    const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
    httpServer.closeIdleConnections();
    if (active > 0) {
      // Past the drain timeout the remaining connections are closed below.
      await withTimeout(
        new Promise<void>((resolve) => idle.push(resolve)),
        options.drainTimeoutMs,
        () => undefined,
      );
    }
    httpServer.closeAllConnections();
    await closed;
  }

  return {
    httpServer,
    inFlight: () => active,
    async listen(port, host) {
      await new Promise<void>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(port, host, () => {
          httpServer.off('error', reject);
          resolve();
        });
      });
      const address = httpServer.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${shownHost}:${address.port}`;
    },
    stop() {
      stopping ??= (async () => {
        await drain();
        await Promise.allSettled([...started].flatMap((ref) => ref.deref()?.stop() ?? []));
        await options.onStopped?.();
      })();
      return stopping;
    },
  };
}
