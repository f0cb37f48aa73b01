import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { type GraphQLSchema } from 'graphql';
import { type GatewayContext } from '../graphql/context.js';
import { formatError } from './format-error.js';
import { createHttpHandler, type HttpHandlerOptions } from './http-handler.js';

export interface GatewayOptions extends Omit<HttpHandlerOptions, 'apollo'> {
  schema: GraphQLSchema;
  /** NODE_ENV=production: no field suggestions in validation errors. */
  production: boolean;
  /** How long SIGTERM waits for in-flight requests before closing connections. */
  drainTimeoutMs: number;
  /** Closed after the HTTP server has drained (pools, Redis, child processes). */
  onStopped?: () => Promise<void>;
}

export interface Gateway {
  readonly httpServer: Server;
  readonly apollo: ApolloServer<GatewayContext>;
  /** Starts Apollo and listens; resolves to the base URL. */
  listen(port: number, host: string): Promise<string>;
  /** Stops accepting, lets in-flight requests finish (up to the drain timeout), then closes. */
  stop(): Promise<void>;
}

export function createGateway(options: GatewayOptions): Gateway {
  const httpServer = createServer({
    requestTimeout: 30_000,
    headersTimeout: 10_000,
    keepAliveTimeout: 5_000,
  });
  const apollo = new ApolloServer<GatewayContext>({
    schema: options.schema,
    formatError,
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: options.production,
    allowBatchedHttpRequests: false,
    csrfPrevention: true,
    logger: {
      debug: (m) => options.logger.debug(m),
      info: (m) => options.logger.info(m),
      warn: (m) => options.logger.warn(m),
      error: (m) => options.logger.error(m),
    },
    plugins: [
      ApolloServerPluginDrainHttpServer({
        httpServer,
        stopGracePeriodMillis: options.drainTimeoutMs,
      }),
      ApolloServerPluginLandingPageDisabled(),
      {
        async requestDidStart() {
          return {
            async didEncounterErrors({ errors, contextValue }) {
              for (const error of errors) {
                const original = error.originalError;
                if (original && !('extensions' in original)) {
                  contextValue.log?.error({ err: original, path: error.path }, 'resolver error');
                }
              }
            },
          };
        },
      },
    ],
  });
  const handle = createHttpHandler({ ...options, apollo });
  httpServer.on('request', (req, res) => {
    void handle(req, res);
  });
  // A malformed request line or header never reaches the handler; answer it and move on.
  httpServer.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  let stopping: Promise<void> | undefined;
  return {
    httpServer,
    apollo,
    async listen(port, host) {
      await apollo.start();
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
        await apollo.stop();
        await options.onStopped?.();
      })();
      return stopping;
    },
  };
}
