import type { ApolloServerPlugin } from '@apollo/server';
import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayContext } from '../../src/graphql/context.js';
import {
  captureErrorLogs,
  judge,
  request,
  type SecurityGateway,
  startSecurityGateway,
  Tally,
} from './support.js';

// Documents built to make one stage of the pipeline super-linear — fragment fan-out, wide
// overlapping fields, repeated spreads, deep lists, many variables, long alias chains — sent
// twice each (graphql-jit compiles on the second use) to a graphql-js and a graphql-jit
// gateway. Each stage's CPU is counted per document with process.cpuUsage() and must stay
// under a fixed budget, and /healthz, polled all along, must keep answering.

/**
 * CPU one stage may spend on one document. Generous (the slowest legitimate stage here costs a
 * few tens of ms on a busy 2-core machine); what it catches costs seconds to minutes: graphql-jit
 * compiled 26 levels of fragment fan-out for 32 s.
 */
const STAGE_CPU_BUDGET_MS = 1_000;
/** A /healthz poll slower than this means the event loop was held that long. */
const HEALTHZ_DEADLINE_MS = 2_000;

type Stage = 'http adapter' | 'parse' | 'validate' | 'limits' | 'execute';

const cpuNow = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1_000;
};

/** CPU per stage of each request, by request id (requests are sent one at a time). */
class StageMeter {
  readonly byRequest = new Map<string, Partial<Record<Stage, number>>>();
  private readonly marks = new Map<string, number>();

  mark(requestId: string): void {
    this.marks.set(requestId, cpuNow());
  }

  /** Charges the CPU since the last mark to `stage`, and marks again. */
  charge(requestId: string, stage: Stage): void {
    const since = this.marks.get(requestId);
    if (since === undefined) return;
    const now = cpuNow();
    const stages = this.byRequest.get(requestId) ?? {};
    stages[stage] = (stages[stage] ?? 0) + (now - since);
    this.byRequest.set(requestId, stages);
    this.marks.set(requestId, now);
  }

  /** Apollo's stages, from its hooks; the HTTP adapter's share ends where Apollo's starts. */
  plugin(): ApolloServerPlugin<GatewayContext> {
    return {
      requestDidStart: async ({ contextValue: { requestId } }) => {
        this.charge(requestId, 'http adapter');
        return {
          parsingDidStart: async () => {
            this.mark(requestId);
            return async () => this.charge(requestId, 'parse');
          },
          validationDidStart: async () => {
            this.mark(requestId);
            return async () => this.charge(requestId, 'validate');
          },
          // After the limits plugin's (synchronous) didResolveOperation: plugins run in order.
          didResolveOperation: async () => this.charge(requestId, 'limits'),
          executionDidStart: async () => {
            this.mark(requestId);
            return { executionDidEnd: async () => this.charge(requestId, 'execute') };
          },
        };
      },
    };
  }
}

interface Doc {
  kind: string;
  query: string;
  variables?: Record<string, unknown>;
  /** The request body as sent, when JSON.stringify cannot write it (too deep). */
  body?: string;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Each of `levels` fragments spreads the next twice: 2^levels fields once expanded. */
function fanOut(levels: number, body: (next: string) => string, leaf = 'subject'): string {
  const fragments = range(levels).map(
    (i) => `fragment F${i} on Viewer { ${i + 1 < levels ? body(`F${i + 1}`) : leaf} }`,
  );
  return `{ viewer { ...F0 } } ${fragments.join(' ')}`;
}

function adversarialDocuments(): Doc[] {
  const docs: Doc[] = [];
  for (const levels of [10, 16, 22, 26, 40, 90]) {
    docs.push({ kind: 'fragment fan-out', query: fanOut(levels, (f) => `...${f} ...${f}`) });
    docs.push({
      kind: 'fragment fan-out with fields',
      query: fanOut(levels, (f) => `subject tenant { id } ...${f} ...${f}`, 'scopes'),
    });
    docs.push({
      kind: 'fragment fan-out through inline fragments',
      query: fanOut(levels, (f) => `... on Viewer { ...${f} } ... on Viewer { ...${f} }`),
    });
    docs.push({
      kind: 'fan-out in an unused fragment',
      query: fanOut(levels, (f) => `...${f} ...${f}`).replace(
        '{ viewer { ...F0 } }',
        '{ viewer { subject } } fragment Unused on Viewer { ...F0 }',
      ),
    });
  }
  for (const n of [12, 20, 29]) {
    // Every fragment spreads all the later ones: 2^n fields from n²/2 spreads.
    const fragments = range(n).map(
      (i) =>
        `fragment G${i} on Viewer { subject ${range(n - i - 1)
          .map((j) => `...G${i + j + 1}`)
          .join(' ')} }`,
    );
    docs.push({ kind: 'triangular fan-out', query: `{ viewer { ...G0 } } ${fragments.join(' ')}` });
  }
  for (const levels of [4, 8, 12]) {
    // Object nesting that doubles per level through aliases: depth and cost refuse it.
    const fragments = range(levels).map(
      (i) =>
        `fragment C${i} on Customer { id ${i + 1 < levels ? `orders(first: 1) { customer { ...C${i + 1} } } o: orders(first: 1) { customer { ...C${i + 1} } }` : ''} }`,
    );
    docs.push({
      kind: 'aliased object fan-out',
      query: `{ customers(first: 1) { edges { node { ...C0 } } } } ${fragments.join(' ')}`,
    });
  }
  for (const n of [100, 300, 495]) {
    docs.push({ kind: 'wide repeated field', query: `{ viewer { ${'subject '.repeat(n)}} }` });
  }
  for (const n of [50, 100, 160]) {
    docs.push({
      kind: 'wide overlapping objects',
      query: `{ ${range(n)
        .map(() => 'v: viewer { subject }')
        .join(' ')} }`,
    });
    docs.push({
      kind: 'wide conflicting fields',
      query: `{ viewer { ${range(n)
        .map((i) => `a: ${i % 2 ? 'subject' : 'scopes'}`)
        .join(' ')} } }`,
    });
    docs.push({
      kind: 'wide conflicting arguments',
      query: `{ ${range(Math.floor(n / 3))
        .map((i) => `c: customers(first: ${(i % 5) + 1}) { edges { cursor } }`)
        .join(' ')} }`,
    });
  }
  for (const n of [50, 150, 300]) {
    docs.push({
      kind: 'repeated spreads',
      query: `{ viewer { ${'...V '.repeat(n)}} } fragment V on Viewer { subject scopes tenant { id plan displayName features } }`,
    });
  }
  for (const n of [50, 150]) {
    // Many fragments spread in one selection, each spreading a shared one.
    docs.push({
      kind: 'many fragments',
      query: `{ viewer { ${range(n)
        .map((i) => `...M${i}`)
        .join(' ')} } } ${range(n)
        .map((i) => `fragment M${i} on Viewer { tenant { ...T } }`)
        .join(' ')} fragment T on Tenant { id plan }`,
    });
  }
  for (const depth of [20, 200, 480]) {
    docs.push({
      kind: 'deep list literal',
      query: `{ predict(model: "churn", inputs: ${'['.repeat(depth)}1${']'.repeat(depth)}) { score } }`,
    });
  }
  const deepList =
    'query($rows: [[Float!]!]!) { predict(model: "churn", inputs: $rows) { score } }';
  docs.push({
    kind: 'deep list variable',
    query: deepList,
    body: `{"query":${JSON.stringify(deepList)},"variables":{"rows":${'['.repeat(100_000)}1${']'.repeat(100_000)}}}`,
  });
  for (const rows of [1_000, 80_000]) {
    // 80,000 rows: a 1 MB body whose coercion took 0.4 s of CPU.
    docs.push({
      kind: 'wide list variable',
      query: deepList,
      variables: { rows: range(rows).map(() => [1, 2, 3, 4, 5]) },
    });
  }
  for (const n of [50, 200]) {
    docs.push({
      kind: 'many variables',
      query: `query(${range(n)
        .map((i) => `$v${i}: Float!`)
        .join(', ')}) { predict(model: "churn", inputs: [[${range(n)
        .map((i) => `$v${i}`)
        .join(', ')}]]) { score } }`,
      variables: Object.fromEntries(range(n).map((i) => [`v${i}`, i / 10])),
    });
  }
  docs.push({
    kind: 'many unused variables',
    query: `query(${range(300)
      .map((i) => `$u${i}: Int`)
      .join(', ')}) { viewer { subject } }`,
  });
  for (const n of [15, 40]) {
    docs.push({
      kind: 'long alias chain',
      query: `{ ${range(n)
        .map((i) => `a${i}: customers(first: 1) { e${i}: edges { n${i}: node { i${i}: id } } }`)
        .join(' ')} }`,
    });
  }
  docs.push({
    kind: 'long alias names',
    query: `{ ${range(10)
      .map((i) => `${'a'.repeat(50_000)}${i}: viewer { subject }`)
      .join(' ')} }`,
  });
  docs.push({
    kind: 'deep nesting',
    query: `{ customers(first: 1) { edges { node { ${'orders(first: 1) { customer { '.repeat(150)}id${' } }'.repeat(150)} } } } }`,
  });
  docs.push({
    kind: 'directives',
    query: `{ viewer { ${range(60)
      .map((i) => `s${i % 10}: subject @include(if: true)`)
      .join(' ')} } }`,
  });
  docs.push({ kind: 'introspection', query: getIntrospectionQuery() });
  docs.push({
    kind: 'introspection',
    query: getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
      oneOf: true,
    }),
  });
  docs.push({
    kind: 'introspection fan-out',
    query: '{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }',
  });
  docs.push({
    kind: 'introspection ofType chain',
    query: `{ __type(name: "Customer") { ${'ofType { '.repeat(60)}name${' }'.repeat(60)} } }`,
  });
  docs.push({
    kind: 'many operations',
    query: range(120)
      .map((i) => `query Q${i} { viewer { subject } }`)
      .join(' '),
  });
  docs.push({
    kind: 'fragment cycle ring',
    query: `{ viewer { ...R0 } } ${range(100)
      .map((i) => `fragment R${i} on Viewer { subject ...R${(i + 1) % 100} }`)
      .join(' ')}`,
  });
  docs.push({
    kind: 'huge string',
    query: `{ customer(id: "${'x'.repeat(900_000)}") { id } }`,
  });
  return docs;
}

let js: SecurityGateway;
let jit: SecurityGateway;
const logs = captureErrorLogs();
const meter = new StageMeter();

beforeAll(async () => {
  js = await startSecurityGateway({
    logger: logs.logger,
    executor: 'graphql-js',
    plugins: [meter.plugin()],
  });
  // graphql-jit with its defaults (an operation compiles on its second use), over the same rows.
  jit = await startSecurityGateway({
    data: js.data,
    logger: logs.logger,
    executor: 'graphql-jit',
    plugins: [meter.plugin()],
  });
  for (const g of [js, jit]) {
    // First listener: the HTTP adapter's share of a request starts when it arrives.
    g.gateway.gateway.httpServer.prependListener('request', (req) => {
      const id = req.headers['x-request-id'];
      if (typeof id === 'string') meter.mark(id);
    });
  }
}, 60_000);
afterAll(async () => {
  await jit?.stop();
  await js?.stop();
});

/** Polls /healthz of both gateways every 10 ms until stopped; records each answer's latency. */
function pollHealth(gateways: SecurityGateway[]) {
  const latencies: number[] = [];
  const failures: string[] = [];
  let running = true;
  const loops = gateways.map(async (g) => {
    while (running) {
      const started = performance.now();
      try {
        const response = await fetch(`${g.gateway.url}/healthz`, {
          signal: AbortSignal.timeout(HEALTHZ_DEADLINE_MS),
        });
        if (response.status !== 200) failures.push(`status ${response.status}`);
        await response.arrayBuffer();
        latencies.push(performance.now() - started);
      } catch (error) {
        failures.push(String(error));
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });
  return {
    latencies,
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe('execution stays bounded for every document a plan admits', () => {
  it('each stage of each adversarial document stays under a fixed CPU budget; /healthz answers throughout', async () => {
    const docs = adversarialDocuments();
    const tally = new Tally();
    const overBudget: string[] = [];
    const worst = new Map<Stage, { cpu: number; doc: string }>();
    const health = pollHealth([js, jit]);
    let sent = 0;
    try {
      for (const [i, doc] of docs.entries()) {
        for (const [name, g] of [
          ['graphql-js', js],
          ['graphql-jit', jit],
        ] as const) {
          // Twice: graphql-jit compiles an operation on its second use.
          for (let use = 1; use <= 2; use += 1) {
            const requestId = `${name}-${i}-${use}`;
            const { status, text } = await request(g.pool, {
              headers: {
                'content-type': 'application/json',
                authorization: `Bearer ${g.tokens.acme}`,
                'x-request-id': requestId,
              },
              body: doc.body ?? JSON.stringify({ query: doc.query, variables: doc.variables }),
            });
            sent += 1;
            const label = `${requestId} ${doc.kind} (${doc.query.length} chars)`;
            tally.add(judge(status, text), label);
            for (const [stage, cpu] of Object.entries(meter.byRequest.get(requestId) ?? {}) as [
              Stage,
              number,
            ][]) {
              if (cpu > (worst.get(stage)?.cpu ?? -1)) worst.set(stage, { cpu, doc: label });
              if (cpu > STAGE_CPU_BUDGET_MS) overBudget.push(`${label}: ${stage} ${cpu} ms`);
            }
          }
        }
      }
    } finally {
      await health.stop();
    }
    const slowest = Math.max(...health.latencies);
    console.log(
      `adversarial documents: ${docs.length} documents, ${sent} requests, ${tally.problemCount} contract breaches, ${overBudget.length} stages over ${STAGE_CPU_BUDGET_MS} ms of CPU\noutcomes:`,
      tally.histogram(),
      '\nworst CPU per stage (ms):',
      Object.fromEntries(
        [...worst].map(([stage, { cpu, doc }]) => [stage, `${cpu.toFixed(1)} ${doc}`]),
      ),
      `\n/healthz: ${health.latencies.length} answers, ${health.failures.length} failures, slowest ${slowest.toFixed(0)} ms`,
    );
    expect(overBudget).toEqual([]);
    expect(tally.problems).toEqual([]);
    expect(health.failures).toEqual([]);
    expect(health.latencies.length).toBeGreaterThan(sent / 4);
    expect(slowest).toBeLessThan(HEALTHZ_DEADLINE_MS);
    // The battery reached every stage, under both executors.
    for (const stage of ['http adapter', 'parse', 'validate', 'limits', 'execute'] as const) {
      expect(worst.has(stage), stage).toBe(true);
    }
    expect(tally.counts.get('400 OPERATION_LIMIT') ?? 0).toBeGreaterThan(20);
    expect(tally.counts.get('200 data') ?? 0).toBeGreaterThan(20);
    expect(logs.lines).toEqual([]);
  }, 120_000);
});
