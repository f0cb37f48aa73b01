/**
 * Soak: holds a fixed request rate against a real gateway process (demo mode: PGlite, memory
 * store, the reference model server) for N minutes, and records errors by code, latency per
 * minute and the gateway's memory over time.
 *
 *   npm run bench:soak -- --minutes 30 --rate 50 [--warmup 5] [--sample 30] [--out file.json]
 *
 * Memory is read from inside the gateway process through an IPC channel answered by a tiny
 * preloaded module (`--import data:…`, nothing added to src/): on each sample it runs a full GC
 * (`--expose-gc`) and replies with `process.memoryUsage()`. A forced GC makes `heapUsed` the
 * live heap, so a leak of well under 1 MB per 10 minutes is visible instead of drowning in the
 * tens of MB that the heap saw-tooths between collections; `ps -o rss` alone could not tell a
 * leak from allocator slack. RSS is recorded too (after the same GC).
 *
 * Pass criteria (exit code 1 otherwise): no error other than RATE_LIMITED, and heap growth
 * after warm-up below 1 MB per 10 minutes (least-squares slope over the samples).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { loadOrCreateDevKeys, mintDevToken } from '../src/auth/dev-keys.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MB = 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '5' },
    sample: { type: 'string', default: '30' },
    out: { type: 'string' },
  },
});
const minutes = Number(args.minutes);
const rate = Number(args.rate);
const warmupMinutes = Math.min(Number(args.warmup), minutes / 2);
const sampleSeconds = Number(args.sample);
for (const [name, value] of Object.entries({ minutes, rate, warmupMinutes, sampleSeconds })) {
  if (!Number.isFinite(value) || value <= 0) {
    throw new TypeError(`--${name} must be a positive number; got ${String(value)}`);
  }
}

/** Runs in the gateway process: answers 'memory' with the usage after a full collection. */
const PROBE = `
process.on('message', (m) => {
  if (m !== 'memory') return;
  globalThis.gc?.();
  process.send?.({ kind: 'memory', ...process.memoryUsage() });
});
process.channel?.unref();
`;

interface MemorySample {
  t: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

interface MinuteStats {
  minute: number;
  sent: number;
  latencies: number[];
  outcomes: Record<string, number>;
}

async function startGateway(home: string) {
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      '--import',
      'tsx',
      '--import',
      `data:text/javascript,${encodeURIComponent(PROBE)}`,
      'src/main.ts',
    ],
    {
      cwd: ROOT,
      env: { ...process.env, ATRIUM_HOME: home, PORT: '0', NODE_ENV: '' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    },
  );
  const tail: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > 50) tail.shift();
  };
  createInterface({ input: child.stderr! }).on('line', keep);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gateway did not start in 120 s')), 120_000);
    child.once('exit', (code) =>
      reject(new Error(`gateway exited (${code}) before listening:\n${tail.join('\n')}`)),
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      keep(line);
      const match = /"url":"(http:\/\/[^"]+)".*Atrium is listening/.exec(line);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
  return { child, url, tail };
}

function sampleMemory(child: ChildProcess): Promise<Omit<MemorySample, 't'>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no memory answer in 10 s')), 10_000);
    const onMessage = (message: unknown) => {
      const m = message as { kind?: string } & Omit<MemorySample, 't'>;
      if (m.kind !== 'memory') return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve({
        rss: m.rss,
        heapUsed: m.heapUsed,
        heapTotal: m.heapTotal,
        external: m.external,
        arrayBuffers: m.arrayBuffers,
      });
    };
    child.on('message', onMessage);
    child.send('memory');
  });
}

/** Least-squares slope of y over t (ms), in bytes per 10 minutes. */
function slopePer10Min(points: { t: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.y - my);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 600_000;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

async function main(): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), 'atrium-soak-'));
  const keys = await loadOrCreateDevKeys(home);
  const ttl = Math.ceil(minutes * 60 + 600);
  const tokens = {
    acme: await Promise.all(
      ['ana', 'bo', 'cy', 'di'].map((sub) =>
        mintDevToken(keys, { tenant: 'acme', sub, scope: 'read predict', expiresIn: ttl }),
      ),
    ),
    globex: await Promise.all(
      ['eve', 'fay'].map((sub) =>
        mintDevToken(keys, { tenant: 'globex', sub, scope: 'read predict', expiresIn: ttl }),
      ),
    ),
  };
  const gateway = await startGateway(home);
  console.log(
    `gateway ${gateway.url} (pid ${gateway.child.pid}); ${rate} req/s for ${minutes} min`,
  );
  const pool = new Pool(gateway.url, { connections: 32, keepAliveTimeout: 4_000 });

  async function post(token: string, query: string, variables?: Record<string, unknown>) {
    const res = await pool.request({
      method: 'POST',
      path: '/graphql',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    return { status: res.statusCode, body: (await res.body.json()) as GraphQLBody };
  }
  async function get(token: string, query: string) {
    const res = await pool.request({
      method: 'GET',
      path: `/graphql?query=${encodeURIComponent(query)}`,
      headers: { authorization: `Bearer ${token}`, 'apollo-require-preflight': 'true' },
    });
    return { status: res.statusCode, body: (await res.body.json()) as GraphQLBody };
  }

  // Ids and cursors of real rows, so the mix pages through every customer and warms caches.
  const ids: Record<'acme' | 'globex', string[]> = { acme: [], globex: [] };
  const cursors: Record<'acme' | 'globex', (string | null)[]> = { acme: [null], globex: [null] };
  for (const tenant of ['acme', 'globex'] as const) {
    let after: string | null = null;
    for (;;) {
      const page = await post(
        tokens[tenant][0]!,
        'query($after: String) { customers(first: 50, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }',
        { after },
      );
      const data = page.body.data as {
        customers: {
          edges: { cursor: string; node: { id: string } }[];
          pageInfo: { hasNextPage: boolean; endCursor: string | null };
        };
      };
      for (const edge of data.customers.edges) {
        ids[tenant].push(edge.node.id);
        if (ids[tenant].length % 20 === 0) cursors[tenant].push(edge.cursor);
      }
      if (!data.customers.pageInfo.hasNextPage) break;
      after = data.customers.pageInfo.endCursor;
    }
  }

  let seq = 0;
  const pick = <T>(list: readonly T[]): T => list[seq % list.length]!;
  // Weighted mix (per 10): acme 8 (pro plan, 200/s), globex 2 (free plan, 20/s).
  const scenarios: (() => Promise<{ status: number; body: GraphQLBody }>)[] = [
    () =>
      post(
        pick(tokens.acme),
        'query($after: String) { customers(first: 20, after: $after) { edges { node { id name churnRisk { score label version } orders(first: 3) { id amount fraudRisk { score label } } } } pageInfo { hasNextPage } } }',
        { after: pick(cursors.acme) },
      ),
    () =>
      post(
        pick(tokens.acme),
        'query($id: ID!) { customer(id: $id) { id email segment churnRisk { score label } orders { id channel fraudRisk { score } } } }',
        { id: ids.acme[(seq * 7919) % ids.acme.length] },
      ),
    () =>
      post(
        pick(tokens.acme),
        '{ viewer { subject scopes tenant { id plan features } } models { name version ready } }',
      ),
    () => get(pick(tokens.acme), '{ customers(first: 5) { edges { node { id name } } } }'),
    () =>
      post(
        pick(tokens.acme),
        'query($after: String) { customers(first: 50, after: $after, segment: SMB) { edges { node { id lifetimeValue churnRisk { label } } } } }',
        { after: pick(cursors.acme) },
      ),
    () =>
      post(
        pick(tokens.acme),
        'query($id: ID!) { customer(id: $id) { orders(first: 5) { id amount customer { id name } fraudRisk { label cached } } } }',
        { id: ids.acme[(seq * 104729) % ids.acme.length] },
      ),
    () =>
      post(
        pick(tokens.acme),
        'query($after: String) { customers(first: 10, after: $after) { edges { cursor node { id churnRisk { score } } } } }',
        { after: pick(cursors.acme) },
      ),
    () => post(pick(tokens.acme), '{ viewer { tenant { id displayName } } }'),
    () =>
      post(
        pick(tokens.globex),
        'query($after: String) { customers(first: 10, after: $after) { edges { node { id name churnRisk { score label } } } } }',
        { after: pick(cursors.globex) },
      ),
    () =>
      post(
        pick(tokens.globex),
        'query($id: ID!) { customer(id: $id) { id name orders(first: 3) { id amount } churnRisk { label } } }',
        { id: ids.globex[(seq * 31) % ids.globex.length] },
      ),
  ];

  const outcomes: Record<string, number> = {};
  const perMinute: MinuteStats[] = [];
  const memory: MemorySample[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let sent = 0;
  let completed = 0;
  const started = Date.now();
  const durationMs = minutes * 60_000;

  const record = (minute: MinuteStats, key: string) => {
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    minute.outcomes[key] = (minute.outcomes[key] ?? 0) + 1;
  };

  function fire(): void {
    const minuteIndex = Math.floor((Date.now() - started) / 60_000);
    const minute = (perMinute[minuteIndex] ??= {
      minute: minuteIndex,
      sent: 0,
      latencies: [],
      outcomes: {},
    });
    const scenario = scenarios[seq % scenarios.length]!;
    seq += 1;
    sent += 1;
    minute.sent += 1;
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const t0 = performance.now();
    scenario()
      .then(
        ({ status, body }) => {
          minute.latencies.push(performance.now() - t0);
          if (status !== 200) {
            record(minute, `${status} ${body.errors?.[0]?.extensions?.code ?? 'NO_CODE'}`);
          } else if (body.errors && body.errors.length > 0) {
            const codes = new Set(body.errors.map((e) => e.extensions?.code ?? 'NO_CODE'));
            for (const code of codes) record(minute, `200 field ${code}`);
          } else {
            record(minute, '200 ok');
          }
        },
        (error: unknown) =>
          record(minute, `network ${(error as { code?: string }).code ?? 'ERROR'}`),
      )
      .finally(() => {
        inFlight -= 1;
        completed += 1;
      });
  }

  // Open loop: the schedule does not wait for answers, so a slow gateway shows up as latency
  // and in-flight growth instead of silently lowering the rate.
  const ticker = setInterval(() => {
    const due = Math.min(
      Math.floor(((Date.now() - started) / 1000) * rate),
      Math.floor((durationMs / 1000) * rate),
    );
    while (sent < due) fire();
  }, 10);

  const sampler = async () => {
    const usage = await sampleMemory(gateway.child);
    const sample = { t: Date.now() - started, ...usage };
    memory.push(sample);
    console.log(
      `${round(sample.t / 60_000)} min: sent ${sent}, in flight ${inFlight}, rss ${round(sample.rss / MB)} MB, heap ${round(sample.heapUsed / MB)} MB, outcomes ${JSON.stringify(outcomes)}`,
    );
  };
  await sampler();
  const samplerTimer = setInterval(
    () => void sampler().catch(() => undefined),
    sampleSeconds * 1000,
  );

  await new Promise((resolve) => setTimeout(resolve, durationMs));
  clearInterval(ticker);
  const waitUntil = Date.now() + 30_000;
  while (inFlight > 0 && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 50));
  clearInterval(samplerTimer);
  await sampler();

  await pool.close();
  const exitCode = await new Promise<number | null>((resolve) => {
    gateway.child.once('exit', (code) => resolve(code));
    gateway.child.kill('SIGTERM');
  });
  await rm(home, { recursive: true, force: true });

  const afterWarmup = memory.filter((m) => m.t >= warmupMinutes * 60_000);
  const slope = (key: 'rss' | 'heapUsed' | 'external') =>
    round(slopePer10Min(afterWarmup.map((m) => ({ t: m.t, y: m[key] }))) / MB, 3);
  const growth = {
    heapUsedMBPer10Min: slope('heapUsed'),
    rssMBPer10Min: slope('rss'),
    externalMBPer10Min: slope('external'),
    heapUsedFirstToLastMB: round(
      ((afterWarmup.at(-1)?.heapUsed ?? 0) - (afterWarmup[0]?.heapUsed ?? 0)) / MB,
      3,
    ),
    rssFirstToLastMB: round(((afterWarmup.at(-1)?.rss ?? 0) - (afterWarmup[0]?.rss ?? 0)) / MB, 3),
  };
  const errors = Object.fromEntries(Object.entries(outcomes).filter(([key]) => key !== '200 ok'));
  const badErrors = Object.entries(errors).filter(([key]) => !key.includes('RATE_LIMITED'));
  const pass =
    badErrors.length === 0 && growth.heapUsedMBPer10Min < 1 && completed === sent && exitCode === 0;
  const all = perMinute.flatMap((m) => m.latencies).sort((a, b) => a - b);
  const result = {
    startedAt: new Date(started).toISOString(),
    node: process.version,
    settings: { minutes, rate, warmupMinutes, sampleSeconds, mix: 'acme 80% / globex 20%' },
    requests: { sent, completed, maxInFlight },
    latencyMs: {
      p50: round(percentile(all, 50)),
      p95: round(percentile(all, 95)),
      p99: round(percentile(all, 99)),
      max: round(all.at(-1) ?? 0),
    },
    outcomes,
    errors,
    memoryGrowthAfterWarmup: growth,
    gatewayExitCode: exitCode,
    // The gateway's last output lines when it did not exit cleanly (for the investigation).
    ...(exitCode === 0 ? {} : { gatewayOutputTail: gateway.tail }),
    pass,
    perMinute: perMinute.map((m) => {
      const sorted = m.latencies.sort((a, b) => a - b);
      return {
        minute: m.minute,
        sent: m.sent,
        p50: round(percentile(sorted, 50)),
        p99: round(percentile(sorted, 99)),
        outcomes: m.outcomes,
      };
    }),
    memory: memory.map((m) => ({
      minute: round(m.t / 60_000, 3),
      rssMB: round(m.rss / MB, 3),
      heapUsedMB: round(m.heapUsed / MB, 3),
      heapTotalMB: round(m.heapTotal / MB, 3),
      externalMB: round(m.external / MB, 3),
    })),
  };
  const out =
    args.out ??
    join(
      ROOT,
      'bench/results',
      `soak-${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`,
    );
  await mkdir(join(out, '..'), { recursive: true });
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(
    JSON.stringify(
      { out, requests: result.requests, latencyMs: result.latencyMs, errors, growth, pass },
      null,
      2,
    ),
  );
  process.exitCode = pass ? 0 : 1;
}

interface GraphQLBody {
  data?: unknown;
  errors?: { message: string; extensions?: { code?: string } }[];
}

await main();
