/**
 * Scenario 4 — tenant scale. The same gateway, the same load (scenario 1's query for one
 * tenant), with 10 and with 10,000 tenants configured. Only the loaded tenant is ever used; the
 * others are registry entries like a real fleet's (a plan, an isolation strategy, a churn model).
 * Every tenant's tables exist, as in a real fleet (the gateway reads each tenant's catalog at
 * start and refuses a tenant whose tables do not fit the SDL): the loaded tenant has its own
 * schema, the fleet's tenants are `row` tenants sharing the row schema, migrated once.
 * Resident memory is VmRSS of the gateway process after warm-up; p99 from interleaved rounds.
 */
import { type BenchContext, interleavedRounds } from '../lib/context.js';
import {
  benchConfig,
  benchTenant,
  CHURN_FEATURES,
  migrateBenchTenant,
  REDIS_URL,
} from '../lib/environment.js';
import { runLoad } from '../lib/load.js';
import { describeProfile, profileStartup, profileUnderLoad } from '../lib/profile.js';
import { liveMemory, rssBytes, startAtrium } from '../lib/processes.js';
import { figure, type ScenarioReport } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { overheadSpec, roundRatios, summarize } from './overhead.js';

export const TENANT_COUNTS = [10, 10_000] as const;
const MB = 1024 * 1024;
/** Config only: nothing in this scenario calls a model. */
const UNUSED_MODEL_URL = 'http://127.0.0.1:9';

function fleetTenant(id: string, i: number): Record<string, unknown> {
  return {
    id,
    displayName: `Fleet tenant ${i}`,
    plan: i % 3 === 0 ? 'pro' : 'free',
    data: { strategy: 'row' },
    features: i % 5 === 0 ? ['fraud'] : [],
    models: {
      churn: {
        backend: 'ref',
        model: 'churn',
        version: i % 2 === 0 ? '2' : '1',
        thresholds: { low: 0, high: 0.5 },
        features: CHURN_FEATURES,
      },
    },
  };
}

const fleetId = (ctx: BenchContext, i: number) =>
  `fleet-${ctx.suffix}-${String(i).padStart(5, '0')}`;

export function fleetConfig(ctx: BenchContext, loadTenant: string, count: number) {
  const tenants = [benchTenant(loadTenant, false)];
  for (let i = 1; i < count; i += 1) tenants.push(fleetTenant(fleetId(ctx, i), i));
  return benchConfig({ signer: ctx.signer, modelServerUrl: UNUSED_MODEL_URL, tenants });
}

export async function tenantScaleScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const tenant = `bench-${ctx.suffix}-t`;
  ctx.tenants.add(tenant);
  const token = await ctx.signer.sign({ tenant, sub: 'bench' });
  const common = { dir: ctx.workDir, databaseUrl: ctx.db.url, redisUrl: REDIS_URL };
  await migrateBenchTenant(ctx.db.url, tenant);
  // The row schema's tables, shared by every fleet tenant.
  await migrateBenchTenant(ctx.db.url, fleetId(ctx, 1), 'row');

  // One after the other, so each start-up has the machine to itself.
  const gateways = [];
  for (const count of TENANT_COUNTS) {
    gateways.push(
      ctx.track(
        await startAtrium({
          ...common,
          name: `atrium-${count}-tenants`,
          config: fleetConfig(ctx, tenant, count),
          memoryProbe: true,
        }),
      ),
    );
  }
  const [small, large] = gateways;
  if (!small || !large) throw new Error('unreachable');
  const idleRss = gateways.map((g) => rssBytes(g.pid));
  for (const g of gateways) {
    await runLoad(
      {
        ...overheadSpec(g.url, token),
        warmupSeconds: 0,
        durationSeconds: ctx.settings.warmupSeconds,
      },
      g.pid,
    );
  }
  const warmRss = gateways.map((g) => rssBytes(g.pid));
  const warmHeap = [];
  for (const g of gateways) warmHeap.push((await liveMemory(g.pid)).heapUsed);
  ctx.log(
    `tenant-scale: start-up ${gateways.map((g) => `${g.name} ${Math.round(g.startupMs)} ms`).join(', ')}; ` +
      `RSS after warm-up ${warmRss.map((r) => `${(r / MB).toFixed(1)} MB`).join(' vs ')}`,
  );
  const results = await interleavedRounds(
    ctx,
    gateways.map((g) => ({ name: g.name, pid: g.pid, spec: overheadSpec(g.url, token) })),
    { warmedUp: true },
  );
  const finalRss = gateways.map((g) => rssBytes(g.pid));
  const finalHeap = [];
  for (const g of gateways) finalHeap.push((await liveMemory(g.pid)).heapUsed);
  const smallRuns = results.get(small.name) ?? [];
  const largeRuns = results.get(large.name) ?? [];
  for (const g of gateways) await g.stop();

  // Where the start-up time of the large fleet goes, and its time under load.
  const startupProfile = await profileStartup(ctx, {
    ...common,
    name: 'atrium-10000-tenants-startup',
    config: fleetConfig(ctx, tenant, TENANT_COUNTS[1]),
  });
  const loadProfile = await profileUnderLoad(
    ctx,
    {
      ...common,
      name: 'atrium-10000-tenants-load',
      config: fleetConfig(ctx, tenant, TENANT_COUNTS[1]),
    },
    (url) => overheadSpec(url, token),
  );

  const rssDeltaMb = ((warmRss[1] ?? 0) - (warmRss[0] ?? 0)) / MB;
  const p99Ratio = median(roundRatios(largeRuns, smallRuns, (r) => r.latencyMs.p99));
  return {
    scenario: 'tenant-scale',
    title: '4. Tenant scale',
    figures: [
      figure('RSS after warm-up, 10,000 − 10 tenants', rssDeltaMb, ' MB', {
        text: '≤ +100 MB',
        met: (v) => v <= 100,
      }),
      figure('p99 latency, 10,000 / 10 tenants', p99Ratio, '×', {
        text: '≤ 1.10×',
        met: (v) => v <= 1.1,
      }),
      figure(
        'requests/s, 10,000 / 10 tenants',
        median(roundRatios(largeRuns, smallRuns, (r) => r.okPerSecond)),
        '×',
      ),
      figure(
        'live heap after GC, 10,000 − 10 tenants',
        ((warmHeap[1] ?? 0) - (warmHeap[0] ?? 0)) / MB,
        ' MB',
      ),
      figure('start-up time, 10,000 / 10 tenants', large.startupMs / small.startupMs, '×'),
    ],
    data: {
      tenantCounts: TENANT_COUNTS,
      startupMs: gateways.map((g) => Math.round(g.startupMs)),
      rssMb: {
        idle: idleRss.map((r) => r / MB),
        afterWarmup: warmRss.map((r) => r / MB),
        afterRounds: finalRss.map((r) => r / MB),
      },
      liveHeapMb: {
        afterWarmup: warmHeap.map((r) => r / MB),
        afterRounds: finalHeap.map((r) => r / MB),
      },
      medians: { small: summarize(smallRuns), large: summarize(largeRuns) },
      rounds: Object.fromEntries(results),
      startupProfile,
      loadProfile,
    },
    notes: [
      `store: Redis; RSS (MB) idle ${idleRss.map((r) => (r / MB).toFixed(0)).join(' vs ')}, after warm-up ` +
        `${warmRss.map((r) => (r / MB).toFixed(0)).join(' vs ')}, after the rounds ${finalRss.map((r) => (r / MB).toFixed(0)).join(' vs ')}; ` +
        `live heap after a full GC (MB) ${warmHeap.map((r) => (r / MB).toFixed(1)).join(' vs ')} after warm-up, ` +
        `${finalHeap.map((r) => (r / MB).toFixed(1)).join(' vs ')} after the rounds; ` +
        `start-up ${gateways.map((g) => `${(g.startupMs / 1000).toFixed(1)} s`).join(' vs ')}; p99 ` +
        `${summarize(smallRuns).p99Ms.toFixed(2)} vs ${summarize(largeRuns).p99Ms.toFixed(2)} ms`,
      ...describeProfile(startupProfile).map((line) => `start-up with 10,000 tenants: ${line}`),
      ...describeProfile(loadProfile).map((line) => `10,000 tenants under load: ${line}`),
    ],
  };
}
