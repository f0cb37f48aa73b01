/**
 * Peer (a): Apollo Server 5 as its docs teach — `startStandaloneServer` with a `context`
 * function that authenticates the request and builds its DataLoaders, all defaults otherwise
 * (the docs' landing page, cache-control and usage plugins included).
 */
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { GraphQLError } from 'graphql';
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

const server = new ApolloServer<LoaderContext>({ typeDefs, resolvers: loaderResolvers });

const { url } = await startStandaloneServer(server, {
  listen: { host: '127.0.0.1', port },
  context: async ({ req }) => {
    try {
      const principal = await authenticate(req.headers.authorization);
      return { principal, loaders: createRequestLoaders(principal.tenant) };
    } catch (error) {
      if (!(error instanceof PeerError)) throw error;
      // As the docs' "Authentication and authorization" page: a GraphQLError with the status.
      throw new GraphQLError(error.message, {
        extensions: { code: error.code, http: { status: error.status } },
      });
    }
  },
});

process.once('SIGTERM', () => {
  void server
    .stop()
    .then(closeBackends)
    .finally(() => process.exit(0));
});
announce(url.replace(/\/$/, ''));
