/**
 * Scenario 3 — micro-batching. 64 concurrent single-customer `churnRisk` requests (each for
 * another customer), from a client in its own process (an in-process client starves the
 * gateway's event loop and ruins batching), against two gateway processes that differ only in
 * `inference.microBatch.enabled`. Prediction cache off in both. Infer calls are counted by the
 * model server itself (GET /stats), over a fixed number of requests at the same concurrency.
 */
import { type BenchContext, interleavedRounds, type Target } from '../lib/context.js';
import { benchConfig, benchTenant, REDIS_URL } from '../lib/environment.js';
import { expectClean, graphql } from '../lib/graphql-client.js';
import type { LoadResult } from '../lib/load.js';
import { startAtrium } from '../lib/processes.js';
import { describeProfile, profileUnderLoad } from '../lib/profile.js';
import { figure, type ScenarioReport } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { countUnderLoad } from './aggregation.js';
import { roundRatios, summarize } from './overhead.js';

export const CONCURRENT_REQUESTS = 64;
/** Requests per connection in the counted run. */
const COUNTED_PER_CONNECTION = 20;
/** The informative third variant: one batch of a (tenant, model, version) in flight at a time. */
const TUNED = { maxInFlight: 1 };
const QUERY = 'query Churn($id: ID!) { customer(id: $id) { churnRisk { score } } }';

function modelCores(runs: readonly LoadResult[]): string {
  return median(runs.map((r) => r.otherCores?.['model server'] ?? Number.NaN)).toFixed(2);
}

export async function microBatchingScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const modelServer = await ctx.modelServer();
  const token = await ctx.signer.sign({ tenant: ctx.dataTenant, sub: 'bench' });
  const config = (microBatch: Record<string, unknown>) =>
    benchConfig({
      signer: ctx.signer,
      modelServerUrl: modelServer.url,
      inference: { cacheTtlSeconds: 0, microBatch },
      tenants: [benchTenant(ctx.dataTenant, true)],
    });
  const common = { dir: ctx.workDir, databaseUrl: ctx.db.url, redisUrl: REDIS_URL };
  const [on, off, tuned] = await Promise.all([
    startAtrium({ ...common, name: 'atrium-microbatch-on', config: config({}) }),
    startAtrium({ ...common, name: 'atrium-microbatch-off', config: config({ enabled: false }) }),
    // Not a default: shows what one batch in flight (rows wait for it) does at this load.
    startAtrium({ ...common, name: 'atrium-microbatch-tuned', config: config(TUNED) }),
  ]).then((all) => all.map((p) => ctx.track(p)));
  if (!on || !off || !tuned) throw new Error('unreachable');
  for (const gateway of [on, off, tuned]) {
    expectClean(await graphql(gateway.url, token, QUERY, { id: ctx.customerIds[0] }), gateway.name);
  }
  // Every request asks for another customer: ids go round the seeded customers.
  const bodies = ctx.customerIds.map((id) => JSON.stringify({ query: QUERY, variables: { id } }));
  const spec = (url: string): Target['spec'] => ({
    url: `${url}/graphql`,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    bodies,
    connections: CONCURRENT_REQUESTS,
    timeoutSeconds: 30,
  });
  const modelPid = modelServer.process.pid;
  const target = (name: string, url: string, pid: number): Target => ({
    name,
    pid,
    spec: spec(url),
    otherPids:
      modelPid === undefined ? {} : ({ 'model server': modelPid } as Record<string, number>),
  });
  const targets = [
    target('batching on', on.url, on.pid),
    target('batching off', off.url, off.pid),
    target('batching on, maxInFlight 1', tuned.url, tuned.pid),
  ];
  const results = await interleavedRounds(ctx, targets);
  const counted = [];
  for (const t of targets) {
    counted.push(
      await countUnderLoad(ctx, modelServer.url, t, CONCURRENT_REQUESTS * COUNTED_PER_CONNECTION),
    );
  }
  const [countedOn, countedOff, countedTuned] = counted;
  await Promise.all([on.stop(), off.stop(), tuned.stop()]);
  ctx.log('micro-batching: profiling the batching gateway under the same load');
  const profile = await profileUnderLoad(
    ctx,
    { ...common, name: 'atrium-microbatch-on-profiled', config: config({}) },
    spec,
  );
  if (!countedOn || !countedOff || !countedTuned) throw new Error('unreachable');
  const onRuns = results.get('batching on') ?? [];
  const offRuns = results.get('batching off') ?? [];
  const tunedRuns = results.get('batching on, maxInFlight 1') ?? [];
  const medians = { on: summarize(onRuns), off: summarize(offRuns), tuned: summarize(tunedRuns) };
  return {
    scenario: 'micro-batching',
    title: '3. Micro-batching',
    figures: [
      figure(
        'predictions/s, batching on / off',
        median(roundRatios(onRuns, offRuns, (r) => r.okPerSecond)),
        '×',
        { text: '≥ 3×', met: (v) => v >= 3 },
      ),
      figure(
        'infer calls per prediction, off / on',
        countedOff.inferCallsPerQuery / countedOn.inferCallsPerQuery,
        '×',
        { text: '≥ 10×', met: (v) => v >= 10 },
      ),
      figure('rows per infer call, batching on', countedOn.rowsPerInferCall, ''),
      figure(
        'maxInFlight 1, explicit: predictions/s, on / off',
        median(roundRatios(tunedRuns, offRuns, (r) => r.okPerSecond)),
        '×',
      ),
      figure(
        'maxInFlight 1, explicit: infer calls, off / on',
        countedOff.inferCallsPerQuery / countedTuned.inferCallsPerQuery,
        '×',
      ),
    ],
    data: {
      concurrentRequests: CONCURRENT_REQUESTS,
      query: QUERY,
      medians,
      tunedMicroBatch: TUNED,
      counted: { on: countedOn, off: countedOff, tuned: countedTuned },
      profile,
      rounds: Object.fromEntries(results),
    },
    notes: [
      `store: Redis; prediction cache off; default micro-batch settings; ${CONCURRENT_REQUESTS} connections, each request another customer`,
      `predictions/s (median): on ${Math.round(medians.on.okPerSecond)}, off ${Math.round(medians.off.okPerSecond)}, ` +
        `maxInFlight 1 ${Math.round(medians.tuned.okPerSecond)}; infer calls per prediction ` +
        `(${CONCURRENT_REQUESTS * COUNTED_PER_CONNECTION} requests counted): on ${countedOn.inferCallsPerQuery.toFixed(3)}, ` +
        `off ${countedOff.inferCallsPerQuery.toFixed(3)}, maxInFlight 1 ${countedTuned.inferCallsPerQuery.toFixed(3)}; ` +
        `SQL statements per request ${countedOn.statementsPerQuery.toFixed(2)}; model server CPU (cores, median) ` +
        `on ${modelCores(onRuns)}, off ${modelCores(offRuns)}`,
      ...describeProfile(profile).map((line) => `batching on: ${line}`),
    ],
  };
}
