import { makeExecutableSchema } from '@graphql-tools/schema';
import type { Executor } from '@graphql-tools/utils';
import { execute, type GraphQLObjectType, type GraphQLSchema, parse, printSchema } from 'graphql';
import { beforeAll, describe, expect, it } from 'vitest';
import { createRealmSchema } from '../../../services/realm/src/realm-schema.js';
import { RealmSchemaError, stitchRealm } from '../../../src/graphql/realm.js';
import { loadGatewaySchema } from '../../../src/graphql/schema.js';
import { createSchemaVariants } from '../../../src/graphql/variants.js';
import { operationCost, selectOperation } from '../../../src/graphql/operation-analysis.js';
import { DEFAULT_SCHEMA_FILES } from '../../../src/config/schema.js';

// The stitching itself, on the demo's SDL and the reference realm's schema (executed in
// process here; realm.test.ts runs both as real processes).

let variant: GraphQLSchema;
const realmSchema = createRealmSchema();
const localRealm: Executor = ((request) =>
  execute({
    schema: realmSchema,
    document: request.document,
    variableValues: request.variables,
    contextValue: { tenant: 'acme', onCustomers: () => undefined },
  })) as Executor;

beforeAll(async () => {
  const { schema } = await loadGatewaySchema({ files: [DEFAULT_SCHEMA_FILES] });
  variant = createSchemaVariants(schema).schemaFor({ features: new Set() });
});

const costOf = (schema: GraphQLSchema, query: string): number => {
  const document = parse(query);
  return operationCost(document, selectOperation(document, undefined)!, {
    schema,
    defaultListSize: 10,
  });
};

describe('stitchRealm', () => {
  it("keeps the gateway's cost directives: a shared query costs what it costs on the variant", () => {
    const stitched = stitchRealm(variant, realmSchema, localRealm);
    for (const query of [
      '{ customers(first: 50) { edges { node { id churnRisk { score } tickets { id } orders(first: 5) { id } } } } }',
      '{ customers(first: 20) { edges { node { name } } } }',
    ]) {
      expect(costOf(stitched, query)).toBe(costOf(variant, query));
    }
    // The realm's own fields cost like any other field without directives.
    expect(
      costOf(stitched, '{ customers(first: 50) { edges { node { id loyalty { tier } } } } }'),
    ).toBeGreaterThan(costOf(stitched, '{ customers(first: 50) { edges { node { id } } } }'));
  });

  it("keeps every field of the variant, the gateway's definition first, and hides the entry point", () => {
    const stitched = stitchRealm(variant, realmSchema, localRealm);
    const customer = stitched.getType('Customer') as GraphQLObjectType;
    const own = variant.getType('Customer') as GraphQLObjectType;
    for (const [name, field] of Object.entries(own.getFields())) {
      expect(String(customer.getFields()[name]?.type)).toBe(String(field.type));
    }
    expect(customer.getFields().loyalty).toBeDefined();
    expect(stitched.getQueryType()?.getFields()._customers).toBeUndefined();
    expect(printSchema(stitched)).not.toContain('_customers');
  });

  it('refuses a realm that extends a shared type without an entry point for it', () => {
    const noEntry = makeExecutableSchema({
      typeDefs: 'type Customer { id: ID! loyalty: Int } type Query { loyaltyTiers: [String!]! }',
    });
    expect(() => stitchRealm(variant, noEntry, localRealm)).toThrow(RealmSchemaError);
    expect(() => stitchRealm(variant, noEntry, localRealm)).toThrow(/_name\(ids: \[ID!\]!\)/);
  });

  it('lets no realm replace a field of the gateway', () => {
    const shadow = makeExecutableSchema({
      typeDefs:
        'type Customer { id: ID! name: String! } type Query { _customers(ids: [ID!]!): [Customer]! viewer: String }',
      resolvers: { Query: { viewer: () => 'the realm' } },
    });
    const stitched = stitchRealm(variant, shadow, localRealm);
    expect(String(stitched.getQueryType()?.getFields().viewer?.type)).toBe(
      String(variant.getQueryType()?.getFields().viewer?.type),
    );
  });
});
