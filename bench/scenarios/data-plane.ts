/**
 * Scenario 6 — data plane. Scenario 2's aggregation query (`customers(first: N)` with each
 * customer's orders and churnRisk) on two gateways side by side: this checkout, whose resolvers
 * and SQL are generated from the SDL's directives, and the hand-written data plane it replaced
 * (commit 24e522d, the last before the change), checked out in a worktree of its own under
 * `.atrium/bench/` with its own `npm ci` and started from its own `src/main.ts`.
 *
 * Same data: the old code's tables differ (no `tenant_id` in schema tenants), so the old gateway
 * gets a database of its own, migrated and seeded by ITS `npm run db:migrate` / `db:seed` with
 * the same customer count; the demo seed is a pure function of the tenant id, and both
 * gateways serve the same tenant ids, so they hold the same rows (checked: both must answer a
 * set of queries identically before anything is timed). Same model server, same config file.
 * One `schema` tenant and one `row` tenant.
 *
 * Round trips are counted on the wire: a gateway started for counting reaches PostgreSQL
 * through a proxy (bench/lib/pg-proxy.ts) that counts the ReadyForQuery messages of the data
 * pool's connections (one per request the client waited for) and the Execute messages (the
 * parameterised statements). The timed gateways connect directly.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import { ensureCheckout, runCheckoutScript } from '../lib/checkout.js';
import { type BenchContext, interleavedRounds, type Target } from '../lib/context.js';
import {
  benchConfig,
  benchTenant,
  createBenchDatabase,
  REDIS_URL,
  seedBenchTenant,
} from '../lib/environment.js';
import {
  expectClean,
  graphql,
  modelServerStats,
  resetModelServerStats,
  total,
} from '../lib/graphql-client.js';
import type { LoadResult } from '../lib/load.js';
import { startCountingProxy, type WireCounts, wireDelta } from '../lib/pg-proxy.js';
import { profileRequests, type RequestProfile } from '../lib/profile.js';
import { type ServerProcess, startAtrium } from '../lib/processes.js';
import { figure, type Figure, type ScenarioReport } from '../lib/report.js';
import { median } from '../lib/stats.js';
import {
  type AggregationSetup,
  aggregationTargets,
  prepareAggregation,
  SIZES,
} from './aggregation.js';
import { roundRatios, summarize } from './overhead.js';

/** The hand-written data plane: the last commit before the SDL-declared one. */
export const HANDWRITTEN_REF = '24e522d';
const HANDWRITTEN = `hand-written (${HANDWRITTEN_REF})`;
const GENERATED = 'generated';
/** What the gateways' data pools call themselves (the control pool is `atrium-control`). */
const DATA_APPLICATION = 'atrium';
const PROBE_QUERIES = 20;
const STRATEGIES = ['schema', 'row'] as const;
type Strategy = (typeof STRATEGIES)[number];

const FULL_NODE =
  'id name email segment country createdAt lifetimeValue tenureMonths monthlySpend ' +
  'supportTickets daysSinceLastLogin ' +
  'orders(first: 3) { id amount currency channel createdAt itemCount isInternational ' +
  'paymentAttempts hourOfDay customer { id name } } ' +
  'churnRisk { model version score label cached }';

/** One side of the comparison, for one tenant. */
interface Side {
  name: typeof GENERATED | typeof HANDWRITTEN;
  /** The checkout to run; undefined: this one. */
  root: string | undefined;
  database: { name: string; url: string };
}

/** Per-query counts of one query at a time. */
interface Probe {
  queries: number;
  statementsPerQuery: number;
  roundTripsPerQuery: number;
  /** Round trips per data statement (a batch is one statement). */
  roundTripsPerBatch: number;
  inferCallsPerQuery: number;
  connectionsOpened: number;
  /** Simple-protocol messages (BEGIN with the isolation, COMMIT, …) by text, per query. */
  simpleQueriesPerQuery: Record<string, number>;
}

/**
 * The data plane's own files on either side: generated (resolvers from bindings, the SQL
 * sources, the loader registry, the prediction loaders) and hand-written (24e522d's resolvers,
 * argument helpers and loaders).
 */
const DATA_PLANE_FILES =
  /^src\/(sources\/|loaders\/|graphql\/(source-resolvers|engine-resolvers|resolvers\/|models|args)\b)/;

/** Milliseconds of the gateway's CPU per answered request, over a measured run. */
function cpuPerRequest(r: LoadResult): number {
  return ((r.serverCores ?? Number.NaN) * 1000) / r.okPerSecond;
}

/**
 * The two sides' CPU per request at the same load, in total and by area (the areas either
 * side spends most in), and each side's top frames.
 */
function compareProfiles(
  what: string,
  generated: RequestProfile | undefined,
  handwritten: RequestProfile | undefined,
): string[] {
  if (!generated || !handwritten) return [`${what}: no CPU profile (Node.js did not write one)`];
  const ms = (p: RequestProfile, area: string) =>
    p.areasMsPerRequest.find((a) => a.area === area)?.ms ?? 0;
  const areas = [
    ...new Set([
      ...generated.areasMsPerRequest.slice(0, 10).map((a) => a.area),
      ...handwritten.areasMsPerRequest.slice(0, 10).map((a) => a.area),
    ]),
  ].sort((a, b) => ms(generated, b) - ms(generated, a));
  const kib = (p: RequestProfile, area: string) =>
    p.allocatedKiBByArea?.find((a) => a.area === area)?.kib ?? 0;
  // Node.js internals sit under nearly every allocation (the microtask queue, streams): left out.
  const ownAreas = (p: RequestProfile) =>
    (p.allocatedKiBByArea ?? [])
      .filter((a) => !a.area.startsWith('node:') && !a.area.startsWith('native:'))
      .slice(0, 6)
      .map((a) => a.area);
  const allocationAreas = [
    ...new Set(['data plane', ...ownAreas(generated), ...ownAreas(handwritten)]),
  ];
  const frames = (p: RequestProfile) =>
    p.summary.frames
      .slice(0, 6)
      .map((f) => `${f.frame} ${f.percent}%`)
      .join('; ');
  return [
    `${what}, profiled over ${generated.requests} and ${handwritten.requests} requests: main-thread CPU per request ${generated.busyMsPerRequest.toFixed(2)} ms ${GENERATED} vs ${handwritten.busyMsPerRequest.toFixed(2)} ms ${HANDWRITTEN}; by area (ms, ${GENERATED} vs ${HANDWRITTEN}): ${areas
      .map((a) => `${a} ${ms(generated, a).toFixed(2)} vs ${ms(handwritten, a).toFixed(2)}`)
      .join(', ')}`,
    `${what}, allocated per request (KiB, V8 sampling heap profiler, collected objects included): ${(generated.allocatedKiBPerRequest ?? Number.NaN).toFixed(0)} ${GENERATED} vs ${(handwritten.allocatedKiBPerRequest ?? Number.NaN).toFixed(0)} ${HANDWRITTEN}; under each area, inclusive (areas overlap): ${allocationAreas
      .map((a) => `${a} ${kib(generated, a).toFixed(1)} vs ${kib(handwritten, a).toFixed(1)}`)
      .join(', ')}`,
    `${what}, top frames: ${GENERATED}: ${frames(generated)} | ${HANDWRITTEN}: ${frames(handwritten)}`,
  ];
}

/** Removes every `cached` field: the one field allowed to differ between two answers. */
function withoutCached(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutCached);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key]) => key !== 'cached')
        .map(([key, v]) => [key, withoutCached(v)]),
    );
  }
  return value;
}

/** The first path where two JSON values differ, for the error message. */
function firstDifference(a: unknown, b: unknown, path = '$'): string {
  if (isDeepStrictEqual(a, b)) return '';
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) {
      const d = firstDifference(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        `${path}.${key}`,
      );
      if (d) return d;
    }
    return `${path}: key order ${JSON.stringify(Object.keys(a))} vs ${JSON.stringify(Object.keys(b))}`;
  }
  return `${path}: ${JSON.stringify(a)?.slice(0, 200)} vs ${JSON.stringify(b)?.slice(0, 200)}`;
}

/**
 * Both gateways answer the same queries for the same tenant identically (but for `cached`):
 * every scalar field of customers and orders, both relations, the model field, cursors and
 * pageInfo, a second page, a filter, lookups (one missing) and the aggregation queries.
 */
async function checkSameAnswers(
  urls: readonly [string, string],
  token: string,
  aggregationQueries: readonly string[],
): Promise<number> {
  let checked = 0;
  const both = async (query: string, variables?: Record<string, unknown>) => {
    const [a, b] = await Promise.all(urls.map((url) => graphql(url, token, query, variables)));
    const [x, y] = [
      withoutCached(expectClean(a as Awaited<ReturnType<typeof graphql>>, GENERATED)),
      withoutCached(expectClean(b as Awaited<ReturnType<typeof graphql>>, HANDWRITTEN)),
    ];
    if (!isDeepStrictEqual(x, y)) {
      throw new Error(
        `${GENERATED} and ${HANDWRITTEN} answered differently (${firstDifference(x, y)}): ${query.slice(0, 300)}`,
      );
    }
    checked += 1;
    return x as Record<string, unknown>;
  };
  type Page = {
    customers: {
      edges: { cursor: string; node: { id: string; orders: { id: string }[] } }[];
      pageInfo: { endCursor: string | null };
    };
  };
  const first = (await both(
    `{ customers(first: 25) { edges { cursor node { ${FULL_NODE} } } pageInfo { hasNextPage endCursor } } }`,
  )) as Page;
  await both(
    `query($after: String) { customers(first: 25, after: $after) { edges { cursor node { ${FULL_NODE} } } pageInfo { hasNextPage endCursor } } }`,
    { after: first.customers.pageInfo.endCursor },
  );
  await both(
    '{ customers(first: 30, segment: ENTERPRISE) { edges { node { id segment tenureMonths } } pageInfo { hasNextPage endCursor } } }',
  );
  const customer = first.customers.edges[0]?.node;
  const order = first.customers.edges.flatMap((e) => e.node.orders)[0];
  if (!customer || !order) throw new Error('equality check: no customer or order to look up');
  await both(
    `query($id: ID!) { customer(id: $id) { ${FULL_NODE} } missing: customer(id: "cus_000000000000") { id } }`,
    { id: customer.id },
  );
  await both(
    'query($id: ID!) { order(id: $id) { id amount createdAt customer { id orders(first: 2) { id createdAt } churnRisk { score label } } } }',
    { id: order.id },
  );
  for (const query of aggregationQueries) await both(query);
  return checked;
}

/** Counts on the wire and at the model server around `PROBE_QUERIES` queries, one at a time. */
async function probe(
  read: () => WireCounts,
  modelUrl: string,
  url: string,
  token: string,
  query: string,
): Promise<Probe> {
  // Once untimed, so the pool has its connection and nothing is opened in the window.
  expectClean(await graphql(url, token, query), 'probe warm-up');
  await resetModelServerStats(modelUrl);
  const before = read();
  for (let i = 0; i < PROBE_QUERIES; i += 1) {
    expectClean(await graphql(url, token, query), 'probe');
  }
  const wire = wireDelta(read(), before);
  const stats = await modelServerStats(modelUrl);
  return {
    queries: PROBE_QUERIES,
    statementsPerQuery: wire.executes / PROBE_QUERIES,
    roundTripsPerQuery: wire.roundTrips / PROBE_QUERIES,
    roundTripsPerBatch: wire.roundTrips / wire.executes,
    inferCallsPerQuery: total(stats.inferRequests) / PROBE_QUERIES,
    connectionsOpened: wire.connections,
    simpleQueriesPerQuery: Object.fromEntries(
      Object.entries(wire.simpleQueries).map(([text, n]) => [text, n / PROBE_QUERIES]),
    ),
  };
}

/** The old code's `db:migrate` and `db:seed` for the tenants of `configPath`, then ANALYZE. */
async function seedWithOldCode(
  ctx: BenchContext,
  root: string,
  configPath: string,
  url: string,
  customers: number,
): Promise<string> {
  const env = { ATRIUM_CONFIG: configPath, DATABASE_URL: url, NODE_ENV: 'production' };
  const migrated = await runCheckoutScript({ root }, 'db:migrate', [], env);
  const seeded = await runCheckoutScript(
    { root },
    'db:seed',
    ['--customers', String(customers)],
    env,
  );
  const client = new pg.Client({ connectionString: url, application_name: 'atrium-bench' });
  await client.connect();
  try {
    // As seedBenchTenant does for the generated side: fresh statistics before any run.
    await client.query('ANALYZE');
  } finally {
    await client.end();
  }
  const lines = `${migrated}\n${seeded}`
    .split('\n')
    .filter((l) => /^(ok|FAIL)\b/.test(l.trim()))
    .map((l) => l.trim());
  ctx.log(`  ${HANDWRITTEN}: ${lines.join(' | ')}`);
  return lines.join('\n');
}

export async function dataPlaneScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const modelServer = await ctx.modelServer();
  const checkout = await ensureCheckout(HANDWRITTEN_REF, `handwritten-${HANDWRITTEN_REF}`, ctx.log);
  ctx.log(
    `data-plane: ${HANDWRITTEN} at ${checkout.root} (${checkout.reused ? 'reused' : 'made now'})`,
  );
  const customers = ctx.customerIds.length;
  const tenantOf: Record<Strategy, string> = {
    schema: ctx.dataTenant,
    row: `${ctx.dataTenant}-row`,
  };
  ctx.tenants.add(tenantOf.row);
  // The generated side: the run's database, whose schema tenant run.ts seeded; add a row tenant.
  await seedBenchTenant(ctx.db.url, tenantOf.row, customers, 'row');
  // The hand-written side: a database of its own, its tables made by the old code.
  const oldDb = await createBenchDatabase(`${ctx.suffix}_hw`);
  ctx.track({ stop: () => oldDb.drop() });
  const config = benchConfig({
    signer: ctx.signer,
    modelServerUrl: modelServer.url,
    inference: { cacheTtlSeconds: 0 },
    tenants: STRATEGIES.map((s) => benchTenant(tenantOf[s], true, s)),
  });
  const oldConfigPath = join(ctx.workDir, 'data-plane-handwritten-seed.config.json');
  await writeFile(oldConfigPath, JSON.stringify(config));
  const seedOutput = await seedWithOldCode(ctx, checkout.root, oldConfigPath, oldDb.url, customers);

  const sides: Side[] = [
    { name: GENERATED, root: undefined, database: ctx.db },
    { name: HANDWRITTEN, root: checkout.root, database: oldDb },
  ];
  const tokens = Object.fromEntries(
    await Promise.all(
      STRATEGIES.map(
        async (s) => [s, await ctx.signer.sign({ tenant: tenantOf[s], sub: 'bench' })] as const,
      ),
    ),
  ) as Record<Strategy, string>;
  const start = (side: Side, name: string, databaseUrl: string) =>
    startAtrium({
      name,
      dir: ctx.workDir,
      databaseUrl,
      redisUrl: REDIS_URL,
      config,
      root: side.root,
    }).then((p) => ctx.track(p));

  // 1. Counting: both gateways through the proxy — same answers, then round trips.
  const proxy = await startCountingProxy();
  const probes: Record<string, Probe> = {};
  const setups = new Map<string, Omit<AggregationSetup, 'pid'>>();
  let equalAnswers = 0;
  try {
    const counted: ServerProcess[] = [];
    for (const side of sides) {
      counted.push(
        await start(
          side,
          `data-plane-${side.root ? 'handwritten' : 'generated'}-counted`,
          proxy.url(side.database.name),
        ),
      );
    }
    for (const strategy of STRATEGIES) {
      const token = tokens[strategy];
      const prepared = [];
      for (const g of counted) prepared.push(await prepareAggregation(ctx, g.url, token));
      const [gen, old] = prepared;
      if (!gen || !old) throw new Error('unreachable');
      if (gen.maxPage !== old.maxPage) {
        throw new Error(`page bounds differ: ${gen.maxPage} vs ${old.maxPage}`);
      }
      equalAnswers += await checkSameAnswers(
        [counted[0]?.url ?? '', counted[1]?.url ?? ''],
        token,
        [...gen.queries.values()],
      );
      for (const [i, side] of sides.entries()) {
        const g = counted[i] as ServerProcess;
        setups.set(`${strategy} ${side.name}`, prepared[i] as Omit<AggregationSetup, 'pid'>);
        for (const n of SIZES) {
          const p = await probe(
            () => proxy.counts(side.database.name, DATA_APPLICATION),
            modelServer.url,
            g.url,
            token,
            gen.queries.get(n) ?? '',
          );
          probes[`${strategy} ${side.name} N=${n}`] = p;
          ctx.log(
            `  ${strategy} ${side.name} N=${n}: ${p.statementsPerQuery.toFixed(2)} statements, ` +
              `${p.roundTripsPerQuery.toFixed(2)} round trips (${p.roundTripsPerBatch.toFixed(2)} per batch), ` +
              `${p.inferCallsPerQuery.toFixed(2)} infer calls per query`,
          );
        }
      }
    }
    ctx.log(`  both gateways answered ${equalAnswers} queries identically (cached aside)`);
    for (const g of counted) await g.stop();
  } finally {
    await proxy.close();
  }

  // 2. Timing: fresh gateways on direct connections, interleaved pairs per strategy and N.
  const timed: ServerProcess[] = [];
  for (const side of sides) {
    timed.push(
      await start(side, `data-plane-${side.root ? 'handwritten' : 'generated'}`, side.database.url),
    );
  }
  const modelPid = modelServer.process.pid;
  const targetsOf = (strategy: Strategy, i: number): Target[] => {
    const side = sides[i] as Side;
    const setup = setups.get(`${strategy} ${side.name}`);
    const g = timed[i] as ServerProcess;
    if (!setup) throw new Error('unreachable');
    return aggregationTargets(
      { ...setup, url: g.url, pid: g.pid },
      modelPid,
      `${strategy} ${side.name} `,
    );
  };
  const targets: Target[] = STRATEGIES.flatMap((strategy) => {
    const [gen, old] = [targetsOf(strategy, 0), targetsOf(strategy, 1)];
    return gen.flatMap((t, i) => [t, old[i] as Target]);
  });
  const results = await interleavedRounds(ctx, targets);
  const runs = (name: string) => results.get(name) ?? [];
  const ratio = (strategy: Strategy, n: number) =>
    median(
      roundRatios(
        runs(`${strategy} ${GENERATED} N=${n}`),
        runs(`${strategy} ${HANDWRITTEN} N=${n}`),
        (r) => r.okPerSecond,
      ),
    );

  const figures: Figure[] = [];
  const perBatch = (strategy: Strategy, side: string) => {
    const all = SIZES.map((n) => probes[`${strategy} ${side} N=${n}`]);
    const trips = all.reduce((sum, p) => sum + (p ? p.roundTripsPerQuery * p.queries : 0), 0);
    const statements = all.reduce((sum, p) => sum + (p ? p.statementsPerQuery * p.queries : 0), 0);
    return trips / statements;
  };
  for (const strategy of STRATEGIES) {
    figures.push(
      figure(
        `${strategy}: round trips per batch, ${GENERATED}`,
        perBatch(strategy, GENERATED),
        '',
        strategy === 'row'
          ? { text: '≤ 3', met: (v) => v <= 3.05 }
          : { text: '= 1', met: (v) => Math.abs(v - 1) < 0.05 },
      ),
      figure(
        `${strategy}: round trips per batch, ${HANDWRITTEN}`,
        perBatch(strategy, HANDWRITTEN),
        '',
      ),
    );
    for (const n of SIZES) {
      figures.push(
        figure(
          `${strategy} N=${n}: requests/s, ${GENERATED} / ${HANDWRITTEN}`,
          ratio(strategy, n),
          '×',
          {
            text: '≥ 1.0×',
            met: (v) => v >= 1,
          },
        ),
      );
    }
    for (const n of SIZES) {
      const g = probes[`${strategy} ${GENERATED} N=${n}`];
      const h = probes[`${strategy} ${HANDWRITTEN} N=${n}`];
      const trips = (p: Probe | undefined) => (p?.roundTripsPerQuery ?? Number.NaN).toFixed(2);
      figures.push(
        figure(
          `${strategy} N=${n}: statements (round trips) per query, ${GENERATED} / ${HANDWRITTEN}`,
          g?.statementsPerQuery ?? Number.NaN,
          ` (${trips(g)}) / ${(h?.statementsPerQuery ?? Number.NaN).toFixed(2)} (${trips(h)})`,
        ),
      );
    }
    for (const n of SIZES) {
      figures.push(
        figure(
          `${strategy} N=${n}: server CPU per request, ${GENERATED} / ${HANDWRITTEN}`,
          median(
            roundRatios(
              runs(`${strategy} ${GENERATED} N=${n}`),
              runs(`${strategy} ${HANDWRITTEN} N=${n}`),
              cpuPerRequest,
            ),
          ),
          '×',
        ),
      );
    }
    for (const n of SIZES) {
      const g = summarize(runs(`${strategy} ${GENERATED} N=${n}`));
      const h = summarize(runs(`${strategy} ${HANDWRITTEN} N=${n}`));
      figures.push(
        figure(
          `${strategy} N=${n}: p99 latency (ms), ${GENERATED} / ${HANDWRITTEN}`,
          g.p99Ms,
          ` / ${h.p99Ms.toFixed(1)}`,
        ),
      );
    }
  }

  // 3. Where the time goes, when the generated side is the slower one (or when asked): both
  // sides profiled over the same number of requests, CPU time per request by area.
  const profiles: Record<string, RequestProfile | undefined> = {};
  const profileNotes: string[] = [];
  for (const strategy of STRATEGIES) {
    const worst = [...SIZES].sort((a, b) => ratio(strategy, a) - ratio(strategy, b))[0] as number;
    if (!(ratio(strategy, worst) < 1) && !ctx.settings.profile) continue;
    const hwRate = summarize(runs(`${strategy} ${HANDWRITTEN} N=${worst}`)).okPerSecond;
    const amount = Math.max(50, Math.round(hwRate * ctx.settings.durationSeconds));
    const pair: (RequestProfile | undefined)[] = [];
    for (const [i, side] of sides.entries()) {
      const target = targetsOf(strategy, i)[SIZES.indexOf(worst as (typeof SIZES)[number])];
      if (!target) continue;
      ctx.log(`  profiling ${strategy} ${side.name} at N=${worst} (${amount} requests)`);
      const profile = await profileRequests(
        ctx,
        {
          name: `data-plane-${side.root ? 'handwritten' : 'generated'}-${strategy}-profiled`,
          databaseUrl: side.database.url,
          redisUrl: REDIS_URL,
          config,
          root: side.root,
        },
        (url) => ({ ...target.spec, url: `${url}/graphql` }),
        amount,
        { 'data plane': DATA_PLANE_FILES },
      );
      profiles[`${strategy} ${side.name} N=${worst}`] = profile;
      pair.push(profile);
    }
    profileNotes.push(...compareProfiles(`${strategy} N=${worst}`, pair[0], pair[1]));
  }

  const medians = Object.fromEntries([...results].map(([name, r]) => [name, summarize(r)]));
  const shown = (p: Probe | undefined) =>
    p
      ? `${p.statementsPerQuery.toFixed(2)} statements / ${p.roundTripsPerQuery.toFixed(2)} round trips / ${p.inferCallsPerQuery.toFixed(2)} infer`
      : 'n/a';
  const simple = (strategy: Strategy, side: string) =>
    Object.entries(probes[`${strategy} ${side} N=${SIZES[0]}`]?.simpleQueriesPerQuery ?? {})
      .map(
        ([text, n]) => `${n.toFixed(2)} × "${text.length > 90 ? `${text.slice(0, 90)}…` : text}"`,
      )
      .join(', ') || 'none';
  const notes = [
    `${HANDWRITTEN}: a git worktree of ${checkout.commit.slice(0, 10)} (${checkout.root.slice(checkout.root.indexOf('.atrium'))}), its own npm ci and src/main.ts, its own database migrated and seeded by its own db:migrate/db:seed (${customers} customers per tenant); same config file, model server, Redis; prediction cache off; 16 connections`,
    `same answers: both gateways answered ${equalAnswers} queries identically (schema and row tenant; every field of customers and orders, both relations, churnRisk, cursors, a second page, a filter, lookups, the aggregation queries; \`cached\` aside) before timing`,
    `one query at a time, per query (statements / round trips / infer calls), counted on the wire by a proxy: ${STRATEGIES.flatMap(
      (s) =>
        SIZES.map(
          (n) =>
            `${s} N=${n} ${GENERATED} ${shown(probes[`${s} ${GENERATED} N=${n}`])}, ${HANDWRITTEN} ${shown(probes[`${s} ${HANDWRITTEN} N=${n}`])}`,
        ),
    ).join('; ')}`,
    `simple-protocol messages per query (N=${SIZES[0]}): ${STRATEGIES.flatMap((s) => [
      `${s} ${GENERATED}: ${simple(s, GENERATED)}`,
      `${s} ${HANDWRITTEN}: ${simple(s, HANDWRITTEN)}`,
    ]).join('; ')}`,
    `requests/s (median): ${[...results.keys()]
      .map((name) => `${name} ${Math.round(medians[name]?.okPerSecond ?? 0)}`)
      .join(', ')}; server CPU (cores, median): ${[...results.keys()]
      .map((name) => `${name} ${(medians[name]?.serverCores ?? Number.NaN).toFixed(2)}`)
      .join(', ')}`,
    ...profileNotes,
  ];
  return {
    scenario: 'data-plane',
    title: '6. Data plane',
    figures,
    data: {
      handwritten: { ref: HANDWRITTEN_REF, commit: checkout.commit, root: checkout.root },
      tenants: tenantOf,
      customers,
      equalAnswers,
      seedOutput,
      oneQueryAtATime: probes,
      medians,
      profiles,
      rounds: Object.fromEntries(results),
    },
    notes,
  };
}
