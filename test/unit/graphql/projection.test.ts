import {
  type FragmentDefinitionNode,
  type GraphQLResolveInfo,
  Kind,
  type OperationDefinitionNode,
  parse,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { createProjector } from '../../../src/graphql/projection.js';
import { buildGatewaySchema } from '../../../src/graphql/schema.js';
import type { Tenant } from '../../../src/tenancy/tenant.js';
import { demoTypeDefs } from '../../support/demo.js';

// The columns an operation asks of each table, from its document alone: interfaces, unions,
// fragments, model features per tenant configuration. The reads themselves (real PostgreSQL)
// are in test/integration/data-plane/projection.test.ts.

const EXTENSION = `
  interface Contactable { email: String! }
  extend type Customer implements Contactable
  union Searchable = Customer | Order
  extend type Query { contactable: [Contactable!]! search: [Searchable!]! }
`;
const gateway = buildGatewaySchema({
  typeDefs: [...demoTypeDefs(), EXTENSION],
  resolvers: {
    Query: { contactable: () => [], search: () => [] },
    Contactable: { __resolveType: () => 'Customer' },
    Searchable: { __resolveType: () => 'Customer' },
  },
});
const projector = createProjector(gateway.bindings);
const tenant = (features: string[]) =>
  ({ id: 't', models: { churn: { features } } }) as unknown as Tenant;
const plain = tenant([]);

function infoOf(query: string): GraphQLResolveInfo {
  const document = parse(query);
  const operation = document.definitions.find(
    (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION,
  );
  const fragments = Object.fromEntries(
    document.definitions
      .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((f) => [f.name.value, f]),
  );
  return { operation, fragments, schema: gateway.schema } as unknown as GraphQLResolveInfo;
}

function columns(type: string, info: GraphQLResolveInfo, of: Tenant = plain): string[] {
  const table = gateway.bindings.tables.get(type)!;
  return [...projector.rows(table, info, of).columns].sort();
}

describe('the columns an operation asks of a table', () => {
  it('fields of an interface the table type implements, and inline fragments on it', () => {
    const info = infoOf('{ contactable { email ... on Customer { country } } }');
    expect(columns('Customer', info)).toEqual(['country', 'email', 'id']);
  });

  it('each member of a union, by its own fragments', () => {
    const info = infoOf(
      `{ search { ... on Order { amount } ...C } }
       fragment C on Customer { name __typename }`,
    );
    expect(columns('Customer', info)).toEqual(['id', 'name']);
    expect(columns('Order', info)).toEqual(['amount', 'id']);
  });

  it('the union of every place the operation reads the table', () => {
    const info = infoOf(
      `{ customer(id: "c1") { name orders(first: 2) { currency customer { email } } }
         order(id: "o1") { itemCount customer { segment } } }`,
    );
    expect(columns('Customer', info)).toEqual(['email', 'id', 'name', 'segment']);
    // Order.customer joins on customer_id.
    expect(columns('Order', info)).toEqual(['currency', 'customer_id', 'id', 'item_count']);
  });

  it("a model field asks its features as each tenant's config names them (field or column)", () => {
    const info = infoOf('{ customer(id: "c1") { churnRisk { score } } }');
    const a = tenant(['tenureMonths', 'support_tickets']);
    const b = tenant(['lifetimeValue']);
    expect(columns('Customer', info, a)).toEqual(['id', 'support_tickets', 'tenure_months']);
    expect(columns('Customer', info, b)).toEqual(['id', 'lifetime_value']);
    const table = gateway.bindings.tables.get('Customer')!;
    expect(projector.rows(table, info, a)).toBe(projector.rows(table, info, a));
  });

  it('an @http field asks the columns its templates read', () => {
    // Customer.tickets batches by the key (batchBy defaults to it).
    expect(columns('Customer', infoOf('{ customer(id: "c1") { tickets { id } } }'))).toEqual([
      'id',
    ]);
  });

  it('a table the operation never selects is read with every column', () => {
    const table = gateway.bindings.tables.get('Order')!;
    const projection = projector.rows(table, infoOf('{ customer(id: "c1") { name } }'), plain);
    expect(projection.full).toBe(true);
  });

  it('is worked out once per operation node and schema', () => {
    const info = infoOf('{ customer(id: "c1") { name } }');
    const table = gateway.bindings.tables.get('Customer')!;
    expect(projector.rows(table, info, plain)).toBe(projector.rows(table, info, plain));
  });
});
