/**
 * Scenario 10 — peers (issue 13, "Peers in the bench"). Atrium against the servers a user would
 * write instead, each as its project's docs teach (bench/peers/): Apollo Server 5
 * (`startStandaloneServer`, a `context` building per-request DataLoaders), mercurius on fastify 5
 * (`jit: 1`, mercurius `loaders`) and graphql-yoga 5 on node:http. Every server verifies the same
 * ES256 tokens with jose, takes the tenant from the verified claims, reads the same PostgreSQL
 * tables with the same isolation and the same statements, and calls the same model server with
 * one infer call per request's batch.
 *
 * Every server runs as plain JavaScript on `node`: Atrium transpiled from this checkout's
 * sources as `npm run build` lays them out (bench/lib/build.ts), the peers bundled. Atrium as in
 * the other scenarios otherwise: config file, Redis store, NODE_ENV=production, info log level,
 * prediction cache off (the peers have none).
 *
 * 1. Counting, on servers that reach PostgreSQL through the counting proxy (bench/lib/pg-proxy.ts):
 *    first every peer's answer to every query is checked deep-equal to Atrium's (a difference
 *    aborts the scenario), then, per query and server, a fixed number of requests at the timed
 *    concurrency: SQL statements (Execute messages of the server's data connections), infer
 *    calls (model server /stats) and Redis commands per request: those run inside Redis
 *    (`INFO commandstats` delta, the INFO calls themselves left out) and those Atrium sent (a
 *    MONITOR connection, script calls left out; the ≤ 2 round trips target).
 * 2. Timing, on fresh servers with direct connections: per query, interleaved rounds over the
 *    four servers; medians; ratios Atrium / peer are medians of the per-round ratios.
 * 3. Profiles: for each query where Atrium misses a target (every query with --profile), one
 *    more Atrium process under `node --cpu-prof` and the same load, summarised by area and
 *    frame (never one of the timed rounds: profiling costs throughput).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Redis } from 'ioredis';
import { buildJs } from '../lib/build.js';
import { type BenchContext, interleavedRounds, type Target } from '../lib/context.js';
import { benchConfig, benchTenant, REDIS_URL } from '../lib/environment.js';
import { modelServerStats, resetModelServerStats, total } from '../lib/graphql-client.js';
import { type LoadResult, runLoad } from '../lib/load.js';
import { startCountingProxy, type WireCounts, wireDelta } from '../lib/pg-proxy.js';
import { describeProfile, profileUnderLoad, type ProfileSummary } from '../lib/profile.js';
import { type ServerProcess, startAtrium, startNodeScript } from '../lib/processes.js';
import { figure, type Figure, type ScenarioReport } from '../lib/report.js';
import { median, round } from '../lib/stats.js';
import { prepareAggregation, SIZES } from './aggregation.js';
import { OVERHEAD_QUERY, roundRatios, summarize } from './overhead.js';

const PEERS = ['apollo-docs', 'mercurius', 'yoga'] as const;
type Peer = (typeof PEERS)[number];
const ATRIUM = 'atrium';
const SERVERS = [ATRIUM, ...PEERS] as const;
type Server = (typeof SERVERS)[number];
const DESCRIPTION: Record<Server, string> = {
  atrium: 'Atrium (Redis store, built JS)',
  'apollo-docs': 'Apollo Server 5 as its docs teach (startStandaloneServer, context, DataLoaders)',
  mercurius: 'mercurius 16 on fastify 5 (jit: 1, loaders)',
  yoga: 'graphql-yoga 5 on node:http (context, DataLoaders)',
};
/** Atrium's data pool and the peers' pools, as they name themselves to PostgreSQL. */
const APPLICATION: Record<Server, string> = {
  atrium: 'atrium',
  'apollo-docs': 'atrium-peer',
  mercurius: 'atrium-peer',
  yoga: 'atrium-peer',
};
/** Scenario 3's single-customer query (bench/scenarios/micro-batching.ts), the text reused. */
const CHURN_QUERY = 'query Churn($id: ID!) { customer(id: $id) { churnRisk { score } } }';
const MISSING_CUSTOMER = 'cus_000000000000';
/** Requests per connection in a counted pass. */
const COUNTED_PER_CONNECTION = 10;

interface PeerTarget {
  peer: Peer;
  min: number;
}

interface QuerySpec {
  key: string;
  label: string;
  connections: number;
  bodies: string[];
  /** Bodies whose answers are compared (a few of `bodies`, and a lookup that finds nothing). */
  checked: string[];
  targets: PeerTarget[];
}

interface Counted {
  requests: number;
  sqlPerRequest: number;
  inferPerRequest: number;
  rowsPerInfer: number;
  redisPerRequest: number;
  redisByCommand: Record<string, number>;
  /**
   * Commands the server sent Redis per request, as MONITOR sees them (the calls a script makes
   * inside Redis left out): each is answered within at most one round trip, so this bounds the
   * round trips per request from above.
   */
  redisSentPerRequest: number;
}

/**
 * Counts what clients other than the bench send Redis while `run` runs, from a MONITOR
 * connection: commands a script calls inside Redis (source `lua`) and the bench's own INFO
 * calls are not counted.
 */
async function sentToRedis(redis: Redis, run: () => Promise<void>): Promise<number> {
  const monitor = await redis.monitor();
  let sent = 0;
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source === 'lua' || args[0]?.toLowerCase() === 'info') return;
    sent += 1;
  });
  try {
    await run();
    // MONITOR's stream trails the commands it reports: let it catch up.
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    monitor.disconnect();
  }
  return sent;
}

/** Calls per command in Redis's `INFO commandstats`. */
async function commandStats(redis: Redis): Promise<Record<string, number>> {
  const text = await redis.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    calls[match[1] as string] = Number(match[2]);
  }
  return calls;
}

async function post(url: string, token: string, body: string) {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The first path where two JSON values differ, for the error message. */
function firstDifference(a: unknown, b: unknown, path = '$'): string {
  if (isDeepStrictEqual(a, b)) return '';
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
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
 * Every peer answers every checked body exactly as Atrium does: same status (200), same JSON,
 * no `errors`. Nothing is dropped from the comparison: the queries ask for no field that may
 * legitimately differ (no `cached`, no timing). Throws on the first difference.
 */
async function checkSameAnswers(
  servers: Record<Server, ServerProcess>,
  token: string,
  queries: readonly QuerySpec[],
): Promise<number> {
  let compared = 0;
  for (const query of queries) {
    for (const body of query.checked) {
      const reference = await post(servers.atrium.url, token, body);
      if (reference.status !== 200 || 'errors' in reference.body) {
        throw new Error(`${query.key}: Atrium answered ${JSON.stringify(reference).slice(0, 500)}`);
      }
      for (const peer of PEERS) {
        const answer = await post(servers[peer].url, token, body);
        if (answer.status !== 200 || !isDeepStrictEqual(answer.body, reference.body)) {
          throw new Error(
            `${query.key}: ${peer} answered differently from Atrium (status ${answer.status}; ` +
              `${firstDifference(answer.body, reference.body)}): ${body.slice(0, 300)}`,
          );
        }
        compared += 1;
      }
    }
  }
  return compared;
}

function spec(url: string, token: string, query: QuerySpec): Target['spec'] {
  return {
    url: `${url}/graphql`,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    bodies: query.bodies,
    connections: query.connections,
    timeoutSeconds: 30,
  };
}

/** A fixed number of requests at the timed concurrency, with the backends' counters around. */
async function countedPass(
  server: Server,
  proc: ServerProcess,
  token: string,
  query: QuerySpec,
  modelUrl: string,
  wire: (application: string) => WireCounts,
  redis: Redis,
): Promise<Counted> {
  const amount = query.connections * COUNTED_PER_CONNECTION;
  await resetModelServerStats(modelUrl);
  const wireBefore = wire(APPLICATION[server]);
  const redisBefore = await commandStats(redis);
  const sent = await sentToRedis(redis, async () => {
    const result = await runLoad({
      ...spec(proc.url, token, query),
      warmupSeconds: 0,
      durationSeconds: 1,
      amount,
    });
    if (result.ok !== amount) {
      throw new Error(
        `${server} ${query.key}: ${result.ok} of ${amount} answers were clean: ${result.firstError ?? ''}`,
      );
    }
    // Work a request leaves behind after its answer (Atrium's lease release) lands in the pass.
    await new Promise((resolve) => setTimeout(resolve, 200));
  });
  const sql = wireDelta(wire(APPLICATION[server]), wireBefore);
  const redisAfter = await commandStats(redis);
  const stats = await modelServerStats(modelUrl);
  const redisByCommand: Record<string, number> = {};
  for (const [command, calls] of Object.entries(redisAfter)) {
    const d = calls - (redisBefore[command] ?? 0);
    // Our own INFO calls are not the server's.
    if (d > 0 && command !== 'info' && command !== 'monitor') redisByCommand[command] = d / amount;
  }
  const inferCalls = total(stats.inferRequests);
  return {
    requests: amount,
    sqlPerRequest: sql.executes / amount,
    inferPerRequest: inferCalls / amount,
    rowsPerInfer: inferCalls === 0 ? 0 : total(stats.inferredRows) / inferCalls,
    redisPerRequest: Object.values(redisByCommand).reduce((a, b) => a + b, 0),
    redisByCommand,
    redisSentPerRequest: sent / amount,
  };
}

const fixed = (value: number, digits = 2) =>
  Number.isFinite(value) ? value.toFixed(digits) : 'n/a';

export async function peersScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const modelServer = await ctx.modelServer();
  const modelPid = modelServer.process.pid;
  // A full run takes longer than the signer's default 10 minutes: the token must outlive it.
  const token = await ctx.signer.sign(
    { tenant: ctx.dataTenant, sub: 'bench' },
    { expiresIn: '2h' },
  );
  const built = await buildJs(PEERS);
  ctx.log(`peers: built Atrium and the peers as JavaScript in ${built.buildMs.toFixed(0)} ms`);
  const config = benchConfig({
    signer: ctx.signer,
    modelServerUrl: modelServer.url,
    inference: { cacheTtlSeconds: 0 },
    tenants: [benchTenant(ctx.dataTenant, true)],
  });
  const peerConfig = join(ctx.workDir, 'peers.config.json');
  await writeFile(peerConfig, JSON.stringify(config));

  const startAll = async (suffix: string, databaseUrl: string) => {
    const [atrium, ...peers] = await Promise.all([
      startAtrium({
        name: `peers-atrium${suffix}`,
        dir: ctx.workDir,
        databaseUrl,
        redisUrl: REDIS_URL,
        config,
        main: built.atriumMain,
      }),
      ...PEERS.map((peer) =>
        startNodeScript(`peers-${peer}${suffix}`, built.peers[peer] as string, {
          PEER_CONFIG: peerConfig,
          DATABASE_URL: databaseUrl,
        }),
      ),
    ]).then((all) => all.map((p) => ctx.track(p)));
    return Object.fromEntries(
      SERVERS.map((name, i) => [name, i === 0 ? atrium : peers[i - 1]]),
    ) as Record<Server, ServerProcess>;
  };

  // 1. Counting: answers compared, then backend calls per request.
  const proxy = await startCountingProxy();
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let queries: QuerySpec[] = [];
  let compared = 0;
  const counted: Record<string, Record<Server, Counted>> = {};
  try {
    const servers = await startAll('-counted', proxy.url(ctx.db.name));
    const aggregation = await prepareAggregation(ctx, servers.atrium.url, token);
    const churnBody = (id: string) => JSON.stringify({ query: CHURN_QUERY, variables: { id } });
    const q1 = JSON.stringify({ query: OVERHEAD_QUERY });
    queries = [
      {
        key: 'Q1',
        label: 'Q1 viewer, c=16',
        connections: 16,
        bodies: [q1],
        checked: [q1],
        targets: [
          { peer: 'mercurius', min: 1 },
          { peer: 'apollo-docs', min: 1.5 },
        ],
      },
      ...SIZES.map((n) => {
        const body = JSON.stringify({ query: aggregation.queries.get(n) });
        return {
          key: `Q2 N=${n}`,
          label: `Q2 N=${n}, c=16`,
          connections: 16,
          bodies: [body],
          checked: [body],
          targets: [
            { peer: 'mercurius' as const, min: 1.5 },
            { peer: 'apollo-docs' as const, min: 2 },
          ],
        };
      }),
      {
        key: 'Q3',
        label: 'Q3 one customer + churnRisk, c=64',
        connections: 64,
        // Every request another customer: ids go round the seeded customers.
        bodies: ctx.customerIds.map(churnBody),
        checked: [...ctx.customerIds.slice(0, 8), MISSING_CUSTOMER].map(churnBody),
        targets: [{ peer: 'mercurius', min: 1.5 }],
      },
    ];
    compared = await checkSameAnswers(servers, token, queries);
    ctx.log(`peers: every peer answered ${compared / PEERS.length} bodies exactly as Atrium did`);
    for (const query of queries) {
      const row = {} as Record<Server, Counted>;
      for (const server of SERVERS) {
        row[server] = await countedPass(
          server,
          servers[server],
          token,
          query,
          modelServer.url,
          (application) => proxy.counts(ctx.db.name, application),
          redis,
        );
      }
      counted[query.key] = row;
      ctx.log(
        `  ${query.key} per request (SQL / infer / Redis): ` +
          SERVERS.map(
            (s) =>
              `${s} ${fixed(row[s].sqlPerRequest)} / ${fixed(row[s].inferPerRequest, 3)} / ${fixed(row[s].redisPerRequest)}`,
          ).join(', '),
      );
    }
    for (const server of SERVERS) await servers[server].stop();
  } finally {
    redis.disconnect();
    await proxy.close();
  }

  // 2. Timing: fresh servers on direct connections, interleaved per query.
  const servers = await startAll('', ctx.db.url);
  const rounds: Record<string, Record<string, LoadResult[]>> = {};
  for (const query of queries) {
    ctx.log(`peers: ${query.label}`);
    const targets: Target[] = SERVERS.map((server) => ({
      name: server,
      pid: servers[server].pid,
      otherPids:
        modelPid === undefined ? {} : ({ 'model server': modelPid } as Record<string, number>),
      spec: spec(servers[server].url, token, query),
    }));
    rounds[query.key] = Object.fromEntries(await interleavedRounds(ctx, targets));
  }

  // Figures: ratios beside the issue's targets, then each server's numbers per query.
  const figures: Figure[] = [];
  const medians: Record<string, Record<string, unknown>> = {};
  const rps = (r: LoadResult) => r.okPerSecond;
  /** Queries where Atrium misses a target (profiled below). */
  const missed = new Set<string>();
  for (const query of queries) {
    const runs = rounds[query.key] as Record<Server, LoadResult[]>;
    for (const peer of PEERS) {
      const target = query.targets.find((t) => t.peer === peer);
      const ratio = figure(
        `${query.label}: Atrium / ${peer}, requests/s`,
        median(roundRatios(runs.atrium, runs[peer], rps)),
        '×',
        target && { text: `≥ ${target.min}×`, met: (v) => v >= target.min },
      );
      if (ratio.met === false) missed.add(query.key);
      figures.push(ratio);
    }
  }
  for (const query of queries) {
    const runs = rounds[query.key] as Record<Server, LoadResult[]>;
    const row: Record<string, unknown> = {};
    for (const server of SERVERS) {
      const s = summarize(runs[server]);
      const c = counted[query.key]?.[server];
      const cpuUs = median(
        runs[server].map((r) => ((r.serverCores ?? Number.NaN) * 1e6) / r.okPerSecond),
      );
      row[server] = { ...s, cpuMicrosecondsPerRequest: round(cpuUs), counted: c };
      figures.push(
        figure(
          `${query.label}: ${server} req/s · p99 · cores · CPU/req · SQL + infer + Redis per req`,
          s.okPerSecond,
          ` · ${fixed(s.p99Ms, 1)} ms · ${fixed(s.serverCores)} cores · ${cpuUs.toFixed(0)} µs · ` +
            `${fixed(c?.sqlPerRequest ?? Number.NaN)} + ${fixed(c?.inferPerRequest ?? Number.NaN, 3)} + ` +
            `${fixed(c?.redisPerRequest ?? Number.NaN)}`,
        ),
      );
    }
    medians[query.key] = row;
    const sent = counted[query.key]?.atrium.redisSentPerRequest ?? Number.NaN;
    figures.push(
      figure(`${query.label}: Redis commands Atrium sends per request (MONITOR)`, sent, '', {
        text: '≤ 2 round trips',
        met: (v) => v <= 2,
      }),
    );
  }
  // 3. Where a target is missed, the profile that shows why.
  const profiles: Record<string, ProfileSummary | undefined> = {};
  const profileNotes: string[] = [];
  for (const query of queries) {
    if (!missed.has(query.key) && !ctx.settings.profile) continue;
    ctx.log(`peers: profiling Atrium on ${query.label}`);
    const summary = await profileUnderLoad(
      ctx,
      {
        name: `peers-atrium-profiled-${query.key.replace(/\W+/g, '-')}`,
        databaseUrl: ctx.db.url,
        redisUrl: REDIS_URL,
        config,
        main: built.atriumMain,
      },
      (url) => spec(url, token, query),
    );
    profiles[query.key] = summary;
    profileNotes.push(
      ...describeProfile(summary).map((line) => `Atrium ${query.key} (profiled): ${line}`),
    );
  }

  const atriumRedis = Object.entries(counted.Q1?.atrium.redisByCommand ?? {})
    .map(([command, n]) => `${command} ${fixed(n)}`)
    .join(', ');
  return {
    scenario: 'peers',
    title: '10. Peers',
    figures,
    data: {
      servers: DESCRIPTION,
      buildMs: Math.round(built.buildMs),
      queries: queries.map((q) => ({
        key: q.key,
        connections: q.connections,
        body: q.bodies[0],
        bodies: q.bodies.length,
        checked: q.checked.length,
      })),
      answersCompared: compared,
      countedPerConnection: COUNTED_PER_CONNECTION,
      counted,
      medians,
      rounds,
      startupMs: Object.fromEntries(SERVERS.map((s) => [s, Math.round(servers[s].startupMs)])),
      profiles,
    },
    notes: [
      `servers: ${SERVERS.map((s) => `${s} = ${DESCRIPTION[s]}`).join('; ')}. All on plain node (Atrium transpiled from this checkout, as npm run build lays it out), NODE_ENV=production; Atrium with its Redis store, info access log, prediction cache off`,
      `every peer answered ${compared / PEERS.length} request bodies exactly as Atrium (deep-equal JSON, status 200) before any timing`,
      `per-server rows: median requests/s · p99 · gateway process cores (CPU time / wall) · CPU per request · SQL statements (Execute messages, counting proxy) + infer calls (model server) + Redis commands (INFO commandstats) per request, counted over ${COUNTED_PER_CONNECTION} requests per connection at the same concurrency`,
      `Atrium's Redis commands per Q1 request, by command: ${atriumRedis || 'none'}`,
      'Redis commands Atrium sends per request: what a MONITOR connection saw it send during the counted pass (the calls its scripts make inside Redis left out); each is answered within one round trip at most (pipelined ones share one), so the figure bounds its round trips per request from above',
      `requests/s (median): ${queries
        .map(
          (q) =>
            `${q.key} ${SERVERS.map((s) => `${s} ${Math.round((medians[q.key]?.[s] as { okPerSecond: number }).okPerSecond)}`).join(' ')}`,
        )
        .join('; ')}`,
      ...profileNotes,
    ],
  };
}
