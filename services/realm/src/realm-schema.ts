/**
 * The realm's GraphQL schema: it extends the gateway's `Customer` (linked by `id`) with a
 * loyalty account, and adds `Query.loyaltyTiers`. `_customers(ids:)` is the entry point the
 * gateway's stitching uses to fetch the realm's fields of many customers in one request (type
 * merging by key): one `Customer` per id, in the order asked.
 */
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { GraphQLSchema } from 'graphql';
import { type LoyaltyAccount, loyaltyAccount, TIER_TABLE } from './loyalty.js';

/** What every resolver gets: the tenant the gateway's signed identity names, and a counter. */
// A type, not an interface: graphql-http's context must be indexable.
export type RealmContext = {
  tenant: string;
  /** Ids asked through `_customers`, for /_stats. */
  onCustomers(ids: readonly string[]): void;
};

export const REALM_TYPE_DEFS = /* GraphQL */ `
  "A customer of the gateway's schema, as far as this realm knows it: by id."
  type Customer {
    id: ID!
    "The customer's loyalty account in this tenant's programme."
    loyalty: LoyaltyAccount
  }

  type LoyaltyAccount {
    customerId: ID!
    tier: LoyaltyTier!
    points: Int!
  }

  enum LoyaltyTier {
    BRONZE
    SILVER
    GOLD
    PLATINUM
  }

  type LoyaltyTierInfo {
    tier: LoyaltyTier!
    "Points from which the tier starts."
    minPoints: Int!
    perks: [String!]!
  }

  type Query {
    "The tiers of this tenant's loyalty programme, lowest first."
    loyaltyTiers: [LoyaltyTierInfo!]!
    "Entry point for the gateway (type merging by key): one Customer per id, in order."
    _customers(ids: [ID!]!): [Customer]!
  }
`;

/** At most this many ids per `_customers` call (the gateway batches by its own page sizes). */
export const MAX_IDS = 1_000;

export function createRealmSchema(): GraphQLSchema {
  return makeExecutableSchema<RealmContext>({
    typeDefs: REALM_TYPE_DEFS,
    resolvers: {
      Query: {
        loyaltyTiers: () => TIER_TABLE,
        _customers: (_root: unknown, args: { ids: string[] }, context: RealmContext) => {
          if (args.ids.length > MAX_IDS) {
            throw new Error(`_customers takes at most ${MAX_IDS} ids, got ${args.ids.length}`);
          }
          context.onCustomers(args.ids);
          return args.ids.map((id) => ({ id }));
        },
      },
      Customer: {
        loyalty: (customer: { id: string }, _args: unknown, context: RealmContext) =>
          loyaltyAccount(context.tenant, customer.id) satisfies LoyaltyAccount,
      },
    },
  });
}
