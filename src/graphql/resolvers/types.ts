import { encodeCursor, pageSize } from '../args.js';
import type { Resolvers } from '../generated/resolvers-types.js';

export const MAX_ORDERS_PER_CUSTOMER = 50;

export const Viewer: Resolvers['Viewer'] = {
  scopes: (viewer) => [...viewer.scopes],
};

export const Tenant: Resolvers['Tenant'] = {
  features: (tenant) => [...tenant.features].sort(),
};

export const CustomerConnection: Resolvers['CustomerConnection'] = {
  edges: (page) => page.rows.map((node) => ({ cursor: encodeCursor(node.id), node })),
  pageInfo: (page) => {
    const last = page.rows.at(-1);
    return { hasNextPage: page.hasNextPage, endCursor: last ? encodeCursor(last.id) : null };
  },
};

export const Customer: Resolvers['Customer'] = {
  orders: async (customer, { first }, { loaders }) => {
    const orders = await loaders
      .ordersByCustomer(pageSize(first, 10, MAX_ORDERS_PER_CUSTOMER))
      .load(customer.id);
    for (const order of orders) loaders.orderById.prime(order.id, order);
    return orders;
  },
};

export const Order: Resolvers['Order'] = {
  customer: (order, _args, { loaders }) => loaders.customerById.load(order.customerId),
};
