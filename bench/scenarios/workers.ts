/**
 * Scenario 8 — workers. Scenarios 1 and 2 on two gateway processes that differ only in
 * `server.workers`: one process, and `auto` (one worker per core, `src/cluster.ts`, the workers
 * sharing the port and, through Redis, every limit and cache). The load generator, PostgreSQL,
 * Redis and the model server run on the same cores, so this is what an operator of a small host
 * gets, not the ceiling of a dedicated one.
 *
 * CPU per request is not reported: a cluster's CPU is spread over processes the harness does
 * not sample (it samples the primary only). Requests/s and p99 are.
 */
import { isDeepStrictEqual } from 'node:util';
import { availableParallelism } from 'node:os';
import { type BenchContext, interleavedRounds, type Target } from '../lib/context.js';
import { benchConfig, benchTenant, REDIS_URL } from '../lib/environment.js';
import { expectClean, graphql } from '../lib/graphql-client.js';
import { startAtrium } from '../lib/processes.js';
import { figure, type ScenarioReport } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { aggregationTargets, prepareAggregation, SIZES } from './aggregation.js';
import { OVERHEAD_QUERY, overheadSpec, roundRatios, summarize } from './overhead.js';

const SIDES = [
  { name: 'one process', workers: 1 },
  { name: 'workers auto', workers: 'auto' },
] as const;

export async function workersScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const modelServer = await ctx.modelServer();
  const tenant = ctx.dataTenant;
  const token = await ctx.signer.sign({ tenant, sub: 'bench' });
  const gateways = await Promise.all(
    SIDES.map((side) =>
      startAtrium({
        name: `atrium-${side.workers}`,
        dir: ctx.workDir,
        databaseUrl: ctx.db.url,
        redisUrl: REDIS_URL,
        config: benchConfig({
          signer: ctx.signer,
          modelServerUrl: modelServer.url,
          server: { workers: side.workers },
          inference: { cacheTtlSeconds: 0 },
          tenants: [benchTenant(tenant, true)],
        }),
      }),
    ),
  ).then((all) => all.map((g) => ctx.track(g)));
  const [single, cluster] = gateways;
  if (!single || !cluster) throw new Error('unreachable');

  const setups = [];
  for (const g of gateways)
    setups.push({ ...(await prepareAggregation(ctx, g.url, token)), pid: g.pid });
  const [singleSetup, clusterSetup] = setups;
  if (!singleSetup || !clusterSetup) throw new Error('unreachable');
  // Same answers from both before any speed is compared (the workers answer in turn).
  for (const query of [OVERHEAD_QUERY, ...singleSetup.queries.values()]) {
    for (let i = 0; i < 4; i += 1) {
      const [a, b] = await Promise.all([
        graphql(single.url, token, query),
        graphql(cluster.url, token, query),
      ]);
      if (!isDeepStrictEqual(expectClean(a, 'one process'), expectClean(b, 'workers'))) {
        throw new Error(`the workers answered differently from one process: ${query}`);
      }
    }
  }

  const overheadTargets: Target[] = gateways.map((g, i) => ({
    name: `overhead ${SIDES[i]?.name}`,
    pid: g.pid,
    spec: overheadSpec(g.url, token),
  }));
  const modelPid = modelServer.process.pid;
  const singleAggregation = aggregationTargets(singleSetup, modelPid, 'one process ');
  const clusterAggregation = aggregationTargets(clusterSetup, modelPid, 'workers auto ');
  const aggregationPairs: Target[] = singleAggregation.flatMap((t, i) => [
    t,
    clusterAggregation[i] as Target,
  ]);
  const results = await interleavedRounds(ctx, [...overheadTargets, ...aggregationPairs]);
  const runs = (name: string) => results.get(name) ?? [];
  const ratio = (a: string, b: string) =>
    median(roundRatios(runs(a), runs(b), (r) => r.okPerSecond));
  const medians = Object.fromEntries([...results].map(([name, r]) => [name, summarize(r)]));
  const p99 = (name: string) => medians[name]?.p99Ms ?? Number.NaN;

  const figures = [
    figure(
      '1. overhead: requests/s, workers auto / one process',
      ratio('overhead workers auto', 'overhead one process'),
      '×',
    ),
    ...SIZES.map((n) =>
      figure(
        `2. aggregation N=${n}: requests/s, workers auto / one process`,
        ratio(`workers auto N=${n}`, `one process N=${n}`),
        '×',
      ),
    ),
    figure(
      '1. overhead: p99 latency (ms), workers auto / one process',
      p99('overhead workers auto'),
      ` / ${p99('overhead one process').toFixed(1)}`,
    ),
    ...SIZES.map((n) =>
      figure(
        `2. aggregation N=${n}: p99 latency (ms), workers auto / one process`,
        p99(`workers auto N=${n}`),
        ` / ${p99(`one process N=${n}`).toFixed(1)}`,
      ),
    ),
  ];
  return {
    scenario: 'workers',
    title: '8. Workers',
    figures,
    data: { medians, rounds: Object.fromEntries(results) },
    notes: [
      `workers auto = ${availableParallelism()} worker processes on this host; store: Redis; prediction cache off; both answered the ${1 + singleSetup.queries.size} queries identically (4 times each) before timing`,
      `requests/s (median): ${[...results.keys()]
        .map((name) => `${name} ${Math.round(medians[name]?.okPerSecond ?? 0)}`)
        .join(', ')}`,
    ],
  };
}
