import { buildSchema, getIntrospectionQuery, parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { demoSchema } from '../../support/demo.js';
import {
  analyzeOperation,
  countExpandedFields,
  countTokens,
  countValues,
  operationCost,
  selectOperation,
} from '../../../src/graphql/operation-analysis.js';

const { schema } = demoSchema();

function shape(query: string, operationName?: string) {
  const document = parse(query);
  const operation = selectOperation(document, operationName);
  if (!operation) throw new Error('no operation');
  return analyzeOperation(document, operation);
}

function cost(query: string, variables: Record<string, unknown> = {}, defaultListSize = 10) {
  const document = parse(query);
  const operation = selectOperation(document, undefined);
  if (!operation) throw new Error('no operation');
  return operationCost(document, operation, { schema, variables, defaultListSize });
}

describe('countTokens', () => {
  it('counts like graphql-js parse({ maxTokens }): punctuators, names, values; not comments', () => {
    expect(countTokens('{ a }', 100)).toBe(3);
    expect(countTokens('# only a comment\n{ a(x: 1, y: "s") } # trailing', 100)).toBe(11);
    // Cross-check against the parser's own limit: parse succeeds at n tokens, fails at n - 1.
    const query = getIntrospectionQuery();
    const n = countTokens(query, 10_000);
    expect(() => parse(query, { maxTokens: n })).not.toThrow();
    expect(() => parse(query, { maxTokens: n - 1 })).toThrow(/more that \d+ tokens/);
  });

  it('stops at max + 1 so a huge document is refused after lexing max + 1 tokens', () => {
    const huge = `{ ${'a '.repeat(500_000)}}`;
    expect(countTokens(huge, 1_000)).toBe(1_001);
  });

  it('ends the count at a lexical error (the parser reports it)', () => {
    expect(countTokens('{ a ~ b }', 100)).toBe(2);
    expect(countTokens('"unterminated', 100)).toBe(0);
  });
});

/** `{ viewer { ...F0 } }`, each of `levels` fragments spreading the next twice. */
function fanOut(levels: number, leaf = 'subject'): string {
  const fragments = Array.from(
    { length: levels },
    (_, i) => `fragment F${i} on Viewer { ${i + 1 < levels ? `...F${i + 1} ...F${i + 1}` : leaf} }`,
  );
  return `{ viewer { ...F0 } }\n${fragments.join('\n')}`;
}

describe('countExpandedFields', () => {
  const count = (query: string, max = 1_000_000) => countExpandedFields(parse(query), max);

  it('counts every field once per spread of its fragment, inline fragments flattened', () => {
    expect(count('{ viewer { subject scopes } }')).toBe(3);
    expect(
      count(`
        { customers { ...C ...C edges { cursor } } }
        fragment C on CustomerConnection { edges { node { ... on Customer { id name } } } }
      `),
    ).toBe(1 + 2 * 4 + 2);
    expect(count(fanOut(11))).toBe(1 + 2 ** 10);
    expect(count(getIntrospectionQuery())).toBe(220);
  });

  it('stops at max + 1, in time linear in the document, however far the fragments fan out', () => {
    // 2^1999 fields: a walk of the expansion would never end; the count ends at max + 1.
    expect(count(fanOut(2_000), 5_000)).toBe(5_001);
    expect(count(fanOut(2_000), Number.MAX_SAFE_INTEGER - 1)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('counts the whole document as validation walks it: every operation and unspread fragments', () => {
    const document = parse(`
      query A { viewer { subject } }
      query B { viewer { ...V } }
      fragment V on Viewer { scopes tenant { id } }
      fragment Unused on Viewer { subject subject }
      fragment Unused on Viewer { scopes }
    `);
    // A: 2, B: 1 + 3, Unused: 2, its duplicate (validation refuses it after walking it): 1.
    expect(countExpandedFields(document, 1_000)).toBe(2 + 4 + 2 + 1);
    const b = selectOperation(document, 'B');
    if (!b) throw new Error('no operation B');
    expect(countExpandedFields(document, 1_000, b)).toBe(4);
  });

  it('counts unknown fragments and the spread that closes a cycle as nothing', () => {
    expect(
      count(`
        { viewer { ...A ...Missing } }
        fragment A on Viewer { subject ...B }
        fragment B on Viewer { scopes ...A }
      `),
    ).toBe(3);
  });
});

describe('countValues', () => {
  it('counts a JSON value and everything in it, at any depth', () => {
    expect(countValues(null, 100)).toBe(1);
    expect(countValues({ a: 1, b: [1, 2, { c: 'x' }], d: {} }, 100)).toBe(8);
  });

  it('stops at max + 1, on values too wide or too deep to walk recursively', () => {
    expect(
      countValues(
        Array.from({ length: 1_000_000 }, () => [1, 2]),
        10_000,
      ),
    ).toBe(10_001);
    const deep = JSON.parse(`${'['.repeat(1_000_000)}1${']'.repeat(1_000_000)}`) as unknown;
    expect(countValues(deep, 10_000)).toBe(10_001);
    expect(countValues(deep, 2_000_000)).toBe(1_000_001);
  });
});

describe('analyzeOperation', () => {
  it('measures depth from the root field (1) through fragments and inline fragments', () => {
    expect(shape('{ viewer { subject } }').depth).toBe(2);
    expect(
      shape(`
        { customers { ...C } }
        fragment C on CustomerConnection { edges { node { ... on Customer { orders { id } } } } }
      `).depth,
    ).toBe(5);
  });

  it('counts aliases once per fragment spread, directives everywhere, root response keys once', () => {
    const s = shape(`
      query Q($skip: Boolean = false) @deprecatedButCounted {
        a: viewer { ...V ...V }
        b: viewer @skip(if: $skip) { subject }
        viewer { subject }
        viewer { scopes }
      }
      fragment V on Viewer { s1: subject @include(if: true) s2: subject }
    `);
    expect(s.aliases).toBe(2 + 2 * 2);
    expect(s.directives).toBe(1 + 1 + 2);
    expect(s.rootFields).toBe(3);
  });

  it('keeps linear time on exponential fragment fan-out and reports the exponential count', () => {
    const levels = 30;
    const fragments = Array.from(
      { length: levels },
      (_, i) =>
        `fragment F${i} on Viewer { ${i + 1 < levels ? `...F${i + 1} ...F${i + 1}` : 'x: subject'} }`,
    ).join('\n');
    const started = performance.now();
    const s = shape(`{ viewer { ...F0 } }\n${fragments}`);
    expect(s.aliases).toBe(2 ** (levels - 1));
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('every measure (shape, expanded fields, cost) is linear in the document on deep fan-out', () => {
    // A walk of the expansion (2^1999 fields) would never end: finishing is the proof.
    const document = parse(fanOut(2_000, 'x: subject'));
    const operation = selectOperation(document, undefined);
    if (!operation) throw new Error('no operation');
    const s = analyzeOperation(document, operation);
    expect(s.aliases).toBe(2 ** 1_999);
    expect(s.expandedFields).toBe(Number.MAX_SAFE_INTEGER);
    expect(s.depth).toBe(2);
    // 300 levels of customer → two order lists → customer: 2^300 objects.
    const orders = parse(`
      { customer(id: "c") { ...C0 } }
      ${Array.from(
        { length: 300 },
        (_, i) =>
          `fragment C${i} on Customer { ${i + 1 < 300 ? `orders(first: 1) { customer { ...C${i + 1} } } o: orders(first: 1) { customer { ...C${i + 1} } }` : 'id'} }`,
      ).join('\n')}
    `);
    const root = selectOperation(orders, undefined);
    if (!root) throw new Error('no operation');
    expect(operationCost(orders, root, { schema, defaultListSize: 10 })).toBeGreaterThan(2 ** 300);
  });

  it('cuts fragment cycles and unknown fragments instead of looping (validation reports them)', () => {
    const s = shape(`
      { viewer { ...A ...Missing } }
      fragment A on Viewer { a: subject ...B }
      fragment B on Viewer { b: subject ...A }
    `);
    expect(s.aliases).toBe(2);
    expect(s.depth).toBe(2);
  });

  it('measures introspection subtrees separately from the operation depth', () => {
    const s = shape(getIntrospectionQuery());
    expect(s.introspection).toBe(true);
    expect(s.depth).toBe(1);
    expect(s.introspectionDepth).toBe(15);
    expect(shape('{ __typename viewer { __typename } }').introspection).toBe(false);
    expect(shape('{ __type(name: "Customer") { name } }').introspection).toBe(true);
    expect(
      shape('{ ...Q } fragment Q on Query { __schema { queryType { name } } }').introspection,
    ).toBe(true);
  });

  it('selects the named operation, or the only one', () => {
    const document = parse('query A { viewer { subject } } query B { __typename }');
    expect(selectOperation(document, 'B')?.name?.value).toBe('B');
    expect(selectOperation(document, undefined)).toBeUndefined();
    expect(selectOperation(document, 'C')).toBeUndefined();
  });
});

describe('operationCost', () => {
  it('costs the acceptance query from the SDL directives (slicing, sizedFields, weights)', () => {
    // customers 1 + 50 × (edge 1 + node 1 + churnRisk 2 + 5 × (order 1 + fraudRisk 2))
    expect(
      cost(
        '{ customers(first: 50) { edges { node { id churnRisk { score label version } orders(first: 5) { fraudRisk { score } } } } } }',
      ),
    ).toBe(1 + 50 * (1 + 1 + 2 + 5 * 3));
  });

  it('takes list sizes from variables, variable defaults and argument defaults', () => {
    const q = 'query($n: Int) { customers(first: $n) { edges { node { id } } } }';
    expect(cost(q, { n: 7 })).toBe(1 + 7 * 2);
    // Variable not sent: the argument's SDL default (20).
    expect(cost(q)).toBe(1 + 20 * 2);
    expect(cost('query($n: Int = 3) { customers(first: $n) { edges { node { id } } } }')).toBe(
      1 + 3 * 2,
    );
    expect(cost('{ customers { edges { node { orders { id } } } } }')).toBe(1 + 20 * (2 + 10));
    // Huge or hostile sizes make the cost huge, not negative.
    expect(cost(q, { n: 1e9 })).toBeGreaterThan(1e9);
    expect(cost(q, { n: -5 })).toBe(1);
    expect(cost(q, { n: 'x' })).toBe(1 + 20 * 2);
  });

  it('charges scalars nothing, @cost weights as declared, lists without @listSize the default', () => {
    expect(cost('{ viewer { subject scopes tenant { id features } } }')).toBe(2);
    expect(cost('{ models { name ready thresholds { label } } }')).toBe(10 * (1 + 5 + 10));
    expect(cost('{ models { name } }', {}, 3)).toBe(10);
    expect(cost('{ predict(model: "churn", inputs: [[1]]) { score } }')).toBe(100 * 2);
  });

  it('prices fragments per spread and ignores introspection fields', () => {
    expect(
      cost(`
        { a: customer(id: "1") { ...C } b: customer(id: "2") { ...C } __schema { types { name } } }
        fragment C on Customer { orders(first: 2) { id } }
      `),
    ).toBe(2 * (1 + 2));
  });

  it('applies configured field costs over the SDL and reads @cost on types', () => {
    const document = parse('{ customers(first: 4) { edges { node { id } } } }');
    const operation = selectOperation(document, undefined);
    if (!operation) throw new Error('no operation');
    expect(
      operationCost(document, operation, {
        schema,
        defaultListSize: 10,
        fieldCosts: { 'CustomerEdge.node': { weight: 50 } },
      }),
    ).toBe(1 + 4 * (1 + 50));
    const typed = buildSchema(`
      directive @cost(weight: Int!) on FIELD_DEFINITION | OBJECT
      type Heavy @cost(weight: 7) { id: ID }
      type Query { heavies: [Heavy] heavy: Heavy }
    `);
    const d2 = parse('{ heavies { id } heavy { id } }');
    const op2 = selectOperation(d2, undefined);
    if (!op2) throw new Error('no operation');
    expect(operationCost(d2, op2, { schema: typed, defaultListSize: 10 })).toBe(10 * 7 + 7);
  });
});
