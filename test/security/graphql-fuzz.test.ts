import {
  getNamedType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLNamedType,
  type GraphQLSchema,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  Lexer,
  Source,
  TokenKind,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSchema } from '../../src/graphql/schema.js';
import {
  captureErrorLogs,
  createRandom,
  judge,
  type Random,
  request,
  runPool,
  type SecurityGateway,
  startSecurityGateway,
  Tally,
} from './support.js';

// ≥ 10,000 generated and mutated GraphQL documents over HTTP, from a seeded generator that
// walks the real schema: every answer a coded 4xx, or a 200 whose errors are coded.

const SEED = 0xa7_21_10_05;
const schema: GraphQLSchema = createSchema();

interface Doc {
  kind: string;
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
}

const NAMES = [
  'viewer',
  'customers',
  'customer',
  'order',
  'orders',
  'edges',
  'node',
  'id',
  'name',
  'churnRisk',
  'fraudRisk',
  'score',
  'label',
  'models',
  'predict',
  'createOrder',
  'tenant',
  '__typename',
  '__schema',
  '__type',
  'types',
  'fields',
  'ofType',
  'x',
  'constructor',
  '__proto__',
  'ÿ',
  'a'.repeat(300),
];

function literalFor(type: GraphQLInputType, random: Random, depth = 0): string {
  if (random.chance(0.08))
    return random.pick([
      'null',
      '"x"',
      '1',
      '-1',
      '1.5',
      'true',
      '[]',
      '{}',
      'FOO',
      '$missing',
      '99999999999999999999',
    ]);
  if (isNonNullType(type)) return literalFor(type.ofType, random, depth);
  if (isListType(type)) {
    const n = random.int(depth > 2 ? 2 : 4);
    return `[${Array.from({ length: n }, () => literalFor(type.ofType, random, depth + 1)).join(', ')}]`;
  }
  if (isEnumType(type)) return random.pick(type.getValues()).name;
  if (isInputObjectType(type)) {
    const fields = Object.values(type.getFields()).filter(
      (f) => isNonNullType(f.type) || random.chance(0.5),
    );
    return `{ ${fields.map((f) => `${f.name}: ${literalFor(f.type, random, depth + 1)}`).join(', ')} }`;
  }
  if (isScalarType(type)) {
    switch (type.name) {
      case 'Int':
        return String(random.pick([1, 2, 5, 10, 50, 100, 0, -1, 101, 1000, 2 ** 31]));
      case 'Float':
        return String(random.pick([0, 0.5, 1, 100, -3.25, 1e10]));
      case 'Boolean':
        return random.pick(['true', 'false']);
      case 'ID':
      case 'String':
        return JSON.stringify(
          random.pick([
            'cus_1',
            'ord_1',
            'churn',
            'fraud',
            'EUR',
            '',
            'x'.repeat(50),
            "'; --",
            '\u0000',
            'c1:eA',
          ]),
        );
      default:
        return '"2025-01-01T00:00:00Z"';
    }
  }
  return 'null';
}

function argumentsFor(field: GraphQLField<unknown, unknown>, random: Random): string {
  const args = field.args.filter(
    (a: GraphQLArgument) => isNonNullType(a.type) || random.chance(0.5),
  );
  if (args.length === 0) return '';
  return `(${args.map((a) => `${a.name}: ${literalFor(a.type, random)}`).join(', ')})`;
}

let aliasCounter = 0;

function selection(
  type: GraphQLNamedType,
  random: Random,
  depth: number,
  maxDepth: number,
): string {
  if (!isObjectType(type)) return '';
  const fields = Object.values(type.getFields());
  const count = 1 + random.int(Math.min(4, fields.length));
  const parts: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const field = random.pick(fields);
    const named = getNamedType(field.type);
    const alias = random.chance(0.1) ? `a${(aliasCounter += 1)}: ` : '';
    const directive = random.chance(0.07)
      ? ` @${random.pick(['include', 'skip'])}(if: ${random.pick(['true', 'false'])})`
      : '';
    let sub = '';
    if (!isLeafType(named)) {
      if (depth >= maxDepth) continue;
      const inner = selection(named, random, depth + 1, maxDepth);
      if (!inner) continue;
      sub = random.chance(0.1) ? ` { ... on ${named.name} { ${inner} } }` : ` { ${inner} }`;
    }
    parts.push(`${alias}${field.name}${argumentsFor(field, random)}${directive}${sub}`);
  }
  if (random.chance(0.05)) parts.push('__typename');
  return parts.join(' ');
}

function generated(random: Random): Doc {
  const mutation = random.chance(0.08);
  const root = mutation ? schema.getMutationType() : schema.getQueryType();
  if (!root) throw new Error('schema without root');
  const body = selection(root, random, 1, 2 + random.int(10)) || '__typename';
  return {
    kind: mutation ? 'generated mutation' : 'generated query',
    query: `${mutation ? 'mutation' : random.chance(0.5) ? 'query Q' : ''} { ${body} }`,
  };
}

function tokensOf(query: string): string[] {
  const lexer = new Lexer(new Source(query));
  const tokens: string[] = [];
  try {
    for (let t = lexer.advance(); t.kind !== TokenKind.EOF; t = lexer.advance()) {
      tokens.push(
        t.kind === TokenKind.STRING
          ? JSON.stringify(t.value)
          : t.kind === TokenKind.BLOCK_STRING
            ? `"""${t.value}"""`
            : (t.value ?? t.kind),
      );
    }
  } catch {
    // Mutating an already broken document: keep what lexed.
  }
  return tokens;
}

const NOISE = [
  '{',
  '}',
  '(',
  ')',
  '[',
  ']',
  ':',
  '...',
  '@',
  '$',
  '!',
  '=',
  '|',
  '&',
  'fragment',
  'on',
  'query',
  'mutation',
  'subscription',
  'null',
  '0',
  '"s"',
  '"""b"""',
  '#c\n',
  'true',
  '\u0000',
  '\ud83d\ude00',
];

function mutated(random: Random): Doc {
  const base = generated(random).query;
  const tokens = tokensOf(base);
  const edits = 1 + random.int(5);
  for (let e = 0; e < edits && tokens.length > 0; e += 1) {
    const at = random.int(tokens.length);
    switch (random.int(6)) {
      case 0:
        tokens.splice(at, 1);
        break;
      case 1:
        tokens.splice(at, 0, tokens[at] ?? '{');
        break;
      case 2: {
        const other = random.int(tokens.length);
        [tokens[at], tokens[other]] = [tokens[other] ?? '', tokens[at] ?? ''];
        break;
      }
      case 3:
        tokens.splice(at, 0, random.pick(NOISE));
        break;
      case 4:
        tokens[at] = random.pick(NAMES);
        break;
      default:
        tokens.splice(at, 0, ...tokens.slice(at, at + 1 + random.int(8)));
    }
  }
  return { kind: 'mutated', query: tokens.join(' ') };
}

function hostile(random: Random): Doc {
  const n = 1 + random.int(400);
  switch (random.int(14)) {
    case 0:
      return {
        kind: 'aliases',
        query: `{ ${Array.from({ length: n }, (_, i) => `a${i}: viewer { subject }`).join(' ')} }`,
      };
    case 1:
      return {
        kind: 'deep',
        query: `{ customers(first: 1) { edges { node { ${'orders(first: 1) { customer { '.repeat(n % 120)}id${' } }'.repeat(n % 120)} } } } }`,
      };
    case 2:
      return {
        kind: 'fragment cycle',
        query: `{ viewer { ...A } } fragment A on Viewer { subject ...B } fragment B on Viewer { scopes ...${random.pick(['A', 'B', 'C'])} } fragment C on Viewer { ...A }`,
      };
    case 3: {
      const levels = 2 + random.int(25);
      const fragments = Array.from(
        { length: levels },
        (_, i) =>
          `fragment F${i} on Viewer { ${i + 1 < levels ? `...F${i + 1} ...F${i + 1}` : 'x: subject'} }`,
      ).join(' ');
      return { kind: 'fragment fan-out', query: `{ viewer { ...F0 } } ${fragments}` };
    }
    case 4: {
      const value = random.pick<unknown>(['x', -5, 1e9, 2 ** 31, null, [], {}, '100', 3.5, true]);
      return {
        kind: 'bad variables',
        query:
          'query($n: Int, $id: ID!, $s: Segment) { customers(first: $n, segment: $s) { edges { node { id } } } customer(id: $id) { id } }',
        variables: {
          n: value,
          id: random.pick<unknown>([value, 'cus_1']),
          s: random.pick<unknown>(['SMB', 'smb', value]),
        },
      };
    }
    case 5:
      return {
        kind: 'directives',
        query: `{ viewer { ${'subject @include(if: true) '.repeat(n % 80)} } }`,
      };
    case 6:
      return {
        kind: 'root fields',
        query: `{ ${Array.from({ length: n % 40 }, (_, i) => `r${i}: __typename`).join(' ')} viewer { subject } }`,
      };
    case 7:
      return {
        kind: 'introspection',
        query: `{ __schema { types { ${'fields { type { '.repeat(1 + (n % 5))}name${' } }'.repeat(1 + (n % 5))} } } }`,
      };
    case 8:
      return {
        kind: 'ofType chain',
        query: `{ __type(name: "${random.pick(['Customer', 'Query', 'Nope', ''])}") { ${'ofType { '.repeat(n % 40)}name${' }'.repeat(n % 40)} } }`,
      };
    case 9:
      return {
        kind: 'cost',
        query: `query($n: Int) { customers(first: $n) { edges { node { orders(first: ${random.pick([1, 10, 50, 500])}) { id fraudRisk { score } } churnRisk { score } } } } }`,
        variables: { n: random.pick([1, 10, 100, 1_000, 1e7]) },
      };
    case 10:
      return {
        kind: 'long strings',
        query: `{ customer(id: "${'\\u0041'.repeat(n)}${'x'.repeat(n * 50)}") { id } }`,
      };
    case 11:
      return {
        kind: 'operations',
        query: `query A { viewer { subject } } query B { models { name } } mutation C { createOrder(input: { customerId: "x", amount: 1, currency: "EUR", channel: WEB }) { id } } subscription D { x }`,
        operationName: random.pick(['A', 'B', 'C', 'D', 'E', '']),
      };
    case 12:
      return {
        kind: 'predict',
        query: `{ predict(model: "${random.pick(['churn', 'fraud', '__proto__', 'constructor', 'toString', 'nope'])}", inputs: [${Array.from({ length: n % 150 }, () => '[1, 2, 3, 4, 5]').join(', ')}]) { score label } }`,
      };
    default:
      return {
        kind: 'numbers',
        query: `{ customers(first: ${random.pick(['1e3', '0x10', '9999999999999999999999', '-0', '01', '1.0', '-2147483649'])}) { edges { node { id } } } }`,
      };
  }
}

let g: SecurityGateway;
const logs = captureErrorLogs();

beforeAll(async () => {
  g = await startSecurityGateway({ logger: logs.logger });
}, 60_000);
afterAll(() => g?.stop());

describe('GraphQL document battery', () => {
  it('answers ≥ 10,000 generated and mutated documents with coded answers, never a 5xx', async () => {
    const random = createRandom(SEED);
    const docs: Doc[] = [];
    for (let i = 0; i < 3_500; i += 1) docs.push(generated(random));
    for (let i = 0; i < 4_000; i += 1) docs.push(mutated(random));
    for (let i = 0; i < 2_700; i += 1) docs.push(hostile(random));
    const tokens = [g.tokens.acme, g.tokens.globex, g.tokens.closed];
    const tally = new Tally();
    const byKind = new Map<string, number>();
    await runPool(docs, 16, async (doc, i) => {
      byKind.set(doc.kind, (byKind.get(doc.kind) ?? 0) + 1);
      const body = JSON.stringify({
        query: doc.query,
        variables: doc.variables,
        operationName: doc.operationName,
      });
      try {
        const { status, text } = await request(g.pool, {
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${tokens[i % tokens.length]}`,
          },
          body,
        });
        tally.add(judge(status, text), `#${i} ${doc.kind}: ${doc.query.slice(0, 160)}`);
      } catch (error) {
        tally.add({ status: 0, key: 'client error', problem: String(error) }, `#${i} ${doc.kind}`);
      }
    });
    console.log(
      `GraphQL documents (seed ${SEED}): ${tally.total} sent, ${tally.problemCount} contract breaches\nby kind:`,
      Object.fromEntries(byKind),
      '\noutcomes:',
      tally.histogram(),
    );
    expect(tally.problems).toEqual([]);
    expect(tally.total).toBeGreaterThanOrEqual(10_000);
    expect(
      [...tally.counts.keys()].filter((k) => k.startsWith('5') || k === 'client error'),
    ).toEqual([]);
    // Both kinds of refusal and real answers occur: the battery reached execution.
    expect(tally.counts.get('200 data') ?? 0).toBeGreaterThan(500);
    expect(tally.counts.get('400 OPERATION_LIMIT') ?? 0).toBeGreaterThan(100);
    expect(logs.lines).toEqual([]);
    const alive = await request(g.pool, {
      headers: { 'content-type': 'application/json', authorization: `Bearer ${g.tokens.acme}` },
      body: JSON.stringify({ query: '{ viewer { subject } }' }),
    });
    expect(alive.status).toBe(200);
  }, 110_000);
});
