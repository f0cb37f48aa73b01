import { makeExecutableSchema } from '@graphql-tools/schema';
import {
  buildClientSchema,
  getIntrospectionQuery,
  graphql,
  type GraphQLEnumType,
  type GraphQLInputObjectType,
  type GraphQLObjectType,
  type IntrospectionQuery,
  printSchema,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { ENGINE_TYPE_DEFS } from '../../../src/graphql/schema.js';
import { createSchemaVariants } from '../../../src/graphql/variants.js';
import { demoSchema } from '../../support/demo.js';

const FEATURE_SDL = ENGINE_TYPE_DEFS.find((sdl) => sdl.includes('directive @feature'));

const SDL = /* GraphQL */ `
  type Query {
    order(id: ID!, explain: Boolean @feature(name: "explain")): Order
    audit: AuditLog @feature(name: "audit")
    search(filter: Filter): [Order!]!
  }
  type Order {
    id: ID!
    status: Status!
    fraudRisk: Float @feature(name: "fraud")
    insight: Insight
  }
  "Only for tenants with insights; any field returning it goes with it."
  type Insight @feature(name: "insights") {
    summary: String!
  }
  type AuditLog {
    entries: [String!]!
  }
  enum Status {
    OPEN
    SHIPPED
    HELD @feature(name: "fraud")
  }
  input Filter {
    status: Status
    minRisk: Float @feature(name: "fraud")
  }
`;

function testSchema(calls: string[] = []) {
  return makeExecutableSchema({
    typeDefs: [FEATURE_SDL ?? '', SDL],
    resolvers: {
      Query: {
        order: (_p, args: { id: string }) => {
          calls.push('order');
          return { id: args.id, status: 'HELD' };
        },
        audit: () => {
          calls.push('audit');
          return { entries: ['a'] };
        },
        search: () => [],
      },
      Order: {
        fraudRisk: () => {
          calls.push('fraudRisk');
          return 0.25;
        },
        insight: () => ({ summary: 'ok' }),
      },
    },
  });
}

const tenant = (...features: string[]) => ({ features: new Set(features) });

async function clientSchemaOf(schema: ReturnType<typeof testSchema>) {
  const result = await graphql({ schema, source: getIntrospectionQuery() });
  expect(result.errors).toBeUndefined();
  return buildClientSchema(result.data as unknown as IntrospectionQuery);
}

describe('createSchemaVariants', () => {
  it('finds the features the SDL names, and only those matter for a tenant', () => {
    const variants = createSchemaVariants(testSchema());
    expect([...variants.features].sort()).toEqual(['audit', 'explain', 'fraud', 'insights']);
    expect(variants.variantKey(tenant('fraud', 'unrelated', 'audit'))).toBe('audit,fraud');
    expect(variants.schemaFor(tenant('fraud', 'unrelated'))).toBe(
      variants.schemaFor(tenant('fraud')),
    );
    expect(variants.schemaFor(tenant('fraud'))).not.toBe(variants.schemaFor(tenant()));
  });

  it('builds one variant per distinct set of relevant features, not per tenant', () => {
    const variants = createSchemaVariants(testSchema());
    const built = variants.size();
    for (let i = 0; i < 50; i++) variants.schemaFor(tenant(`noise-${i}`, 'fraud'));
    for (let i = 0; i < 50; i++) variants.schemaFor(tenant('audit', `noise-${i}`));
    expect(variants.size()).toBe(built + 2);
  });

  it('hides tagged fields, types, enum values, arguments and input fields from tenants without the feature', () => {
    const variants = createSchemaVariants(testSchema());
    const bare = variants.schemaFor(tenant());
    const order = bare.getType('Order') as GraphQLObjectType;
    expect(Object.keys(order.getFields())).toEqual(['id', 'status']);
    expect(bare.getType('Insight')).toBeUndefined();
    expect(bare.getType('AuditLog')).toBeUndefined();
    expect(Object.keys(bare.getQueryType()?.getFields() ?? {})).toEqual(['order', 'search']);
    const queryFields = bare.getQueryType()?.getFields() ?? {};
    expect(queryFields['order']?.args.map((a) => a.name)).toEqual(['id']);
    expect((bare.getType('Status') as GraphQLEnumType).getValues().map((v) => v.name)).toEqual([
      'OPEN',
      'SHIPPED',
    ]);
    expect(Object.keys((bare.getType('Filter') as GraphQLInputObjectType).getFields())).toEqual([
      'status',
    ]);

    const all = variants.schemaFor(tenant('fraud', 'insights', 'audit', 'explain'));
    expect(Object.keys((all.getType('Order') as GraphQLObjectType).getFields())).toEqual([
      'id',
      'status',
      'fraudRisk',
      'insight',
    ]);
    expect(all.getType('AuditLog')).toBeDefined();
    expect((all.getType('Status') as GraphQLEnumType).getValues()).toHaveLength(3);
  });

  it('never shows the @feature directive: not in introspection, not in SDL', async () => {
    const variants = createSchemaVariants(testSchema());
    for (const features of [[], ['fraud', 'insights', 'audit', 'explain']]) {
      const schema = variants.schemaFor(tenant(...features));
      expect(schema.getDirective('feature')).toBeUndefined();
      expect(printSchema(schema)).not.toMatch(/@feature|directive @/);
      const client = await clientSchemaOf(schema);
      expect(client.getDirectives().map((d) => d.name)).not.toContain('feature');
    }
  });

  it('round-trips through introspection and buildClientSchema, differently per variant', async () => {
    const variants = createSchemaVariants(testSchema());
    const withFraud = await clientSchemaOf(variants.schemaFor(tenant('fraud')));
    const without = await clientSchemaOf(variants.schemaFor(tenant()));
    expect(
      (withFraud.getType('Order') as GraphQLObjectType).getFields()['fraudRisk'],
    ).toBeDefined();
    expect(
      (without.getType('Order') as GraphQLObjectType).getFields()['fraudRisk'],
    ).toBeUndefined();
    expect(printSchema(withFraud)).toBe(printSchema(variants.schemaFor(tenant('fraud'))));
    expect(printSchema(without)).toBe(printSchema(variants.schemaFor(tenant())));
  });

  it('refuses hidden elements in validation, before any resolver runs', async () => {
    const calls: string[] = [];
    const variants = createSchemaVariants(testSchema(calls));
    const bare = variants.schemaFor(tenant());
    const refused = [
      ['{ order(id: "1") { id fraudRisk } }', 'Cannot query field "fraudRisk" on type "Order".'],
      ['{ audit { entries } }', 'Cannot query field "audit" on type "Query".'],
      ['{ order(id: "1", explain: true) { id } }', 'Unknown argument "explain"'],
      ['{ search(filter: { minRisk: 0.5 }) { id } }', 'Field "minRisk" is not defined'],
      ['{ search(filter: { status: HELD }) { id } }', 'Value "HELD" does not exist'],
    ];
    for (const [source, message] of refused) {
      const result = await graphql({ schema: bare, source: source ?? '' });
      expect(result.data).toBeUndefined();
      expect(result.errors?.[0]?.message).toContain(message);
    }
    expect(calls).toEqual([]);
  });

  it('keeps the resolvers of the full schema', async () => {
    const calls: string[] = [];
    const variants = createSchemaVariants(testSchema(calls));
    const result = await graphql({
      schema: variants.schemaFor(tenant('fraud', 'insights')),
      source: '{ order(id: "7") { id status fraudRisk insight { summary } } }',
    });
    expect(result).toEqual({
      data: { order: { id: '7', status: 'HELD', fraudRisk: 0.25, insight: { summary: 'ok' } } },
    });
    expect(calls).toEqual(['order', 'fraudRisk']);
  });

  it('gates Order.fraudRisk on the "fraud" feature in the demo example, and strips the source directives', () => {
    const variants = createSchemaVariants(demoSchema().schema);
    for (const features of [[], ['fraud']]) {
      const directives = variants
        .schemaFor(tenant(...features))
        .getDirectives()
        .map((d) => d.name);
      expect(directives).not.toContain('table');
      expect(directives).not.toContain('infer');
      expect(directives).not.toContain('feature');
    }
    expect([...variants.features]).toEqual(['fraud']);
    const fields = (features: string[]) =>
      Object.keys(
        (variants.schemaFor(tenant(...features)).getType('Order') as GraphQLObjectType).getFields(),
      );
    expect(fields(['fraud'])).toContain('fraudRisk');
    expect(fields([])).not.toContain('fraudRisk');
    expect(fields([])).toContain('amount');
  });

  it('fails at creation when a combination leaves an invalid schema', () => {
    const typeDefs = [
      FEATURE_SDL ?? '',
      /* GraphQL */ `
        type Query {
          node: Node
        }
        interface Node {
          id: ID!
          secret: String
        }
        type Doc implements Node {
          id: ID!
          secret: String @feature(name: "x")
        }
      `,
    ];
    expect(() => createSchemaVariants(makeExecutableSchema({ typeDefs }))).toThrow(
      /schema variant for features \[\] is invalid: .*secret/,
    );
  });
});
