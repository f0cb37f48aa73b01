/**
 * Peer (c): graphql-yoga 5 on node:http as its docs teach — `createYoga` with `createSchema`
 * and a `context` function that authenticates the request and builds its DataLoaders, served
 * by `createServer(yoga)` at Yoga's default endpoint `/graphql`.
 */
import { createServer } from 'node:http';
import { createGraphQLError, createSchema, createYoga } from 'graphql-yoga';
import {
  announce,
  authenticate,
  closeBackends,
  createRequestLoaders,
  type LoaderContext,
  loaderResolvers,
  PeerError,
  port,
  typeDefs,
} from './common.js';

const yoga = createYoga({
  schema: createSchema<LoaderContext>({ typeDefs, resolvers: loaderResolvers }),
  context: async ({ request }): Promise<LoaderContext> => {
    try {
      const principal = await authenticate(request.headers.get('authorization'));
      return { principal, loaders: createRequestLoaders(principal.tenant) };
    } catch (error) {
      if (!(error instanceof PeerError)) throw error;
      throw createGraphQLError(error.message, {
        extensions: { code: error.code, http: { status: error.status } },
      });
    }
  },
});

const server = createServer(yoga);
server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  announce(`http://127.0.0.1:${address.port}`);
});

process.once('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => {
    void closeBackends().finally(() => process.exit(0));
  });
});
