/**
 * Scenario 1 — overhead. The authenticated tenant query through the real gateway process
 * (ES256 token verification, tenant resolution, rate limit + concurrency lease, context, Apollo
 * Server) against a bare Apollo Server standalone and a bare node:http server, same load.
 */
import { type BenchContext, interleavedRounds, type Target } from '../lib/context.js';
import { benchConfig, benchTenant, migrateBenchTenant, REDIS_URL } from '../lib/environment.js';
import type { LoadResult } from '../lib/load.js';
import { describeProfile, profileUnderLoad } from '../lib/profile.js';
import { startAtrium, startScript } from '../lib/processes.js';
import { figure, type ScenarioReport } from '../lib/report.js';
import { median } from '../lib/stats.js';

export const OVERHEAD_QUERY = '{ viewer { tenant { id } } }';
export const OVERHEAD_CONNECTIONS = 32;

/** The request of scenarios 1, 4 and 5: `{ viewer { tenant { id } } }` with a real token. */
export function overheadSpec(url: string, token: string): Target['spec'] {
  return {
    url: `${url}/graphql`,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    bodies: [JSON.stringify({ query: OVERHEAD_QUERY })],
    connections: OVERHEAD_CONNECTIONS,
  };
}

/** Per-round ratios a/b (rounds run back to back, so each pair saw the same machine). */
export function roundRatios(
  a: readonly LoadResult[],
  b: readonly LoadResult[],
  pick: (r: LoadResult) => number,
): number[] {
  return a.map((r, i) => pick(r) / pick(b[i] as LoadResult));
}

export function summarize(results: readonly LoadResult[]) {
  return {
    okPerSecond: median(results.map((r) => r.okPerSecond)),
    p50Ms: median(results.map((r) => r.latencyMs.p50)),
    p99Ms: median(results.map((r) => r.latencyMs.p99)),
    serverCores: median(results.map((r) => r.serverCores ?? Number.NaN)),
    clientCores: median(results.map((r) => r.clientCpuSeconds / r.seconds)),
    failures: results.reduce((n, r) => n + r.non2xx + r.graphqlErrors + r.errors, 0),
  };
}

export async function overheadScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const tenant = `bench-${ctx.suffix}-o`;
  ctx.tenants.add(tenant);
  const token = await ctx.signer.sign({ tenant, sub: 'bench' });
  await migrateBenchTenant(ctx.db.url, tenant);
  const base = {
    dir: ctx.workDir,
    databaseUrl: ctx.db.url,
    config: benchConfig({ signer: ctx.signer, tenants: [benchTenant(tenant, false)] }),
  };
  const noTokenCache = benchConfig({ signer: ctx.signer, tenants: [benchTenant(tenant, false)] });
  (noTokenCache.auth as Record<string, unknown>).tokenCacheMax = 0;

  ctx.log('overhead: starting bare node:http, Apollo standalone and three Atrium processes');
  const [bare, apollo, redis, memory, uncached] = await Promise.all([
    startScript('node:http', 'bench/servers/bare-http.ts'),
    startScript('apollo-standalone', 'bench/servers/apollo-standalone.ts'),
    startAtrium({ ...base, name: 'atrium-redis', redisUrl: REDIS_URL }),
    startAtrium({ ...base, name: 'atrium-memory', redisUrl: '' }),
    startAtrium({ ...base, config: noTokenCache, name: 'atrium-no-token-cache', redisUrl: '' }),
  ]).then((all) => all.map((p) => ctx.track(p)));
  if (!bare || !apollo || !redis || !memory || !uncached) throw new Error('unreachable');

  const hello = (url: string): Target['spec'] => ({
    url: `${url}/`,
    headers: { 'content-type': 'application/json' },
    bodies: [JSON.stringify({ query: '{ hello }' })],
    connections: OVERHEAD_CONNECTIONS,
  });
  const targets: Target[] = [
    { name: 'node:http', pid: bare.pid, spec: hello(bare.url) },
    { name: 'apollo-standalone', pid: apollo.pid, spec: hello(apollo.url) },
    { name: 'atrium-redis', pid: redis.pid, spec: overheadSpec(redis.url, token) },
    { name: 'atrium-memory', pid: memory.pid, spec: overheadSpec(memory.url, token) },
    { name: 'atrium-no-token-cache', pid: uncached.pid, spec: overheadSpec(uncached.url, token) },
  ];
  const results = await interleavedRounds(ctx, targets);
  const get = (name: string) => results.get(name) ?? [];
  const rps = (r: LoadResult) => r.okPerSecond;

  ctx.log('overhead: profiling the gateway (Redis store) under the same load');
  const profile = await profileUnderLoad(
    ctx,
    { ...base, name: 'atrium-redis-profiled', redisUrl: REDIS_URL },
    (url) => overheadSpec(url, token),
  );

  const apolloRatio = median(roundRatios(get('atrium-redis'), get('apollo-standalone'), rps));
  const bareRatio = median(roundRatios(get('atrium-redis'), get('node:http'), rps));
  const medians = Object.fromEntries(targets.map((t) => [t.name, summarize(get(t.name))]));
  return {
    scenario: 'overhead',
    title: '1. Overhead',
    figures: [
      figure('Atrium (Redis) / Apollo standalone, requests/s', apolloRatio, '×', {
        text: '≥ 1.5×',
        met: (v) => v >= 1.5,
      }),
      figure('Atrium (Redis) / bare node:http, requests/s', bareRatio, '×', {
        text: '≥ 0.25×',
        met: (v) => v >= 0.25,
      }),
      figure(
        'Atrium (memory store) / Apollo standalone',
        median(roundRatios(get('atrium-memory'), get('apollo-standalone'), rps)),
        '×',
      ),
      figure(
        'Atrium (memory store) / bare node:http',
        median(roundRatios(get('atrium-memory'), get('node:http'), rps)),
        '×',
      ),
      figure(
        'Atrium (no token cache: ES256 verify per request) / Apollo',
        median(roundRatios(get('atrium-no-token-cache'), get('apollo-standalone'), rps)),
        '×',
      ),
    ],
    data: {
      connections: OVERHEAD_CONNECTIONS,
      query: OVERHEAD_QUERY,
      medians,
      rounds: Object.fromEntries(results),
      startupMs: Object.fromEntries(
        [bare, apollo, redis, memory, uncached].map((p) => [p.name, Math.round(p.startupMs)]),
      ),
      profile,
    },
    notes: [
      `requests/s (median): ${targets
        .map((t) => `${t.name} ${Math.round(medians[t.name]?.okPerSecond ?? 0)}`)
        .join(', ')}; server CPU ${targets
        .map((t) => `${t.name} ${(medians[t.name]?.serverCores ?? Number.NaN).toFixed(2)}`)
        .join(', ')} cores`,
      ...describeProfile(profile),
    ],
  };
}
