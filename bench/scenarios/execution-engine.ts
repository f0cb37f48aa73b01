/**
 * Scenario 5 — execution engine. Scenarios 1 and 2 again, each on two gateway processes that
 * differ only in `server.executor`: graphql-js (Apollo Server's own execution) and graphql-jit
 * (src/graphql/jit.ts, plugged in through Apollo's gateway seam). Both answer every query
 * identically first (checked here, and by test/unit/graphql/jit.test.ts).
 */
import { isDeepStrictEqual } from 'node:util';
import { type BenchContext, interleavedRounds, type Target } from '../lib/context.js';
import { benchConfig, benchTenant, REDIS_URL } from '../lib/environment.js';
import { expectClean, graphql } from '../lib/graphql-client.js';
import { startAtrium } from '../lib/processes.js';
import { figure, type ScenarioReport } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { aggregationTargets, prepareAggregation, SIZES } from './aggregation.js';
import { OVERHEAD_QUERY, overheadSpec, roundRatios, summarize } from './overhead.js';

const EXECUTORS = ['graphql-js', 'graphql-jit'] as const;

export async function executionEngineScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const modelServer = await ctx.modelServer();
  const tenant = ctx.dataTenant;
  const token = await ctx.signer.sign({ tenant, sub: 'bench' });
  const gateways = await Promise.all(
    EXECUTORS.map((executor) =>
      startAtrium({
        name: `atrium-${executor}`,
        dir: ctx.workDir,
        databaseUrl: ctx.db.url,
        redisUrl: REDIS_URL,
        config: benchConfig({
          signer: ctx.signer,
          modelServerUrl: modelServer.url,
          server: { executor },
          inference: { cacheTtlSeconds: 0 },
          tenants: [benchTenant(tenant, true)],
        }),
      }),
    ),
  ).then((all) => all.map((g) => ctx.track(g)));
  const [js, jit] = gateways;
  if (!js || !jit) throw new Error('unreachable');

  const setups = [];
  for (const g of gateways) {
    setups.push({ ...(await prepareAggregation(ctx, g.url, token)), pid: g.pid });
  }
  const [jsSetup, jitSetup] = setups;
  if (!jsSetup || !jitSetup) throw new Error('unreachable');
  // Same answers from both engines before any speed is compared.
  for (const query of [OVERHEAD_QUERY, ...jsSetup.queries.values()]) {
    const [a, b] = await Promise.all([
      graphql(js.url, token, query),
      graphql(jit.url, token, query),
    ]);
    if (!isDeepStrictEqual(expectClean(a, 'graphql-js'), expectClean(b, 'graphql-jit'))) {
      throw new Error(`graphql-jit answered differently from graphql-js: ${query}`);
    }
  }

  const overheadTargets: Target[] = gateways.map((g, i) => ({
    name: `overhead ${EXECUTORS[i]}`,
    pid: g.pid,
    spec: overheadSpec(g.url, token),
  }));
  const modelPid = modelServer.process.pid;
  const jsAggregation = aggregationTargets(jsSetup, modelPid, 'graphql-js ');
  const jitAggregation = aggregationTargets(jitSetup, modelPid, 'graphql-jit ');
  const aggregationPairs: Target[] = jsAggregation.flatMap((t, i) => [
    t,
    jitAggregation[i] as Target,
  ]);
  const results = await interleavedRounds(ctx, [...overheadTargets, ...aggregationPairs]);
  const runs = (name: string) => results.get(name) ?? [];
  const ratio = (jitName: string, jsName: string) =>
    median(roundRatios(runs(jitName), runs(jsName), (r) => r.okPerSecond));

  const figures = [
    figure(
      '1. overhead: requests/s, graphql-jit / graphql-js',
      ratio('overhead graphql-jit', 'overhead graphql-js'),
      '×',
    ),
    ...SIZES.map((n) =>
      figure(
        `2. aggregation N=${n}: requests/s, graphql-jit / graphql-js`,
        ratio(`graphql-jit N=${n}`, `graphql-js N=${n}`),
        '×',
      ),
    ),
  ];
  const medians = Object.fromEntries([...results].map(([name, r]) => [name, summarize(r)]));
  return {
    scenario: 'execution-engine',
    title: '5. Execution engine',
    figures,
    data: { medians, rounds: Object.fromEntries(results) },
    notes: [
      `store: Redis; prediction cache off; both engines gave identical answers to the ${1 + jsSetup.queries.size} queries before timing`,
      `requests/s (median): ${[...results.keys()]
        .map((name) => `${name} ${Math.round(medians[name]?.okPerSecond ?? 0)}`)
        .join(', ')}`,
    ],
  };
}
