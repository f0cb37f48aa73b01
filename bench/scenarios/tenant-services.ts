/**
 * Scenario 7 — tenant services. `customers(first: N) { edges { node { id tickets { id subject
 * status } } } }` on two servers over the same reference tickets service process
 * (services/tickets): Atrium (the demo schema, whose `Customer.tickets` is an `@http` field
 * batched by `customerId`: one `GET /tickets?customerId=a,b,…` per batch) and a peer built as
 * Apollo's docs teach (bench/servers/apollo-datasource-rest.ts: a `RESTDataSource` per request,
 * one `GET /customers/{id}/tickets` per customer).
 *
 * Both send the tickets service a short-lived ES256 identity token it verifies: a JWKS server in
 * this process serves both public keys (the gateway's, whose private key the bench generates and
 * hands it as `identity.signingKey`, checked against its own `/.well-known/jwks.json`, and the
 * peer's). Both read the same customers (the run's seeded tenant; the peer loads the ids once at
 * start) and must answer identically — same customers, same tickets in the same order — before
 * anything is timed. Upstream calls are counted by the tickets service itself (`/_stats`), one
 * query at a time and under load; timing is interleaved rounds as in the other scenarios, with
 * the CPU of the server and of the tickets service sampled for every run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { spawnTicketsService } from '../../services/tickets/spawn.js';
import { defaultTenantSchema } from '../../src/config/isolation-targets.js';
import { TEST_AUDIENCE, TEST_ISSUER } from '../../test/support/tokens.js';
import { type BenchContext, interleavedRounds, type Target } from '../lib/context.js';
import { benchConfig, benchTenant, REDIS_URL } from '../lib/environment.js';
import { expectClean, type GraphqlAnswer } from '../lib/graphql-client.js';
import { type LoadResult, runLoad } from '../lib/load.js';
import { profileRequests, type RequestProfile } from '../lib/profile.js';
import { ROOT, type ServerProcess, startAtrium } from '../lib/processes.js';
import { figure, type Figure, type ScenarioReport } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { roundRatios, summarize } from './overhead.js';

export const TENANT_SERVICES_SIZES = [10, 50, 200] as const;
/** N of the headline target (requests/s ≥ 2×). */
const HEADLINE_N = 50;
const CONNECTIONS = 16;
const PROBE_QUERIES = 20;
/** Requests per connection in the counted run under load. */
const COUNTED_PER_CONNECTION = 6;
const SERVICE = 'tickets';
const IDENTITY_ISSUER = 'atrium';
const IDENTITY_TTL_SECONDS = 30;
const ATRIUM = 'atrium';
const PEER = 'apollo-datasource-rest';
const PEER_SCRIPT = 'bench/servers/apollo-datasource-rest.ts';
/** Atrium's own files of the HTTP source, as an area of the allocation profile. */
const HTTP_SOURCE_FILES = /^src\/(sources\/http\/|backends\/http\/|backends\/resilience\/)/;

export function ticketsQuery(n: number): string {
  return `{ customers(first: ${n}) { edges { node { id tickets { id subject status } } } } }`;
}

/** What the tickets service counted (`GET /_stats`). */
interface TicketsStats {
  requests: number;
  byTenant: Record<string, number>;
  byPath: Record<string, number>;
  byStatus: Record<string, number>;
  customerIds: Record<string, number>;
}

async function ticketsStats(url: string): Promise<TicketsStats> {
  return (await (await fetch(`${url}/_stats`)).json()) as TicketsStats;
}

async function resetTicketsStats(url: string): Promise<void> {
  await (await fetch(`${url}/_stats/reset`, { method: 'POST' })).text();
}

/** One of the two servers: where its GraphQL endpoint is. */
interface Side {
  name: typeof ATRIUM | typeof PEER;
  process: ServerProcess;
  endpoint: string;
}

async function ask(endpoint: string, token: string, query: string): Promise<GraphqlAnswer> {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  return { status: res.status, ...((await res.json()) as Omit<GraphqlAnswer, 'status'>) };
}

/** Upstream calls per query, counted by the service, around `queries` queries. */
interface Counted {
  queries: number;
  callsPerQuery: number;
  /** Customer ids asked per query (a batch call asks many). */
  idsPerQuery: number;
  byPath: Record<string, number>;
  byTenant: Record<string, number>;
  byStatus: Record<string, number>;
}

async function countAround(
  ticketsUrl: string,
  tenant: string,
  what: string,
  run: () => Promise<number>,
): Promise<Counted> {
  await resetTicketsStats(ticketsUrl);
  const queries = await run();
  const stats = await ticketsStats(ticketsUrl);
  const others = Object.keys(stats.byTenant).filter((t) => t !== tenant);
  const failed = Object.keys(stats.byStatus).filter((s) => s !== '200');
  if (others.length > 0 || failed.length > 0) {
    throw new Error(
      `${what}: the tickets service saw tenants ${JSON.stringify(stats.byTenant)} and statuses ${JSON.stringify(stats.byStatus)}`,
    );
  }
  return {
    queries,
    callsPerQuery: stats.requests / queries,
    idsPerQuery: Object.values(stats.customerIds).reduce((a, b) => a + b, 0) / queries,
    byPath: stats.byPath,
    byTenant: stats.byTenant,
    byStatus: stats.byStatus,
  };
}

/**
 * A JWKS endpoint holding both signers' public keys, so the one tickets service verifies the
 * gateway's and the peer's tokens alike (it reads one JWKS URL).
 */
async function startJwksServer(keys: readonly JWK[]) {
  const body = JSON.stringify({ keys });
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=600' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An ES256 key pair: the private JWK (for its holder) and the public one as published. */
async function signingKeyPair(): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const pair = await generateKeyPair('ES256', { extractable: true });
  const privateJwk = await exportJWK(pair.privateKey);
  const publicJwk = await exportJWK(pair.publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { privateJwk, publicJwk: { ...publicJwk, kid, alg: 'ES256', use: 'sig' } };
}

/**
 * Starts the peer (`node --import tsx`, NODE_ENV=production, like bench/servers/* under
 * `startScript`) with its settings in the environment.
 */
async function startPeer(env: Record<string, string>): Promise<ServerProcess> {
  const started = performance.now();
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, PEER_SCRIPT)],
    {
      cwd: ROOT,
      env: { ...process.env, NODE_ENV: 'production', PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${PEER} did not start within 60 s:\n${output}`));
    }, 60_000);
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-16 * 1024);
      const match = /^listening (http:\/\/\S+)/m.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1].replace(/\/$/, ''));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${PEER} exited with ${code} before listening:\n${output}`));
    });
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${PEER}: no pid`);
  return {
    name: PEER,
    url,
    pid,
    startupMs: performance.now() - started,
    output: () => output,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

type Page = {
  customers: { edges: { node: { id: string; tickets: { id: string }[] } }[] };
};

/** Both sides answer every N identically; returns what the answers hold, for the notes. */
async function checkSameAnswers(sides: readonly Side[], token: string) {
  const checked: Record<string, { customers: number; tickets: number; withTickets: number }> = {};
  for (const n of TENANT_SERVICES_SIZES) {
    const answers = [];
    for (const side of sides) {
      answers.push(
        expectClean(await ask(side.endpoint, token, ticketsQuery(n)), `${side.name} N=${n}`),
      );
    }
    const [a, b] = answers as [Page, Page];
    if (!isDeepStrictEqual(a, b)) {
      const at = a.customers.edges.findIndex((e, i) => !isDeepStrictEqual(e, b.customers.edges[i]));
      throw new Error(
        `N=${n}: ${ATRIUM} and ${PEER} answered differently (first at edge ${at}: ` +
          `${JSON.stringify(a.customers.edges[at]).slice(0, 300)} vs ${JSON.stringify(b.customers.edges[at]).slice(0, 300)})`,
      );
    }
    const nodes = a.customers.edges.map((e) => e.node);
    if (nodes.length !== n) throw new Error(`N=${n}: ${nodes.length} customers answered`);
    checked[`N=${n}`] = {
      customers: nodes.length,
      tickets: nodes.reduce((sum, c) => sum + c.tickets.length, 0),
      withTickets: nodes.filter((c) => c.tickets.length > 0).length,
    };
    if (checked[`N=${n}`]?.tickets === 0) throw new Error(`N=${n}: no tickets at all`);
  }
  return checked;
}

/** Milliseconds of a process's CPU per answered request, over a measured run. */
function cpuMsPerRequest(r: LoadResult, process?: string): number {
  const cores = process === undefined ? r.serverCores : r.otherCores?.[process];
  return ((cores ?? Number.NaN) * 1000) / r.okPerSecond;
}

export async function tenantServicesScenario(ctx: BenchContext): Promise<ScenarioReport> {
  const tenant = ctx.dataTenant;
  const token = await ctx.signer.sign({ tenant, sub: 'bench' });
  const gatewayKey = await signingKeyPair();
  const peerKey = await signingKeyPair();
  const keyFile = join(ctx.workDir, 'tenant-services-identity.jwk.json');
  await writeFile(keyFile, JSON.stringify(gatewayKey.privateJwk), { mode: 0o600 });

  const jwks = await startJwksServer([gatewayKey.publicJwk, peerKey.publicJwk]);
  ctx.track({ stop: jwks.stop });
  const tickets = ctx.track(
    await spawnTicketsService({ jwks: jwks.url, audience: SERVICE, issuer: IDENTITY_ISSUER }),
  );
  const ticketsPid = tickets.process.pid;
  if (ticketsPid === undefined) throw new Error('tickets service: no pid');
  ctx.log(`tenant-services: tickets service ${tickets.url} (pid ${ticketsPid}), JWKS ${jwks.url}`);

  const config = {
    ...benchConfig({ signer: ctx.signer, tenants: [benchTenant(tenant, false)] }),
    services: { [SERVICE]: { url: tickets.url, healthPath: '/healthz' } },
    identity: {
      issuer: IDENTITY_ISSUER,
      ttlSeconds: IDENTITY_TTL_SECONDS,
      signingKey: { file: keyFile },
    },
  };
  const atriumOptions = {
    name: 'atrium-tenant-services',
    config,
    databaseUrl: ctx.db.url,
    redisUrl: REDIS_URL,
  };
  const [atrium, peer] = await Promise.all([
    startAtrium({ ...atriumOptions, dir: ctx.workDir }),
    startPeer({
      PEER_TICKETS_URL: tickets.url,
      PEER_DATABASE_URL: ctx.db.url,
      PEER_SCHEMA: defaultTenantSchema(tenant),
      PEER_TENANT: tenant,
      PEER_CUSTOMERS: String(Math.max(...TENANT_SERVICES_SIZES)),
      PEER_SIGNING_KEY: JSON.stringify(peerKey.privateJwk),
      PEER_IDENTITY_ISSUER: IDENTITY_ISSUER,
      PEER_IDENTITY_AUDIENCE: SERVICE,
      PEER_IDENTITY_TTL_SECONDS: String(IDENTITY_TTL_SECONDS),
      PEER_AUTH_JWK: JSON.stringify(ctx.signer.publicJwk),
      PEER_AUTH_ISSUER: TEST_ISSUER,
      PEER_AUTH_AUDIENCE: TEST_AUDIENCE,
    }),
  ]).then((all) => all.map((p) => ctx.track(p)));
  if (!atrium || !peer) throw new Error('unreachable');

  // The gateway must publish the key it was given (the tickets service trusts the bench's JWKS).
  const published = (await (await fetch(`${atrium.url}/.well-known/jwks.json`)).json()) as {
    keys: JWK[];
  };
  if (!published.keys.some((k) => k.kid === gatewayKey.publicJwk.kid)) {
    throw new Error(
      `the gateway's /.well-known/jwks.json does not hold its configured key: ${JSON.stringify(published)}`,
    );
  }

  const sides: Side[] = [
    { name: ATRIUM, process: atrium, endpoint: `${atrium.url}/graphql` },
    { name: PEER, process: peer, endpoint: `${peer.url}/` },
  ];
  const answers = await checkSameAnswers(sides, token);
  ctx.log(
    `  same answers from both for N = ${TENANT_SERVICES_SIZES.join(', ')}: ${Object.entries(answers)
      .map(([n, a]) => `${n} ${a.tickets} tickets`)
      .join(', ')}`,
  );

  // 1. Upstream calls per query, one query at a time and under load, counted by the service.
  const probes: Record<string, Counted> = {};
  const underLoad: Record<string, Counted> = {};
  const specOf = (side: Side, n: number): Target['spec'] => ({
    url: side.endpoint,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    bodies: [JSON.stringify({ query: ticketsQuery(n) })],
    connections: CONNECTIONS,
    timeoutSeconds: 30,
  });
  for (const side of sides) {
    for (const n of TENANT_SERVICES_SIZES) {
      const key = `${side.name} N=${n}`;
      probes[key] = await countAround(tickets.url, tenant, key, async () => {
        for (let i = 0; i < PROBE_QUERIES; i += 1) {
          expectClean(await ask(side.endpoint, token, ticketsQuery(n)), `probe ${key}`);
        }
        return PROBE_QUERIES;
      });
      const amount = CONNECTIONS * COUNTED_PER_CONNECTION;
      underLoad[key] = await countAround(tickets.url, tenant, `${key} under load`, async () => {
        const r = await runLoad({
          ...specOf(side, n),
          warmupSeconds: 0,
          durationSeconds: 1,
          amount,
        });
        if (r.ok !== amount) {
          throw new Error(`${key}: ${r.ok} of ${amount} answers were clean: ${r.firstError ?? ''}`);
        }
        return amount;
      });
      ctx.log(
        `  ${key}: ${probes[key].callsPerQuery.toFixed(2)} upstream calls per query one at a time ` +
          `(${probes[key].idsPerQuery.toFixed(0)} ids), ${underLoad[key].callsPerQuery.toFixed(2)} under load`,
      );
    }
  }

  // 2. Timing: interleaved rounds, Atrium and the peer at each N.
  const targets: Target[] = TENANT_SERVICES_SIZES.flatMap((n) =>
    sides.map((side) => ({
      name: `${side.name} N=${n}`,
      pid: side.process.pid,
      otherPids: { [SERVICE]: ticketsPid },
      spec: specOf(side, n),
    })),
  );
  const results = await interleavedRounds(ctx, targets);
  const runs = (name: string) => results.get(name) ?? [];
  const ratio = (n: number, pick: (r: LoadResult) => number) =>
    median(roundRatios(runs(`${ATRIUM} N=${n}`), runs(`${PEER} N=${n}`), pick));
  const medianOf = (name: string, pick: (r: LoadResult) => number) => median(runs(name).map(pick));

  const figures: Figure[] = [];
  for (const n of TENANT_SERVICES_SIZES) {
    figures.push(
      figure(
        `N=${n}: upstream calls per query, ${ATRIUM}`,
        probes[`${ATRIUM} N=${n}`]?.callsPerQuery ?? Number.NaN,
        '',
        { text: '= 1', met: (v) => Math.abs(v - 1) < 0.005 },
      ),
      figure(
        `N=${n}: upstream calls per query, ${PEER}`,
        probes[`${PEER} N=${n}`]?.callsPerQuery ?? Number.NaN,
        '',
        { text: `= ${n}`, met: (v) => Math.abs(v - n) < 0.005 },
      ),
    );
  }
  for (const n of TENANT_SERVICES_SIZES) {
    figures.push(
      figure(
        `N=${n}: requests/s, ${ATRIUM} / ${PEER}`,
        ratio(n, (r) => r.okPerSecond),
        '×',
        n === HEADLINE_N ? { text: '≥ 2×', met: (v) => v >= 2 } : undefined,
      ),
    );
  }
  for (const n of TENANT_SERVICES_SIZES) {
    const a = summarize(runs(`${ATRIUM} N=${n}`));
    const p = summarize(runs(`${PEER} N=${n}`));
    figures.push(
      figure(
        `N=${n}: requests/s, ${ATRIUM} / ${PEER} (medians)`,
        a.okPerSecond,
        ` / ${p.okPerSecond.toFixed(0)}`,
      ),
      figure(`N=${n}: p99 latency (ms), ${ATRIUM} / ${PEER}`, a.p99Ms, ` / ${p.p99Ms.toFixed(1)}`),
    );
  }
  for (const n of TENANT_SERVICES_SIZES) {
    const server = (name: string) => medianOf(name, (r) => cpuMsPerRequest(r));
    const service = (name: string) => medianOf(name, (r) => cpuMsPerRequest(r, SERVICE));
    figures.push(
      figure(
        `N=${n}: server CPU per request (ms), ${ATRIUM} / ${PEER}`,
        server(`${ATRIUM} N=${n}`),
        ` / ${server(`${PEER} N=${n}`).toFixed(2)}`,
      ),
      figure(
        `N=${n}: tickets service CPU per request (ms), ${ATRIUM} / ${PEER}`,
        service(`${ATRIUM} N=${n}`),
        ` / ${service(`${PEER} N=${n}`).toFixed(2)}`,
      ),
    );
  }

  // 3. Where Atrium's time goes, when it misses the headline target (or when asked).
  let profile: RequestProfile | undefined;
  const profileNotes: string[] = [];
  const headline = ratio(HEADLINE_N, (r) => r.okPerSecond);
  if (!(headline >= 2) || ctx.settings.profile) {
    const rate = summarize(runs(`${ATRIUM} N=${HEADLINE_N}`)).okPerSecond;
    const amount = Math.max(50, Math.round(rate * ctx.settings.durationSeconds));
    ctx.log(`  profiling ${ATRIUM} at N=${HEADLINE_N} (${amount} requests)`);
    profile = await profileRequests(
      ctx,
      { ...atriumOptions, name: 'atrium-tenant-services-profiled' },
      (url) => ({ ...specOf(sides[0] as Side, HEADLINE_N), url: `${url}/graphql` }),
      amount,
      { 'HTTP source': HTTP_SOURCE_FILES },
    );
    profileNotes.push(
      profile
        ? `${ATRIUM} N=${HEADLINE_N} profiled over ${profile.requests} requests: main-thread CPU ${profile.busyMsPerRequest.toFixed(2)} ms per request; by area (ms): ${profile.areasMsPerRequest
            .slice(0, 10)
            .map((a) => `${a.area} ${a.ms.toFixed(2)}`)
            .join(
              ', ',
            )}; allocated ${(profile.allocatedKiBPerRequest ?? Number.NaN).toFixed(0)} KiB per request (HTTP source ${(profile.allocatedKiBByArea?.find((a) => a.area === 'HTTP source')?.kib ?? Number.NaN).toFixed(1)} KiB); top frames: ${profile.summary.frames
            .slice(0, 8)
            .map((f) => `${f.frame} ${f.percent}%`)
            .join('; ')}`
        : `${ATRIUM} N=${HEADLINE_N}: no CPU profile (Node.js did not write one)`,
    );
  }

  const medians = Object.fromEntries([...results].map(([name, r]) => [name, summarize(r)]));
  const shown = (c: Counted | undefined) =>
    c ? `${c.callsPerQuery.toFixed(2)} (${Object.keys(c.byPath).join(', ')})` : 'n/a';
  const notes = [
    `one tickets service process (services/tickets, pid sampled as "${SERVICE}") for both; ${CONNECTIONS} connections; Atrium: demo schema, Redis store, identity signed (ES256, ${IDENTITY_TTL_SECONDS} s, key from identity.signingKey, published at /.well-known/jwks.json); peer: Apollo Server 5 startStandaloneServer + @apollo/datasource-rest 6 (RESTDataSource per request, server cache, willSendRequest adding the same kind of ES256 identity), caller token verified with jose and cached, customer ids loaded once at start`,
    `same answers: both answered N = ${TENANT_SERVICES_SIZES.join(', ')} identically before timing (${Object.entries(
      answers,
    )
      .map(
        ([n, a]) => `${n}: ${a.tickets} tickets over ${a.withTickets} of ${a.customers} customers`,
      )
      .join(
        '; ',
      )}); every upstream request of the counted runs carried tenant ${tenant} and got 200`,
    `upstream calls per query, one at a time (${PROBE_QUERIES} queries) and under load (${CONNECTIONS * COUNTED_PER_CONNECTION} requests, ${CONNECTIONS} concurrent): ${TENANT_SERVICES_SIZES.flatMap(
      (n) =>
        sides.map(
          (s) =>
            `${s.name} N=${n} ${shown(probes[`${s.name} N=${n}`])} / ${(underLoad[`${s.name} N=${n}`]?.callsPerQuery ?? Number.NaN).toFixed(2)}`,
        ),
    ).join('; ')}`,
    `requests/s (median): ${[...results.keys()]
      .map((name) => `${name} ${Math.round(medians[name]?.okPerSecond ?? 0)}`)
      .join(', ')}; server CPU (cores, median): ${[...results.keys()]
      .map((name) => `${name} ${(medians[name]?.serverCores ?? Number.NaN).toFixed(2)}`)
      .join(', ')}; tickets service CPU (cores, median): ${[...results.keys()]
      .map(
        (name) =>
          `${name} ${medianOf(name, (r) => r.otherCores?.[SERVICE] ?? Number.NaN).toFixed(2)}`,
      )
      .join(', ')}`,
    ...profileNotes,
  ];
  return {
    scenario: 'tenant-services',
    title: '7. Tenant services',
    figures,
    data: {
      tenant,
      connections: CONNECTIONS,
      queries: Object.fromEntries(TENANT_SERVICES_SIZES.map((n) => [`N=${n}`, ticketsQuery(n)])),
      answers,
      oneQueryAtATime: probes,
      underLoad,
      medians,
      profile,
      rounds: Object.fromEntries(results),
    },
    notes,
  };
}
