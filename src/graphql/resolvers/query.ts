import { decodeCursor, pageSize } from '../args.js';
import type { QueryResolvers } from '../generated/resolvers-types.js';

export const MAX_PAGE_SIZE = 200;

export const Query: QueryResolvers = {
  viewer: (_parent, _args, { principal, tenant }) => ({
    subject: principal.subject,
    scopes: principal.scopes,
    tenant,
  }),
  customer: (_parent, { id }, { loaders }) => loaders.customerById.load(id),
  order: (_parent, { id }, { loaders }) => loaders.orderById.load(id),
  customers: async (_parent, { first, after, segment }, { dataSource, tenant, loaders }) => {
    const page = await dataSource.listCustomers(tenant, {
      first: pageSize(first, 20, MAX_PAGE_SIZE),
      afterId: decodeCursor(after),
      segment: segment ?? undefined,
    });
    // Later `customer(id)` lookups in the same request reuse these rows instead of querying again.
    for (const row of page.rows) loaders.customerById.prime(row.id, row);
    return page;
  },
};
