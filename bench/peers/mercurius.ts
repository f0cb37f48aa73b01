/**
 * Peer (b): mercurius on fastify 5 as its docs teach — the schema and resolvers registered with
 * the plugin, graphql-jit after the first run of an operation (`jit: 1`), every per-parent
 * field batched by mercurius `loaders` (one call per field per request), the request
 * authenticated in a fastify `preHandler` hook and handed to resolvers by `context`.
 */
import Fastify, { type FastifyRequest } from 'fastify';
import mercurius, {
  type IResolvers,
  type MercuriusContext,
  type MercuriusLoaders,
} from 'mercurius';
import {
  announce,
  authenticate,
  churnFeatures,
  churnScores,
  closeBackends,
  type Customer,
  customersByIds,
  customersPage,
  DateTime,
  ordersByCustomers,
  PeerError,
  port,
  type Principal,
  requireScope,
  typeDefs,
} from './common.js';

declare module 'mercurius' {
  interface MercuriusContext {
    principal: Principal;
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

const app = Fastify();
app.decorateRequest('principal', null);

app.addHook('preHandler', async (request: FastifyRequest, reply) => {
  try {
    request.principal = await authenticate(request.headers.authorization);
  } catch (error) {
    if (!(error instanceof PeerError)) throw error;
    return reply
      .code(error.status)
      .send({ data: null, errors: [{ message: error.message, extensions: { code: error.code } }] });
  }
});

const resolvers: IResolvers = {
  DateTime,
  Query: {
    viewer: (_root, _args, { principal }: MercuriusContext) => principal,
    customer: async (_root, { id }: { id: string }, { principal }: MercuriusContext) => {
      requireScope(principal, 'read');
      return (await customersByIds(principal.tenant, [id]))[0];
    },
    customers: (
      _root,
      args: { first?: number | null; after?: string | null },
      { principal }: MercuriusContext,
    ) => {
      requireScope(principal, 'read');
      return customersPage(principal.tenant, args);
    },
  },
};

type Query<P> = { obj: Customer; params: P };

const loaders: MercuriusLoaders = {
  Customer: {
    async orders(queries: Query<{ first?: number | null }>[], { principal }) {
      // Queries of one request may ask different sizes: one statement per size.
      const bySize = new Map<number, Query<{ first?: number | null }>[]>();
      for (const query of queries) {
        const first = query.params.first ?? 10;
        bySize.set(first, [...(bySize.get(first) ?? []), query]);
      }
      const answers = new Map<Query<unknown>, unknown>();
      await Promise.all(
        [...bySize].map(async ([first, group]) => {
          const orders = await ordersByCustomers(
            principal.tenant,
            group.map((q) => q.obj.id),
            first,
          );
          group.forEach((q, i) => answers.set(q, orders[i]));
        }),
      );
      return queries.map((q) => answers.get(q));
    },
    churnRisk: (queries: Query<unknown>[], { principal }) =>
      churnScores(
        principal.tenant,
        queries.map((q) => churnFeatures(principal.tenant, q.obj)),
      ),
  },
};

await app.register(mercurius, {
  schema: typeDefs,
  resolvers,
  loaders,
  jit: 1,
  context: (request: FastifyRequest) => ({ principal: request.principal }),
});

await app.listen({ host: '127.0.0.1', port });
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error('no TCP address');
announce(`http://127.0.0.1:${address.port}`);

process.once('SIGTERM', () => {
  void app
    .close()
    .then(closeBackends)
    .finally(() => process.exit(0));
});
