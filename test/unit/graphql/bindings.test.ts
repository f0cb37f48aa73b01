import { describe, expect, it } from 'vitest';
import { buildGatewaySchema, SchemaBindingError } from '../../../src/graphql/schema.js';
import { demoSchema, exampleTypeDefs } from '../../support/demo.js';

const TABLES = /* GraphQL */ `
  type Query {
    thing(id: ID!): Thing @lookup
  }
  type Thing @table {
    id: ID!
    createdAt: DateTime!
    label: String @column(name: "display_label")
  }
`;

function build(sdl: string, resolvers?: Record<string, Record<string, () => unknown>>) {
  return buildGatewaySchema({ typeDefs: [sdl], resolvers });
}

function error(sdl: string): string {
  try {
    build(sdl);
  } catch (e) {
    expect(e).toBeInstanceOf(SchemaBindingError);
    return (e as Error).message;
  }
  throw new Error('expected a SchemaBindingError');
}

describe('source bindings from the SDL', () => {
  it('reads the demo example: tables, columns in snake_case, relations with their join columns', () => {
    const { bindings } = demoSchema();
    const customer = bindings.tables.get('Customer');
    const order = bindings.tables.get('Order');
    expect(customer?.table).toBe('customers');
    expect(customer?.columns.find((c) => c.field === 'daysSinceLastLogin')?.column).toBe(
      'days_since_last_login',
    );
    expect(order?.joinColumns).toEqual(['customer_id']);
    expect(bindings.fields.map((f) => `${f.kind} ${f.parent}.${f.field}`)).toEqual([
      'lookup Query.customer',
      'connection Query.customers',
      'lookup Query.order',
      'insert Mutation.createOrder',
      'relation Customer.orders',
      'infer Customer.churnRisk',
      'http Customer.tickets',
      'relation Order.customer',
      'infer Order.fraudRisk',
    ]);
    expect(bindings.scopes.get('Mutation.createOrder')).toEqual(['write']);
  });

  it('reads the invoicing example with its resolver module: integer keys, a lookup by another column', () => {
    const { bindings, resolved } = buildGatewaySchema({
      typeDefs: exampleTypeDefs('invoicing'),
      resolvers: { Account: { label: () => 'x' } },
    });
    expect([...resolved]).toEqual(['Account.label']);
    const byNumber = bindings.fields.find((f) => f.field === 'invoiceByNumber');
    expect(byNumber?.kind === 'lookup' && byNumber.column.column).toBe('number');
    const invoices = bindings.fields.find((f) => f.field === 'invoices' && f.parent === 'Query');
    expect(invoices?.kind === 'connection' && invoices.filters[0]).toMatchObject({
      argument: 'status',
      list: true,
    });
  });

  it('defaults the table to the snake_case plural and honours @column', () => {
    const thing = build(TABLES).bindings.tables.get('Thing');
    expect(thing?.table).toBe('things');
    expect(thing?.columns.map((c) => c.column)).toEqual(['id', 'created_at', 'display_label']);
  });

  it.each([
    [
      'a table name that is not an identifier',
      TABLES.replace('@table', '@table(name: "things; drop table x")'),
      /\[at Thing @table\] table "things; drop table x" is not a lowercase SQL identifier/,
    ],
    [
      'a column name that is not an identifier',
      TABLES.replace('"display_label"', '"Display Label"'),
      /\[at Thing\.label @column\] column "Display Label"/,
    ],
    ['a key that is no column', TABLES.replace('@table', '@table(key: "uuid")'), /key "uuid"/],
    [
      'an object field without a source',
      TABLES.replace('label: String', 'other: Thing\n    label: String'),
      /\[at Thing\.other\] Thing is not a column type/,
    ],
    [
      'a root field without a source',
      TABLES.replace('thing(id: ID!): Thing @lookup', 'thing(id: ID!): Thing'),
      /\[at Query\.thing\] a root field needs a source directive/,
    ],
    [
      'a lookup with two arguments',
      TABLES.replace('thing(id: ID!)', 'thing(id: ID!, x: Int)'),
      /exactly one argument/,
    ],
    [
      'a connection argument without @filter',
      `${TABLES}
       type ThingConnection { edges: [ThingEdge!]! pageInfo: PageInfo! }
       type ThingEdge { cursor: String! node: Thing! }
       extend type Query { things(first: Int = 5, colour: String): ThingConnection! @connection }`,
      /\[at Query\.things @connection\] argument colour has no source/,
    ],
    [
      'a list without a default page size',
      TABLES.replace(
        'label: String',
        'children(first: Int): [Thing!]! @relation(foreignKey: "parent_id")\n    label: String',
      ),
      /needs a positive default/,
    ],
    [
      'an @infer field that is not a Prediction',
      TABLES.replace('label: String', 'risk: Float @infer(model: "risk")\n    label: String'),
      /\[at Thing\.risk @infer\] an @infer field has the type Prediction/,
    ],
    [
      'an orderBy with SQL in it',
      TABLES.replace(
        'label: String',
        'children(first: Int = 3): [Thing!]! @relation(foreignKey: "parent_id", orderBy: "id; delete")\n    label: String',
      ),
      /\[at Thing\.children @relation\] orderBy "id; delete": each term is a column and ASC or DESC/,
    ],
  ])('refuses %s, naming where', (_what, sdl, message) => {
    expect(error(sdl)).toMatch(message);
  });

  it('refuses a field with both a directive and an operator resolver', () => {
    expect(() => build(TABLES, { Query: { thing: () => null } })).toThrow(
      /\[at Query\.thing\] has a source directive and a resolver/,
    );
  });

  it('keeps source directives out of what clients see', () => {
    const { schema } = demoSchema();
    expect(schema.getDirective('table')).toBeDefined();
  });
});

describe('@http bindings', () => {
  const base = `
    type Query { thing(id: ID!): Thing @lookup }
    type Thing @table { id: ID! name: String! }
    type Note { id: ID! text: String! }
  `;
  const withField = (directive: string, args = '') =>
    `${base}\nextend type Thing { notes${args}: [Note!]! ${directive} }`;

  it('reads templates, the batched form and select', () => {
    const { bindings } = buildGatewaySchema({
      typeDefs: [
        withField(
          '@http(service: "notes", path: "/things/{parent.id}/notes", query: ["q={args.q}"], select: "data.items")',
          '(q: String)',
        ),
      ],
    });
    const http = bindings.fields.find((f) => f.kind === 'http');
    expect(http).toMatchObject({
      service: 'notes',
      method: 'GET',
      path: [{ text: '/things/' }, { from: 'parent', name: 'id' }, { text: '/notes' }],
      query: [{ name: 'q', value: [{ from: 'args', name: 'q' }] }],
      select: ['data', 'items'],
      batch: undefined,
    });
  });

  it.each([
    [
      'a placeholder naming no argument',
      '@http(service: "n", path: "/n/{args.nope}")',
      /\{args\.nope\} names no argument/,
    ],
    [
      'a placeholder naming no field',
      '@http(service: "n", path: "/n/{parent.nope}")',
      /\{parent\.nope\} names no parent field/,
    ],
    [
      'a stray brace',
      '@http(service: "n", path: "/n/{id}")',
      /placeholders are \{parent\.field\} or \{args\.name\}/,
    ],
    [
      'batchParam without batchKey',
      '@http(service: "n", path: "/n", batchParam: "ids")',
      /batchParam needs batchKey/,
    ],
    ['a relative path', '@http(service: "n", path: "n")', /path must start with \//],
    [
      'a body that is not JSON',
      '@http(service: "n", method: POST, path: "/n", body: "{nope")',
      /body is not a JSON template/,
    ],
  ])('refuses %s, naming where', (_what, directive, message) => {
    expect(() => buildGatewaySchema({ typeDefs: [withField(directive)] })).toThrow(message);
  });
});
