import { GatewayError } from '../../errors.js';
import type { MutationResolvers } from '../generated/resolvers-types.js';

export const WRITE_SCOPE = 'write';

export const Mutation: MutationResolvers = {
  createOrder: async (_parent, { input }, { principal, tenant, dataSource, loaders }) => {
    if (!principal.scopes.includes(WRITE_SCOPE)) {
      throw new GatewayError('FORBIDDEN', `createOrder requires the "${WRITE_SCOPE}" scope.`);
    }
    const order = await dataSource.createOrder(tenant, {
      customerId: input.customerId,
      amount: input.amount,
      currency: input.currency,
      channel: input.channel,
      itemCount: input.itemCount ?? 1,
      isInternational: input.isInternational ?? false,
      paymentAttempts: input.paymentAttempts ?? 1,
      hourOfDay: input.hourOfDay ?? new Date().getUTCHours(),
    });
    loaders.orderById.prime(order.id, order);
    return order;
  },
};
