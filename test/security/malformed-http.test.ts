import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  captureErrorLogs,
  createRandom,
  judge,
  type Random,
  request,
  runPool,
  type SecurityGateway,
  sendRaw,
  startSecurityGateway,
  Tally,
} from './support.js';

// ≥ 2,000 malformed HTTP requests against the real gateway: every answer a coded 4xx (or a
// 200 with data when the request turns out to be valid after all), never a 5xx, never a crash.

interface PoolCase {
  kind: 'pool';
  label: string;
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
}
interface RawCase {
  kind: 'raw';
  label: string;
  bytes: Buffer | string;
  /**
   * Node itself answers a bare 400 (no body) to an HTTP/1.1 request without Host (RFC 9112
   * §3.2, `requireHostHeader`), before any listener of ours could code it.
   */
  bareNodeAnswer?: boolean;
}
type Case = PoolCase | RawCase;

const VALID_BODIES = [
  '{"query":"{ viewer { subject } }"}',
  '{"query":"query($id: ID!) { customer(id: $id) { id name } }","variables":{"id":"x"}}',
  '{"query":"{ customers(first: 3) { edges { node { id } } } }","operationName":null,"extensions":{}}',
];

function jsonHeaders(token: string, extra: Record<string, string> = {}) {
  return { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...extra };
}

function badJson(token: string, random: Random): PoolCase[] {
  const cases: PoolCase[] = [];
  // Every truncation of every valid body.
  for (const [b, body] of VALID_BODIES.entries()) {
    for (let n = 0; n < body.length; n += 1) {
      cases.push({
        kind: 'pool',
        label: `truncated ${b}@${n}`,
        headers: jsonHeaders(token),
        body: body.slice(0, n),
      });
    }
  }
  // Seeded byte mutations: insert, delete or replace with JSON-significant characters.
  const alphabet = '{}[]":,\\ntfu0123456789e.+-/ \t\u0000\u2028';
  for (let i = 0; i < 500; i += 1) {
    let body = random.pick(VALID_BODIES);
    const edits = 1 + random.int(4);
    for (let e = 0; e < edits; e += 1) {
      const at = random.int(body.length);
      const op = random.int(3);
      const ch = random.pick([...alphabet]);
      body =
        op === 0
          ? body.slice(0, at) + ch + body.slice(at)
          : op === 1
            ? body.slice(0, at) + body.slice(at + 1)
            : body.slice(0, at) + ch + body.slice(at + 1);
    }
    cases.push({ kind: 'pool', label: `mutated json #${i}`, headers: jsonHeaders(token), body });
  }
  const fixed = [
    'NaN',
    'Infinity',
    '-',
    '{',
    '}',
    '[',
    '"',
    '\\',
    '{"query":NaN}',
    '{"query":Infinity}',
    '{"query":"{ viewer { subject } }" /* c */}',
    "{'query':'{ viewer { subject } }'}",
    '{"query":"{ viewer { subject } }",}',
    '{"query":"a","query":"{ viewer { subject } }"}',
    '\ufeff{"query":"{ viewer { subject } }"}',
    '{"query":"\\ud800"}',
    '{"query":"\\u00"}',
    '{"query":"\u0001\u0002"}',
    '{"query":1e400}',
    '{"query":-0}',
    '{"query":"{ viewer { subject } }"} trailing',
    '{"query":"{ viewer { subject } }"}{"query":"x"}',
    '{"__proto__":{"query":"{ viewer { subject } }"}}',
    '{"constructor":{"prototype":{"query":"x"}}}',
    '{"query":"{ viewer { subject } }","variables":{"__proto__":{"admin":true}}}',
    ' ',
    '\n\n',
    'null',
    'true',
    '0',
    '""',
    '{"query":""}',
    '{"query":"   "}',
    '{"query":"#"}',
  ];
  for (const [i, body] of fixed.entries()) {
    cases.push({ kind: 'pool', label: `fixed json #${i}`, headers: jsonHeaders(token), body });
  }
  return cases;
}

const CONTENT_TYPES = [
  'text/plain',
  'text/plain; charset=utf-8',
  'text/html',
  'text/xml',
  'application/xml',
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  'multipart/form-data; boundary=x',
  'multipart/mixed',
  'application/graphql',
  'application/graphql+json',
  'application/octet-stream',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'APPLICATION/JSON',
  'application/json;',
  'application/json;;;',
  'application/json; boundary=--',
  'application/jsonx',
  'application/json-patch+json',
  'application/ld+json',
  'application/graphql-response+json',
  'application/*',
  '*/*',
  '',
  ' ',
  'garbage',
  'json',
  'application/',
  '/json',
  'text/json',
  'application/javascript',
  'image/png',
  'application/x-ndjson',
  'application/csp-report',
  'application/json, text/plain',
  'text/plain, application/json',
  'application/json\tq=1',
  'x'.repeat(2_000),
  'application/json; charset="utf-8"',
  'application/cbor',
  'application/msgpack',
];

function contentTypes(token: string): PoolCase[] {
  const bodies = [
    VALID_BODIES[0] ?? '',
    '',
    '{ viewer { subject } }',
    'query=%7Bviewer%7Bsubject%7D%7D',
  ];
  return CONTENT_TYPES.flatMap((type, t) =>
    bodies.map((body, b) => ({
      kind: 'pool' as const,
      label: `content-type ${t}/${b} ${JSON.stringify(type.slice(0, 40))}`,
      headers: { 'content-type': type, authorization: `Bearer ${token}` },
      body,
    })),
  );
}

function oversized(token: string): Case[] {
  const pad = (n: number) =>
    JSON.stringify({ query: '{ viewer { subject } }', pad: 'x'.repeat(n) });
  const url = 'http://gateway.invalid';
  return [
    {
      kind: 'pool',
      label: 'oversized 1 MiB + 1',
      headers: jsonHeaders(token),
      body: pad(1024 * 1024),
    },
    {
      kind: 'pool',
      label: 'oversized 3 MiB',
      headers: jsonHeaders(token),
      body: pad(3 * 1024 * 1024),
    },
    {
      kind: 'pool',
      label: 'oversized query string value',
      headers: jsonHeaders(token),
      body: JSON.stringify({ query: `{ ${'a '.repeat(600_000)}}` }),
    },
    {
      kind: 'pool',
      label: 'oversized variables',
      headers: jsonHeaders(token),
      body: JSON.stringify({
        query: '{ viewer { subject } }',
        variables: { v: 'y'.repeat(1_100_000) },
      }),
    },
    {
      kind: 'raw',
      label: 'declared 10 GB',
      bytes: `POST /graphql HTTP/1.1\r\nHost: ${new URL(url).host}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{}`,
    },
    {
      kind: 'raw',
      label: 'chunked past the limit',
      bytes: Buffer.concat([
        Buffer.from(
          `POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
        ),
        ...Array.from({ length: 20 }, () => Buffer.from(`10000\r\n${'z'.repeat(0x10000)}\r\n`)),
        Buffer.from('0\r\n\r\n'),
      ]),
    },
  ];
}

const BAD_UTF8 = [
  Buffer.from([0xff]),
  Buffer.from([0xfe, 0xff]),
  Buffer.from([0xc0, 0xaf]),
  Buffer.from([0xe0, 0x80, 0xaf]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0x80]),
  Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0xc3]),
];

function invalidUtf8(token: string, random: Random): PoolCase[] {
  const cases: PoolCase[] = [];
  for (let i = 0; i < 320; i += 1) {
    const body = Buffer.from(random.pick(VALID_BODIES), 'utf8');
    const at = random.int(body.length + 1);
    const bad = random.pick(BAD_UTF8);
    cases.push({
      kind: 'pool',
      label: `invalid utf-8 #${i}`,
      headers: jsonHeaders(token),
      body: Buffer.concat([body.subarray(0, at), bad, body.subarray(at)]),
    });
  }
  return cases;
}

function deepNesting(token: string): PoolCase[] {
  const cases: PoolCase[] = [];
  for (const depth of [1_000, 10_000, 100_000]) {
    const arrays = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const objects = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    cases.push(
      { kind: 'pool', label: `json arrays ${depth}`, headers: jsonHeaders(token), body: arrays },
      { kind: 'pool', label: `json objects ${depth}`, headers: jsonHeaders(token), body: objects },
      {
        kind: 'pool',
        label: `variables arrays ${depth}`,
        headers: jsonHeaders(token),
        body: `{"query":"query($l: [[Float!]!]!) { predict(model: \\"churn\\", inputs: $l) { score } }","variables":{"l":${arrays}}}`,
      },
      {
        kind: 'pool',
        label: `variables objects ${depth}`,
        headers: jsonHeaders(token),
        body: `{"query":"query($id: ID!) { customer(id: $id) { id } }","variables":{"id":${objects}}}`,
      },
      {
        kind: 'pool',
        label: `extensions ${depth}`,
        headers: jsonHeaders(token),
        body: `{"query":"{ viewer { subject } }","extensions":${objects}}`,
      },
    );
  }
  for (const depth of [100, 300, 1_000, 5_000]) {
    const graphql = [
      `{ ${'viewer { '.repeat(depth)}subject${' }'.repeat(depth)} }`,
      `{ ${'a { '.repeat(depth)}b${' }'.repeat(depth)} }`,
      `{ customers { edges { node { ${'orders { customer { '.repeat(depth / 2)}id${' } }'.repeat(depth / 2)} } } } }`,
      `{ predict(model: "churn", inputs: ${'['.repeat(depth)}1${']'.repeat(depth)}) { score } }`,
      `{ customer(id: ${'{ a: '.repeat(depth)}1${' }'.repeat(depth)}) { id } }`,
      `query Q${'($v: Int)'.repeat(1)} { viewer { subject ${'@include(if: true) '.repeat(Math.min(depth, 200))}} }`,
      `${'fragment F on Viewer { subject ...F } '.repeat(1)}{ viewer { ...F } }`,
    ];
    for (const [i, query] of graphql.entries()) {
      cases.push({
        kind: 'pool',
        label: `graphql nesting ${depth}/${i}`,
        headers: jsonHeaders(token),
        body: JSON.stringify({ query }),
      });
    }
  }
  return cases;
}

function wrongShapes(tokens: string[]): PoolCase[] {
  const q = '"{ viewer { subject } }"';
  const bodies = [
    '[]',
    '[{}]',
    `[{"query":${q}}]`,
    '"str"',
    '1',
    'null',
    'true',
    '{}',
    '{"query":null}',
    '{"query":1}',
    '{"query":[]}',
    `{"query":[${q}]}`,
    '{"query":{}}',
    '{"query":true}',
    `{"query":${q},"variables":[]}`,
    `{"query":${q},"variables":"s"}`,
    `{"query":${q},"variables":1}`,
    `{"query":${q},"variables":true}`,
    `{"query":${q},"variables":[{"a":1}]}`,
    `{"query":${q},"operationName":1}`,
    `{"query":${q},"operationName":{}}`,
    `{"query":${q},"operationName":[]}`,
    `{"query":${q},"operationName":"Nope"}`,
    `{"query":${q},"operationName":""}`,
    `{"query":${q},"extensions":[]}`,
    `{"query":${q},"extensions":"s"}`,
    `{"query":${q},"extensions":1}`,
    `{"query":${q},"extensions":{"persistedQuery":[]}}`,
    `{"query":${q},"extensions":{"persistedQuery":{"version":"1"}}}`,
    `{"query":${q},"extensions":{"persistedQuery":{"version":1,"sha256Hash":1}}}`,
    '{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}',
    `{"query":${q},"extensions":{"persistedQuery":{"version":2,"sha256Hash":"x"}}}`,
    `{"Query":${q}}`,
    `{"QUERY":${q}}`,
    `{"query ":${q}}`,
    `{"variables":{}}`,
    `{"query":"query A { viewer { subject } } query B { viewer { subject } }"}`,
    `{"query":"query A { viewer { subject } } query B { viewer { subject } }","operationName":"C"}`,
    `{"query":"subscription { viewer { subject } }"}`,
    `{"query":"mutation { viewer }"}`,
    `{"query":"{ viewer { subject } }","id":"x","doc_id":1}`,
    `{"documentId":"abc"}`,
    `{"query":${q},"variables":null,"operationName":null,"extensions":null}`,
  ];
  return tokens.flatMap((token, t) =>
    bodies.map((body, b) => ({
      kind: 'pool' as const,
      label: `shape ${t}/${b}`,
      headers: jsonHeaders(token),
      body,
    })),
  );
}

const HOSTILE_VALUES: unknown[] = [
  null,
  '',
  'x',
  0,
  1,
  -1,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 53 + 1,
  1.5,
  1e308,
  -1e308,
  true,
  false,
  [],
  {},
  [1],
  [[1]],
  [[1, 2, 3, 4, 5]],
  { a: 1 },
  '__proto__',
  { __proto__: { x: 1 } },
  { constructor: { prototype: {} } },
  'A'.repeat(10_000),
  '\u0000',
  'SMB',
  'smb',
  'ENTERPRISE',
  ' SMB',
  '1e3',
  '0x10',
  'NaN',
  '∞',
  '\ud800',
  "'; DROP TABLE customers; --",
  "cus_1' OR 1=1 --",
  '../../etc/passwd',
  '%00',
  '${jndi:ldap://x}',
  Array.from({ length: 101 }, () => [1, 2, 3, 4, 5]),
  [[Number.MAX_VALUE, 1, 1, 1, 1]],
];

function badVariables(token: string): PoolCase[] {
  const query =
    'query($id: ID!, $n: Int, $seg: Segment, $model: String!, $rows: [[Float!]!]!, $after: String) { customer(id: $id) { id } customers(first: $n, segment: $seg, after: $after) { edges { node { id } } } predict(model: $model, inputs: $rows) { score } }';
  const good: Record<string, unknown> = {
    id: 'x',
    n: 2,
    seg: 'SMB',
    model: 'churn',
    rows: [[1, 2, 3, 4, 5]],
    after: null,
  };
  const cases: PoolCase[] = [];
  for (const name of Object.keys(good)) {
    for (const [v, value] of HOSTILE_VALUES.entries()) {
      cases.push({
        kind: 'pool',
        label: `variable ${name}=#${v}`,
        headers: jsonHeaders(token),
        body: JSON.stringify({ query, variables: { ...good, [name]: value } }),
      });
    }
    const { [name]: _missing, ...rest } = good;
    cases.push({
      kind: 'pool',
      label: `variable ${name} missing`,
      headers: jsonHeaders(token),
      body: JSON.stringify({ query, variables: rest }),
    });
  }
  cases.push(
    {
      kind: 'pool',
      label: 'variables unknown extra',
      headers: jsonHeaders(token),
      body: JSON.stringify({ query, variables: { ...good, zzz: 1 } }),
    },
    {
      kind: 'pool',
      label: 'variables none',
      headers: jsonHeaders(token),
      body: JSON.stringify({ query }),
    },
    {
      kind: 'pool',
      label: 'variable undeclared use',
      headers: jsonHeaders(token),
      body: JSON.stringify({ query: '{ customer(id: $id) { id } }', variables: { id: 'x' } }),
    },
    {
      kind: 'pool',
      label: 'variable wrong declared type',
      headers: jsonHeaders(token),
      body: JSON.stringify({
        query: 'query($id: Int) { customer(id: $id) { id } }',
        variables: { id: 1 },
      }),
    },
    {
      kind: 'pool',
      label: 'variable unknown type',
      headers: jsonHeaders(token),
      body: JSON.stringify({
        query: 'query($id: Nope!) { customer(id: $id) { id } }',
        variables: { id: 1 },
      }),
    },
  );
  return cases;
}

function badQueryStrings(token: string): PoolCase[] {
  const q = encodeURIComponent('{ viewer { subject } }');
  const searches = [
    '',
    '?',
    '?&&&',
    '?query=',
    `?query=${q}&query=${q}`,
    '?query=%ZZ',
    '?query=%ff%fe',
    '?query=%',
    '?query=%E2%82',
    `?query=${q}&variables=notjson`,
    `?query=${q}&variables=%5B1%5D`,
    `?query=${q}&variables=%7B`,
    `?query=${q}&variables=1`,
    `?query=${q}&variables=null`,
    `?query=${q}&extensions=%5B%5D`,
    `?query=${q}&extensions=garbage`,
    `?query=${q}&operationName=`,
    `?query=${q}&operationName=Nope`,
    `?query[]=${q}`,
    `?query[a]=${q}`,
    `?QUERY=${q}`,
    `?query=${encodeURIComponent('mutation { x }')}`,
    `?query=${encodeURIComponent('subscription { viewer { subject } }')}`,
    `?query=${encodeURIComponent('{ viewer { subject } }\u0000')}`,
    `?query=${'a'.repeat(10_000)}`,
    `?query=${encodeURIComponent(`{ ${'viewer '.repeat(1_500)}}`)}`,
    `?query=${encodeURIComponent('{ customers(first: 100000) { edges { node { id orders(first: 50) { id } } } } }')}`,
    `?query=${q}&extensions=${encodeURIComponent('{"persistedQuery":{"version":1,"sha256Hash":"abc"}}')}`,
    `?extensions=${encodeURIComponent('{"persistedQuery":{"version":1,"sha256Hash":"abc"}}')}`,
    '?query=+++',
    '?query=%20',
    `?query=${q}#frag`,
    `?variables=${encodeURIComponent('{"a":1}')}`,
    `?query=${encodeURIComponent('query($n: Int) { customers(first: $n) { edges { node { id } } } }')}&variables=${encodeURIComponent('{"n":"x"}')}`,
    `?query=${encodeURIComponent('query($n: Int) { customers(first: $n) { edges { node { id } } } }')}&variables=${encodeURIComponent('{"n":1e400}')}`,
    `?query=${encodeURIComponent('{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }')}`,
    `?query=${encodeURIComponent('{ viewer { subject } } { viewer { subject } }')}`,
    `?query=${encodeURIComponent('{ viewer { ...F } } fragment F on Viewer { ...F }')}`,
    `?query=${q}&${'x=1&'.repeat(500)}`,
    `?query=${q}&variables=${encodeURIComponent(`${'['.repeat(1000)}${']'.repeat(1000)}`)}`,
  ];
  const cases: PoolCase[] = [];
  for (const [i, search] of searches.entries()) {
    for (const preflight of [true, false]) {
      for (const path of ['/graphql', '/t/acme/graphql']) {
        cases.push({
          kind: 'pool',
          label: `GET ${i} preflight=${preflight} ${path}`,
          method: 'GET',
          path: `${path}${search}`,
          headers: {
            authorization: `Bearer ${token}`,
            ...(preflight ? { 'apollo-require-preflight': 'true' } : {}),
          },
        });
      }
    }
  }
  return cases;
}

function headerAbuse(token: string, otherToken: string): Case[] {
  const body = VALID_BODIES[0] ?? '';
  const auths: (string | string[] | undefined)[] = [
    undefined,
    '',
    'Bearer',
    'Bearer ',
    'Bearer  ',
    `Bearer  ${token}`,
    `bearer ${token}`,
    `BEARER ${token}`,
    'Basic dXNlcjpwYXNz',
    'Token x',
    'Bearer a.b.c',
    'Bearer ....',
    'Bearer a.b',
    `Bearer ${token}.x`,
    `Bearer ${token} extra`,
    `Bearer ${'a'.repeat(8_000)}`,
    `Bearer ${token.split('.').reverse().join('.')}`,
    [`Bearer ${token}`, `Bearer ${otherToken}`],
    `Bearer ${token}, Bearer ${otherToken}`,
    `Bearer\t${token}`,
    `Bearer ${token.replace(/.$/, '')}`,
    `Bearer ${token}=`,
    `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}..`,
    `Bearer ${encodeURIComponent(token)}`,
    'Bearer null',
    'Bearer undefined',
    'Bearer {}',
    'Negotiate abc',
  ];
  const cases: Case[] = auths.map((auth, i) => ({
    kind: 'pool' as const,
    label: `authorization #${i}`,
    headers: {
      'content-type': 'application/json',
      ...(auth === undefined ? {} : { authorization: auth }),
    },
    body,
  }));
  const headerSets: Record<string, string | string[]>[] = [
    { host: 'evil.example.com' },
    { host: 'globex.api.example.com' },
    { host: `${'a'.repeat(300)}.com` },
    { 'x-request-id': '../../../etc' },
    { 'x-request-id': 'x'.repeat(5_000) },
    { 'x-request-id': '<script>' },
    { 'x-forwarded-for': '1.2.3.4, globex' },
    { 'x-tenant': 'globex' },
    { 'x-atrium-tenant': 'globex' },
    { accept: 'text/html' },
    { accept: 'application/graphql-response+json' },
    { accept: 'multipart/mixed' },
    { accept: 'application/xml' },
    { accept: '' },
    { accept: 'x'.repeat(4_000) },
    { 'apollo-require-preflight': 'x'.repeat(4_000) },
    { 'content-encoding': 'gzip' },
    { 'content-encoding': 'br' },
    { cookie: 'tenant=globex; session=x' },
    { origin: 'https://evil.example.com' },
    { 'x-http-method-override': 'GET' },
    Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`x-h${i}`, 'v'])),
    { 'x-big': 'v'.repeat(20_000) },
    { 'if-none-match': '*' },
    { range: 'bytes=0-1' },
    { te: 'trailers' },
  ];
  for (const [i, headers] of headerSets.entries()) {
    cases.push({
      kind: 'pool',
      label: `headers #${i}`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
      body,
    });
  }
  const auth = `Authorization: Bearer ${token}\r\n`;
  const raws = [
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nContent-Length: 5\r\n\r\n${body}`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Bad Header: y\r\nContent-Length: 0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}X-Null: a\u0000b\r\nContent-Length: 0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}X-Fold: a\r\n  folded\r\nContent-Length: 0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}X-Inject: a\rb\r\nContent-Length: 0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \u00e9\u00e8\r\nContent-Length: 0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: -1\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Expect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Expect: nonsense\r\nContent-Length: 0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: abc\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 1e3\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: identity\r\n\r\n`,
    `POST http://evil.example.com/graphql HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    `POST /graphql HTTP/1.0\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\nHost: y\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}${'X-Many: y\r\n'.repeat(3_000)}Content-Length: 0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}X-Huge: ${'h'.repeat(70_000)}\r\nContent-Length: 0\r\n\r\n`,
    `POST /graphql HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}GARBAGE / HTTP/1.1\r\n\r\n`,
  ];
  for (const [i, bytes] of raws.entries())
    cases.push({ kind: 'raw', label: `raw header #${i}`, bytes });
  cases.push({
    kind: 'raw',
    label: 'HTTP/1.1 without Host',
    bytes: `POST /graphql HTTP/1.1\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    bareNodeAnswer: true,
  });
  return cases;
}

function methodsAndPaths(token: string): Case[] {
  const methods = ['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'HEAD', 'GET', 'POST'];
  const paths = [
    '/graphql',
    '/t/acme/graphql',
    '/t/ACME/graphql',
    '/t/%ZZ/graphql',
    '/t/../graphql',
    '/t//graphql',
    '/t/globex/graphql',
    '/t/acme%2fx/graphql',
    '/t/%00/graphql',
    '//graphql',
    '/graphql?%',
    '/nope',
    `/${'a'.repeat(5_000)}`,
    '/t/acme/graphql/extra',
    '/GRAPHQL',
    '/graphql;x',
    '/graphql%00',
    '/t/acme/graphql%2F',
  ];
  const cases: Case[] = [];
  for (const method of methods) {
    for (const path of paths) {
      cases.push({
        kind: 'pool',
        label: `${method} ${path.slice(0, 40)}`,
        method,
        path,
        headers:
          method === 'GET' || method === 'HEAD'
            ? { authorization: `Bearer ${token}` }
            : jsonHeaders(token),
        body:
          method === 'GET' || method === 'HEAD' || method === 'TRACE' ? undefined : VALID_BODIES[0],
      });
    }
  }
  return cases;
}

function rawGarbage(random: Random): RawCase[] {
  const cases: RawCase[] = [
    { kind: 'raw', label: 'http/0.9', bytes: 'GET /graphql\r\n\r\n' },
    { kind: 'raw', label: 'http/9.9', bytes: 'GET /graphql HTTP/9.9\r\nHost: x\r\n\r\n' },
    { kind: 'raw', label: 'no method', bytes: ' /graphql HTTP/1.1\r\nHost: x\r\n\r\n' },
    { kind: 'raw', label: 'lf only', bytes: 'GET /graphql HTTP/1.1\nHost: x\n\n' },
    { kind: 'raw', label: 'space in uri', bytes: 'GET /gra phql HTTP/1.1\r\nHost: x\r\n\r\n' },
    { kind: 'raw', label: 'tls hello', bytes: Buffer.from('16030100a5010000a10303', 'hex') },
    { kind: 'raw', label: 'h2 preface', bytes: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' },
    {
      kind: 'raw',
      label: 'connect',
      bytes: 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n',
    },
    {
      kind: 'raw',
      label: 'long uri',
      bytes: `GET /${'u'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    },
  ];
  for (let i = 0; i < 60; i += 1) {
    const bytes = Buffer.alloc(1 + random.int(300));
    for (let b = 0; b < bytes.length; b += 1) bytes[b] = random.int(256);
    cases.push({
      kind: 'raw',
      label: `random bytes #${i}`,
      bytes: Buffer.concat([bytes, Buffer.from('\r\n\r\n')]),
    });
  }
  return cases;
}

let g: SecurityGateway;
const logs = captureErrorLogs();

beforeAll(async () => {
  g = await startSecurityGateway({ logger: logs.logger });
}, 60_000);
afterAll(() => g?.stop());

describe('malformed HTTP battery', () => {
  it('answers ≥ 2,000 malformed requests with coded 4xx (or valid 200s), never a 5xx', async () => {
    const random = createRandom(0x5eed_0001);
    const { acme, globex } = g.tokens;
    const cases: Case[] = [
      ...badJson(acme, random),
      ...contentTypes(acme),
      ...oversized(acme),
      ...invalidUtf8(acme, random),
      ...deepNesting(acme),
      ...wrongShapes([acme, globex]),
      ...badVariables(acme),
      ...badQueryStrings(acme),
      ...headerAbuse(acme, globex),
      ...methodsAndPaths(acme),
      ...rawGarbage(random),
    ];
    const tally = new Tally();
    let noAnswer = 0;
    const closedLabels: string[] = [];
    await runPool(cases, 16, async (c) => {
      if (c.kind === 'raw') {
        const { status, body } = await sendRaw(g.gateway.url, c.bytes);
        if (status === undefined) {
          noAnswer += 1;
          closedLabels.push(c.label);
          tally.add({ status: 0, key: 'closed', problem: 'closed without an answer' }, c.label);
          return;
        }
        tally.add(
          c.bareNodeAnswer && status === 400 && body === ''
            ? { status, key: '400 bare (Node: no Host)' }
            : judge(status, body),
          c.label,
        );
        return;
      }
      try {
        const { status, text } = await request(g.pool, c);
        tally.add(judge(status, text, c.method), c.label);
      } catch (error) {
        tally.add({ status: 0, key: 'client error', problem: String(error) }, c.label);
      }
    });
    console.log(
      `malformed HTTP: ${tally.total} requests, ${tally.problemCount} contract breaches, ${noAnswer} closed without an answer (${closedLabels.join(', ')})\n`,
      tally.histogram(),
    );
    expect(tally.problems).toEqual([]);
    expect(tally.total).toBeGreaterThanOrEqual(2_000);
    expect([...tally.counts.keys()].filter((k) => k.startsWith('5'))).toEqual([]);
    expect(logs.lines).toEqual([]);
    // Still up and serving.
    const alive = await request(g.pool, {
      headers: jsonHeaders(acme),
      body: VALID_BODIES[0],
    });
    expect(alive.status).toBe(200);
  }, 110_000);
});
