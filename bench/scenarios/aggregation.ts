/**
 * Scenario 2 — aggregation. `customers(first: N)` with each customer's orders and churnRisk,
 * through the real gateway on the real PostgreSQL and the reference model server, prediction
 * cache off (`inference.cacheTtlSeconds: 0`, else it would measure the cache).
 *
 * Backend round trips per query are counted outside the gateway, where they land:
 * - data statements: `xact_commit` of the run's own database (pg_stat_database). The gateway runs
 *   every data statement in its own transaction, and nothing else uses that database, so the
 *   delta is the statement count. (pg_stat_statements is not installed here, and a spawned
 *   gateway cannot share an onQuery hook with this process.)
 * - infer calls: the model server's own counters (GET /stats).
 * Counted once with one query at a time (the per-query figure), and again under load, where
 * concurrent queries may share infer calls through micro-batching.
 */
import { type BenchContext, interleavedRounds, type Target } from '../lib/context.js';
import { benchConfig, benchTenant, REDIS_URL } from '../lib/environment.js';
import {
  expectClean,
  graphql,
  modelServerStats,
  resetModelServerStats,
  total,
} from '../lib/graphql-client.js';
import { type LoadResult, runLoad } from '../lib/load.js';
import { startAtrium } from '../lib/processes.js';
import { figure, type Figure, type ScenarioReport } from '../lib/report.js';
import { summarize } from './overhead.js';

export const SIZES = [10, 50, 200] as const;
export const AGGREGATION_CONNECTIONS = 16;
const PROBE_QUERIES = 20;
/** Requests per connection in the counted run under load. */
const COUNTED_PER_CONNECTION = 12;
const NODE = 'edges { node { id orders(first: 5) { id amount } churnRisk { score label } } }';

/** Counters read around a run. */
export interface Counted {
  queries: number;
  statementsPerQuery: number;
  inferCallsPerQuery: number;
  rowsPerInferCall: number;
}

/**
 * The query for N customers. The schema caps a page (`first`) at `maxPage`; above it the query
 * asks for consecutive pages as aliased root fields, one customers statement each.
 */
export function aggregationQuery(n: number, maxPage: number, cursors: readonly string[]): string {
  if (n <= maxPage) return `{ customers(first: ${n}) { ${NODE} } }`;
  const pages: string[] = [];
  for (let start = 0, i = 0; start < n; start += maxPage, i += 1) {
    const after = i === 0 ? '' : `, after: ${JSON.stringify(cursors[i - 1])}`;
    pages.push(`p${i}: customers(first: ${Math.min(maxPage, n - start)}${after}) { ${NODE} }`);
  }
  return `{ ${pages.join(' ')} }`;
}

/** The largest `first` the gateway accepts, read from its refusal of `wanted` (if any). */
async function maxPageSize(url: string, token: string, wanted: number): Promise<number> {
  const answer = await graphql(url, token, `{ customers(first: ${wanted}) { edges { cursor } } }`);
  if (!answer.errors) return wanted;
  const bound = /between 1 and (\d+)/.exec(answer.errors[0]?.message ?? '');
  if (!bound?.[1]) throw new Error(`customers(first: ${wanted}): ${JSON.stringify(answer.errors)}`);
  return Number(bound[1]);
}

export interface AggregationSetup {
  url: string;
  pid: number;
  token: string;
  maxPage: number;
  queries: Map<number, string>;
}

/** Page bound, cursors and the query of each N, checked once for a clean, complete answer. */
export async function prepareAggregation(
  ctx: BenchContext,
  url: string,
  token: string,
): Promise<Omit<AggregationSetup, 'pid'>> {
  const largest = Math.max(...SIZES);
  const maxPage = await maxPageSize(url, token, largest);
  const cursors: string[] = [];
  for (let after: string | undefined, seen = maxPage; seen < largest; seen += maxPage) {
    const data = expectClean(
      await graphql(
        url,
        token,
        'query($first: Int!, $after: String) { customers(first: $first, after: $after) { pageInfo { endCursor } } }',
        { first: maxPage, after },
      ),
      'cursor',
    ) as { customers: { pageInfo: { endCursor: string } } };
    after = data.customers.pageInfo.endCursor;
    cursors.push(after);
  }
  const queries = new Map<number, string>();
  for (const n of SIZES) {
    const query = aggregationQuery(n, maxPage, cursors);
    const data = expectClean(await graphql(url, token, query), `N=${n}`);
    const nodes = Object.values(data).flatMap(
      (page) => (page as { edges: { node: { churnRisk: unknown } }[] }).edges,
    );
    if (nodes.length !== n || nodes.some((e) => e.node.churnRisk === null)) {
      throw new Error(`N=${n}: ${nodes.length} customers, or a missing churnRisk`);
    }
    queries.set(n, query);
  }
  ctx.log(`aggregation: page bound ${maxPage}; queries checked for N = ${SIZES.join(', ')}`);
  return { url, token, maxPage, queries };
}

/**
 * Data statements and infer calls per query around `run` (which returns how many queries it
 * made), counted by PostgreSQL and by the model server.
 */
export async function countAround(
  ctx: BenchContext,
  modelUrl: string,
  run: () => Promise<number>,
): Promise<Counted> {
  await resetModelServerStats(modelUrl);
  const before = await ctx.db.committedTransactions();
  const queries = await run();
  const statements = (await ctx.db.committedTransactions()) - before;
  const stats = await modelServerStats(modelUrl);
  const calls = total(stats.inferRequests);
  return {
    queries,
    statementsPerQuery: statements / queries,
    inferCallsPerQuery: calls / queries,
    rowsPerInferCall: total(stats.inferredRows) / calls,
  };
}

/** The same counts under concurrent load: a fixed number of requests, every one answered. */
export function countUnderLoad(
  ctx: BenchContext,
  modelUrl: string,
  target: Target,
  amount: number,
): Promise<Counted> {
  return countAround(ctx, modelUrl, async () => {
    const result = await runLoad({ ...target.spec, warmupSeconds: 0, durationSeconds: 1, amount });
    if (result.ok !== amount) {
      throw new Error(
        `${target.name}: ${result.ok} of ${amount} answers were clean: ${result.firstError ?? ''}`,
      );
    }
    return amount;
  });
}

/** Round trips of one query at a time: no other query can share a batch with it. */
export async function probeRoundTrips(
  ctx: BenchContext,
  modelUrl: string,
  setup: Omit<AggregationSetup, 'pid'>,
  n: number,
): Promise<Counted> {
  const query = setup.queries.get(n) ?? '';
  return countAround(ctx, modelUrl, async () => {
    for (let i = 0; i < PROBE_QUERIES; i += 1) {
      expectClean(await graphql(setup.url, setup.token, query), `probe N=${n}`);
    }
    return PROBE_QUERIES;
  });
}

/** One load target per N. */
export function aggregationTargets(
  setup: AggregationSetup,
  modelPid: number | undefined,
  prefix = '',
): Target[] {
  return SIZES.map((n) => ({
    name: `${prefix}N=${n}`,
    pid: setup.pid,
    otherPids:
      modelPid === undefined ? {} : ({ 'model server': modelPid } as Record<string, number>),
    spec: {
      url: `${setup.url}/graphql`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${setup.token}` },
      bodies: [JSON.stringify({ query: setup.queries.get(n) })],
      connections: AGGREGATION_CONNECTIONS,
      timeoutSeconds: 30,
    },
  }));
}

export function aggregationFigures(
  setup: Pick<AggregationSetup, 'maxPage'>,
  probes: Map<number, Counted>,
  results: Map<string, LoadResult[]>,
  prefix = '',
): Figure[] {
  const figures: Figure[] = [];
  for (const n of SIZES) {
    const probe = probes.get(n);
    const trips =
      (probe?.statementsPerQuery ?? Number.NaN) + (probe?.inferCallsPerQuery ?? Number.NaN);
    figures.push(
      figure(`N=${n}: backend round trips per query (SQL + infer)`, trips, '', {
        text: '= 3',
        met: (v) => Math.abs(v - 3) < 0.05,
      }),
    );
  }
  for (const n of SIZES) {
    const s = summarize(results.get(`${prefix}N=${n}`) ?? []);
    figures.push(figure(`N=${n}: requests/s`, s.okPerSecond, ''));
    figures.push(figure(`N=${n}: p50 / p99 latency (ms)`, s.p50Ms, ` / ${s.p99Ms.toFixed(1)}`));
  }
  void setup;
  return figures;
}

export async function aggregationScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const modelServer = await ctx.modelServer();
  const token = await ctx.signer.sign({ tenant: ctx.dataTenant, sub: 'bench' });
  const gateway = ctx.track(
    await startAtrium({
      name: 'atrium-aggregation',
      dir: ctx.workDir,
      databaseUrl: ctx.db.url,
      redisUrl: REDIS_URL,
      config: benchConfig({
        signer: ctx.signer,
        modelServerUrl: modelServer.url,
        inference: { cacheTtlSeconds: 0 },
        tenants: [benchTenant(ctx.dataTenant, true)],
      }),
    }),
  );
  const prepared = await prepareAggregation(ctx, gateway.url, token);
  const setup = { ...prepared, pid: gateway.pid };
  const probes = new Map<number, Counted>();
  for (const n of SIZES) {
    const probe = await probeRoundTrips(ctx, modelServer.url, setup, n);
    probes.set(n, probe);
    ctx.log(
      `  N=${n}, one query at a time: ${probe.statementsPerQuery.toFixed(2)} SQL statements + ` +
        `${probe.inferCallsPerQuery.toFixed(2)} infer calls per query`,
    );
  }
  const targets = aggregationTargets(setup, modelServer.process.pid);
  const results = await interleavedRounds(ctx, targets);
  const underLoad: Record<string, Counted> = {};
  for (const [i, n] of SIZES.entries()) {
    underLoad[`N=${n}`] = await countUnderLoad(
      ctx,
      modelServer.url,
      targets[i] as Target,
      AGGREGATION_CONNECTIONS * COUNTED_PER_CONNECTION,
    );
  }
  const throughput = Object.fromEntries(
    SIZES.map((n) => [`N=${n}`, summarize(results.get(`N=${n}`) ?? [])]),
  );
  const notes = [
    `store: Redis; prediction cache off; ${AGGREGATION_CONNECTIONS} connections; page bound ${setup.maxPage}` +
      (Math.max(...SIZES) > setup.maxPage
        ? ` — N = ${Math.max(...SIZES)} is asked as ${Math.ceil(Math.max(...SIZES) / setup.maxPage)} aliased pages, one customers statement each`
        : ''),
    `under load (${AGGREGATION_CONNECTIONS} concurrent queries, ${AGGREGATION_CONNECTIONS * COUNTED_PER_CONNECTION} counted; micro-batching may merge infer calls of different queries): ${SIZES.map(
      (n) => {
        const u = underLoad[`N=${n}`];
        return `N=${n} ${u?.statementsPerQuery.toFixed(2)} SQL + ${u?.inferCallsPerQuery.toFixed(2)} infer (${u?.rowsPerInferCall.toFixed(0)} rows each) per query`;
      },
    ).join('; ')}`,
  ];
  return {
    scenario: 'aggregation',
    title: '2. Aggregation',
    figures: aggregationFigures(setup, probes, results),
    data: {
      connections: AGGREGATION_CONNECTIONS,
      maxPage: setup.maxPage,
      queries: Object.fromEntries(setup.queries),
      oneQueryAtATime: Object.fromEntries([...probes].map(([n, p]) => [`N=${n}`, p])),
      throughput,
      underLoad,
      rounds: Object.fromEntries(results),
    },
    notes,
  };
}
