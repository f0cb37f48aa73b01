/**
 * Scenario 3 — micro-batching. 64 concurrent single-customer `churnRisk` requests (each for
 * another customer), from a client in its own process (an in-process client starves the
 * gateway's event loop and ruins batching), against two gateway processes that differ only in
 * `inference.microBatch.enabled`. Prediction cache off in both. Infer calls are counted by the
 * model server itself (GET /stats), over a fixed number of requests at the same concurrency.
 *
 * There the gateway's core is the bottleneck (the model server answers a one-row call in well
 * under a millisecond), so batching can only save the infer calls' share of each request. The
 * backend-bound variant measures what batching is for: a second model server whose churn model
 * has a device, as on a GPU server — one instance, every infer call holding it for a fixed
 * {@link BACKEND_CALL_COST_MS} ms before the real compute (`--call-cost-ms`, `--instances`) —
 * and two gateways on it that differ only in `inference.microBatch.enabled`.
 */
import { spawnModelServer } from '../../services/model-server/spawn.js';
import type { DeviceCounters } from '../../services/model-server/src/device.js';
import type { StatsSnapshot } from '../../services/model-server/src/stats.js';
import { type BenchContext, interleavedRounds, type Target } from '../lib/context.js';
import { benchConfig, benchTenant, REDIS_URL } from '../lib/environment.js';
import { expectClean, graphql, resetModelServerStats } from '../lib/graphql-client.js';
import type { LoadResult } from '../lib/load.js';
import { startAtrium } from '../lib/processes.js';
import { describeProfile, profileUnderLoad } from '../lib/profile.js';
import { figure, type ScenarioReport } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { type Counted, countUnderLoad } from './aggregation.js';
import { roundRatios, summarize } from './overhead.js';

export const CONCURRENT_REQUESTS = 64;
/** Requests per connection in the counted run. */
const COUNTED_PER_CONNECTION = 20;
/** The informative third variant: one batch of a (tenant, model, version) in flight at a time. */
const TUNED = { maxInFlight: 1 };
const QUERY = 'query Churn($id: ID!) { customer(id: $id) { churnRisk { score } } }';
/** Backend-bound variant: the churn model's fixed cost per infer call, on one instance. */
export const BACKEND_CALL_COST_MS = 8;
/** Its device: `<model>/<version>` the bench tenant calls. */
const BACKEND_DEVICE = 'churn/2';
/**
 * Requests per connection in its counted runs, as many as the gateway-bound ones: fewer would
 * let the first burst of 64 (one big batch) inflate rows per call. Unbatched that is ~15 s.
 */
const BACKEND_COUNTED_PER_CONNECTION = COUNTED_PER_CONNECTION;

function modelCores(runs: readonly LoadResult[]): string {
  return median(runs.map((r) => r.otherCores?.['model server'] ?? Number.NaN)).toFixed(2);
}

async function deviceOf(modelUrl: string): Promise<DeviceCounters> {
  const stats = (await (await fetch(`${modelUrl}/stats`)).json()) as StatsSnapshot;
  const device = stats.devices[BACKEND_DEVICE];
  if (device === undefined)
    throw new Error(`the model server at ${modelUrl} has no device ${BACKEND_DEVICE}`);
  return device;
}

/**
 * Waits until the device has no call executing or waiting, twice 20 ms apart: a gateway whose
 * load client has stopped still owes the backend the calls of the requests it holds (unbatched,
 * up to 64 × the call cost), which would otherwise land in the next target's run and counts.
 */
async function deviceIdle(modelUrl: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let idleReadings = 0;
  while (idleReadings < 2) {
    if (Date.now() > deadline) throw new Error(`device ${BACKEND_DEVICE} did not go idle in 30 s`);
    const { busy, queued } = await deviceOf(modelUrl);
    idleReadings = busy === 0 && queued === 0 ? idleReadings + 1 : 0;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A counted run, with the device's counters over it. */
interface DeviceCounted extends Counted {
  device: DeviceCounters;
  /** busyMs ÷ calls: what one call holds the instance (the cost plus the real compute). */
  deviceMsPerCall: number;
}

async function countWithDevice(
  ctx: BenchContext,
  modelUrl: string,
  target: Target,
  amount: number,
): Promise<DeviceCounted> {
  await deviceIdle(modelUrl);
  // countUnderLoad resets the model server's counters (devices too) before its run.
  const counted = await countUnderLoad(ctx, modelUrl, target, amount);
  const device = await deviceOf(modelUrl);
  return { ...counted, device, deviceMsPerCall: device.busyMs / device.calls };
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

  const backend = await backendBoundVariant(ctx, token, common);
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
      ...backend.figures,
    ],
    data: {
      concurrentRequests: CONCURRENT_REQUESTS,
      query: QUERY,
      medians,
      tunedMicroBatch: TUNED,
      counted: { on: countedOn, off: countedOff, tuned: countedTuned },
      profile,
      rounds: Object.fromEntries(results),
      backendBound: backend.data,
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
      ...backend.notes,
    ],
  };
}

/**
 * The backend-bound variant: its own model server, churn with a {@link BACKEND_CALL_COST_MS} ms
 * fixed cost per call on one instance, the same 64 concurrent single-customer requests, two
 * gateways that differ only in `inference.microBatch.enabled`.
 */
async function backendBoundVariant(
  ctx: BenchContext,
  token: string,
  common: { dir: string; databaseUrl: string; redisUrl: string },
): Promise<Pick<ScenarioReport, 'figures' | 'notes' | 'data'>> {
  ctx.log(
    `micro-batching: backend-bound variant, churn at ${BACKEND_CALL_COST_MS} ms per infer call on one instance`,
  );
  const modelServer = ctx.track(
    await spawnModelServer({
      port: 0,
      callCostMs: { churn: BACKEND_CALL_COST_MS },
      instances: { churn: 1 },
    }),
  );
  const config = (microBatch: Record<string, unknown>) =>
    benchConfig({
      signer: ctx.signer,
      modelServerUrl: modelServer.url,
      inference: { cacheTtlSeconds: 0, microBatch },
      tenants: [benchTenant(ctx.dataTenant, true)],
    });
  const [on, off] = await Promise.all([
    startAtrium({ ...common, name: 'atrium-backend-bound-on', config: config({}) }),
    startAtrium({
      ...common,
      name: 'atrium-backend-bound-off',
      config: config({ enabled: false }),
    }),
  ]).then((all) => all.map((p) => ctx.track(p)));
  if (!on || !off) throw new Error('unreachable');
  for (const gateway of [on, off]) {
    expectClean(await graphql(gateway.url, token, QUERY, { id: ctx.customerIds[0] }), gateway.name);
  }
  const bodies = ctx.customerIds.map((id) => JSON.stringify({ query: QUERY, variables: { id } }));
  const modelPid = modelServer.process.pid;
  let runStarted = 0;
  const busyShares = new Map<LoadResult, number>();
  const target = (name: string, url: string, pid: number): Target => ({
    name,
    pid,
    spec: {
      url: `${url}/graphql`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      bodies,
      connections: CONCURRENT_REQUESTS,
      timeoutSeconds: 30,
    },
    otherPids:
      modelPid === undefined ? {} : ({ 'model server': modelPid } as Record<string, number>),
    // Each run starts on an idle device with zeroed counters, and records how busy it was.
    before: async () => {
      await deviceIdle(modelServer.url);
      await resetModelServerStats(modelServer.url);
      runStarted = Date.now();
    },
    after: async (result) => {
      const device = await deviceOf(modelServer.url);
      busyShares.set(result, device.busyMs / device.instances / (Date.now() - runStarted));
    },
  });
  const targets = [
    target('backend-bound, batching on', on.url, on.pid),
    target('backend-bound, batching off', off.url, off.pid),
  ];
  const results = await interleavedRounds(ctx, targets);
  const amount = CONCURRENT_REQUESTS * BACKEND_COUNTED_PER_CONNECTION;
  const countedOn = await countWithDevice(ctx, modelServer.url, targets[0]!, amount);
  const countedOff = await countWithDevice(ctx, modelServer.url, targets[1]!, amount);
  await Promise.all([on.stop(), off.stop(), modelServer.stop()]);

  const onRuns = results.get('backend-bound, batching on') ?? [];
  const offRuns = results.get('backend-bound, batching off') ?? [];
  const medians = { on: summarize(onRuns), off: summarize(offRuns) };
  // Since the reset: the client's start, the warm-up and the run, so a lower bound.
  const busyShare = (runs: readonly LoadResult[]) =>
    median(runs.map((r) => busyShares.get(r) ?? Number.NaN));
  const percent = (v: number) => `${(v * 100).toFixed(0)}%`;
  const label = `backend-bound (${BACKEND_CALL_COST_MS} ms/call, 1 instance)`;
  // Unbatched, one call per prediction: the device's own limit on predictions/s.
  const ceiling = 1000 / countedOff.deviceMsPerCall;
  return {
    figures: [
      figure(
        `${label}: infer calls per request, off / on`,
        countedOff.inferCallsPerQuery / countedOn.inferCallsPerQuery,
        '×',
        { text: '≥ 10×', met: (v) => v >= 10 },
      ),
      figure(
        `${label}: predictions/s, on / off`,
        median(roundRatios(onRuns, offRuns, (r) => r.okPerSecond)),
        '×',
        { text: '≥ 2×', met: (v) => v >= 2 },
      ),
      figure(`${label}: infer calls per request, batching on`, countedOn.inferCallsPerQuery, ''),
      figure(`${label}: infer calls per request, batching off`, countedOff.inferCallsPerQuery, ''),
      figure(`${label}: predictions/s, batching on`, medians.on.okPerSecond, ''),
      figure(`${label}: predictions/s, batching off`, medians.off.okPerSecond, ''),
    ],
    notes: [
      `backend-bound: a model server of its own whose churn model holds its one instance ${BACKEND_CALL_COST_MS} ms per infer call before the real compute ` +
        `(--call-cost-ms churn=${BACKEND_CALL_COST_MS} --instances churn=1), ${CONCURRENT_REQUESTS} connections, prediction cache off, default micro-batch settings`,
      `backend-bound: predictions/s (median) on ${Math.round(medians.on.okPerSecond)}, off ${Math.round(medians.off.okPerSecond)}; ` +
        `infer calls per request (${amount} counted) on ${countedOn.inferCallsPerQuery.toFixed(3)} (${countedOn.rowsPerInferCall.toFixed(1)} rows per call), ` +
        `off ${countedOff.inferCallsPerQuery.toFixed(3)}; the instance held per call ${countedOn.deviceMsPerCall.toFixed(2)} ms on, ` +
        `${countedOff.deviceMsPerCall.toFixed(2)} ms off (cost + compute), so unbatched the device allows ${Math.round(ceiling)} predictions/s ` +
        `(off reached ${Math.round(medians.off.okPerSecond)}); most calls waiting for it: on ${countedOn.device.maxQueued}, off ${countedOff.device.maxQueued}; ` +
        `device busy (median of the rounds, warm-up and client start included) on ${percent(busyShare(onRuns))}, off ${percent(busyShare(offRuns))}`,
      `backend-bound: cores (median) gateway on ${medians.on.serverCores.toFixed(2)}, off ${medians.off.serverCores.toFixed(2)}; ` +
        `model server on ${modelCores(onRuns)}, off ${modelCores(offRuns)}; p50 / p99 latency (ms) on ` +
        `${medians.on.p50Ms.toFixed(1)} / ${medians.on.p99Ms.toFixed(1)}, off ${medians.off.p50Ms.toFixed(1)} / ${medians.off.p99Ms.toFixed(1)}`,
    ],
    data: {
      callCostMs: BACKEND_CALL_COST_MS,
      instances: 1,
      concurrentRequests: CONCURRENT_REQUESTS,
      medians,
      counted: { on: countedOn, off: countedOff },
      unbatchedDeviceCeilingPerSecond: ceiling,
      deviceBusyShare: { on: busyShare(onRuns), off: busyShare(offRuns) },
      rounds: Object.fromEntries(results),
    },
  };
}
