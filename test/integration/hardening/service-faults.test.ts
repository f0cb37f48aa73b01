import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  spawnTicketsService,
  type SpawnedTicketsService,
} from '../../../services/tickets/spawn.js';
import { buildGatewaySchema } from '../../../src/graphql/schema.js';
import { demoTypeDefs } from '../../support/demo.js';
import { startTestGateway, type GraphQLAnswer, type TestGateway } from '../../support/gateway.js';
import { createTestSigner } from '../../support/tokens.js';
import { createPostgresFixture, type PostgresFixture } from '../gateway/postgres-fixture.js';
import { type ProxyMode, startTcpProxy, type TcpProxy } from './tcp-proxy.js';

// Issue 11, "Done when" 3: tenant-service faults through real TCP proxies and the reference
// tickets service's own /_faults. The faulty tenant's tickets live behind a proxy in front of
// one tickets process; the healthy tenant's on another process (the service's default URL).
// Every fault answers 200 with the customers and `tickets` null-ed with its code on that path;
// the healthy tenant is served meanwhile; the (service, origin) breaker opens and recovers.

/** The service's own deadline; the proxy's and the service's slowness go well past it. */
const SERVICE_TIMEOUT_MS = 600;
const SLOW_MS = 2_500;
/** Answers above this are refused; the oversized fault sends 8 times as much. */
const MAX_RESPONSE_BYTES = 256 * 1024;

const QUERY = '{ customers(first: 10) { edges { node { id name tickets { id status } } } } }';

interface Node {
  id: string;
  name: string;
  tickets: { id: string; status: string }[] | null;
}

function nodesOf(answer: GraphQLAnswer): Node[] {
  const data = answer.body.data as { customers: { edges: { node: Node }[] } } | null | undefined;
  return data?.customers.edges.map((e) => e.node) ?? [];
}

/** The tickets service's JWKS is the gateway's, which exists only once the gateway listens. */
interface JwksRelay {
  url: string;
  target: string | undefined;
  close(): Promise<void>;
}

async function startJwksRelay(): Promise<JwksRelay> {
  const relay: JwksRelay = { url: '', target: undefined, close: () => Promise.resolve() };
  const server: Server = createServer((req, res) => {
    if (relay.target === undefined) {
      res.writeHead(503).end();
      return;
    }
    fetch(`${relay.target}/.well-known/jwks.json`).then(
      async (answer) => {
        res
          .writeHead(answer.status, { 'content-type': 'application/json' })
          .end(await answer.text());
      },
      () => res.writeHead(502).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  relay.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  relay.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return relay;
}

let fixture: PostgresFixture;
let relay: JwksRelay;
let healthyService: SpawnedTicketsService;
let faultyService: SpawnedTicketsService;
let proxy: TcpProxy;
let gateway: TestGateway;
let tokens: { healthy: string; faulty: string; neighbour: string };

async function setFault(body: Record<string, unknown>): Promise<void> {
  const answer = await fetch(`${faultyService.url}/_faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(answer.status).toBe(200);
}

async function faultyRequests(): Promise<number> {
  const stats = (await (await fetch(`${faultyService.url}/_stats`)).json()) as {
    requests: number;
  };
  return stats.requests;
}

beforeAll(async () => {
  fixture = await createPostgresFixture({ poolMax: 6, seed: { size: 20 } });
  relay = await startJwksRelay();
  [healthyService, faultyService] = await Promise.all([
    spawnTicketsService({ jwks: relay.url, audience: 'tickets', issuer: 'atrium' }),
    spawnTicketsService({ jwks: relay.url, audience: 'tickets', issuer: 'atrium' }),
  ]);
  proxy = await startTcpProxy({ host: '127.0.0.1', port: faultyService.port });
  const proxied = `http://127.0.0.1:${proxy.port}`;
  const { schema: healthy, row: faulty, database: neighbour } = fixture.tenants;
  const signer = await createTestSigner();
  gateway = await startTestGateway({
    signer,
    schema: buildGatewaySchema({ typeDefs: demoTypeDefs() }),
    dataSource: fixture.dataSource,
    services: {
      tickets: {
        url: healthyService.url,
        timeoutMs: SERVICE_TIMEOUT_MS,
        maxResponseBytes: MAX_RESPONSE_BYTES,
        maxAttempts: 2,
      },
    },
    identity: { issuer: 'atrium' },
    tenants: [
      { id: healthy.id, data: healthy.data, plan: 'pro' },
      // Two tenants on the same faulty deployment (origin): its shared breaker is theirs.
      {
        id: faulty.id,
        displayName: 'Faulty',
        data: faulty.data,
        plan: 'pro',
        services: { tickets: { url: proxied } },
      },
      {
        id: neighbour.id,
        displayName: 'Neighbour',
        data: neighbour.data,
        plan: 'pro',
        services: { tickets: { url: proxied } },
      },
    ],
  });
  relay.target = gateway.url;
  tokens = {
    healthy: await signer.sign({ tenant: healthy.id }, { expiresIn: '1h' }),
    faulty: await signer.sign({ tenant: faulty.id }, { expiresIn: '1h' }),
    neighbour: await signer.sign({ tenant: neighbour.id }, { expiresIn: '1h' }),
  };
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  await proxy?.close();
  await Promise.all([healthyService?.stop(), faultyService?.stop()]);
  await relay?.close();
  await fixture?.cleanup();
});

interface Timed {
  ms: number;
  answer: GraphQLAnswer;
}

async function timed(token: string, query = QUERY): Promise<Timed> {
  const started = performance.now();
  const answer = await gateway.query(query, { token });
  return { ms: performance.now() - started, answer };
}

async function load(token: string, count: number, concurrency: number): Promise<Timed[]> {
  const results: Timed[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next += 1;
        results.push(await timed(token));
      }
    }),
  );
  return results;
}

function p50(results: readonly Timed[]): number {
  const sorted = results.map((r) => r.ms).sort((a, b) => a - b);
  return Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0);
}

/** A clean answer: every customer with its ticket list, no error. */
function expectClean(answer: GraphQLAnswer, label: string): void {
  expect(answer.status, label).toBe(200);
  expect(answer.body.errors, label).toBeUndefined();
  const nodes = nodesOf(answer);
  expect(nodes, label).toHaveLength(10);
  for (const node of nodes) expect(Array.isArray(node.tickets), label).toBe(true);
}

/**
 * A faulty answer: 200, all ten customers with their names, `tickets` null, and one error per
 * customer, on that customer's `tickets` path only, coded as allowed. Returns the codes.
 */
function expectPartial(answer: GraphQLAnswer, allowed: readonly string[], label: string) {
  expect(answer.status, label).toBe(200);
  const nodes = nodesOf(answer);
  expect(nodes, label).toHaveLength(10);
  for (const node of nodes) {
    expect(node.name, label).toEqual(expect.any(String));
    expect(node.tickets, label).toBeNull();
  }
  const errors = answer.body.errors ?? [];
  expect(errors, label).toHaveLength(10);
  const paths = errors.map((e) => JSON.stringify(e.path));
  expect(new Set(paths), label).toEqual(
    new Set(nodes.map((_n, i) => JSON.stringify(['customers', 'edges', i, 'node', 'tickets']))),
  );
  for (const error of errors) {
    expect(allowed, `${label}: ${error.message}`).toContain(String(error.extensions?.code));
  }
  return errors.map((e) => ({ code: String(e.extensions?.code), message: e.message }));
}

/** Ends every fault and waits until the faulty origin's breakers let calls through again. */
async function recover(): Promise<number> {
  await proxy.setMode({ kind: 'pass' });
  await setFault({ mode: 'none' });
  const started = performance.now();
  for (let round = 0; ; round += 1) {
    const [faulty, neighbour] = await Promise.all([timed(tokens.faulty), timed(tokens.neighbour)]);
    if (!faulty.answer.body.errors && !neighbour.answer.body.errors) {
      return Math.round(performance.now() - started);
    }
    if (round > 120) {
      throw new Error(`no recovery: ${JSON.stringify(faulty.answer.body.errors?.[0])}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface Scenario {
  name: string;
  start: () => Promise<void>;
  /** The code of a failed call while the circuit is still closed. */
  code: 'BACKEND_TIMEOUT' | 'BACKEND_UNAVAILABLE';
}

const viaProxy = (mode: ProxyMode) => () => proxy.setMode(mode);
const viaService = (fault: Record<string, unknown>) => () => setFault(fault);

const scenarios: Scenario[] = [
  {
    name: `proxy slow (${SLOW_MS} ms per chunk)`,
    start: viaProxy({ kind: 'slow', delayMs: SLOW_MS }),
    code: 'BACKEND_TIMEOUT',
  },
  {
    name: `service slow (${SLOW_MS} ms)`,
    start: viaService({ mode: 'slow', delayMs: SLOW_MS }),
    code: 'BACKEND_TIMEOUT',
  },
  {
    name: 'proxy dark (accepts, never answers)',
    start: viaProxy({ kind: 'blackhole' }),
    code: 'BACKEND_TIMEOUT',
  },
  { name: 'proxy resets', start: viaProxy({ kind: 'reset' }), code: 'BACKEND_UNAVAILABLE' },
  { name: 'proxy down (refused)', start: viaProxy({ kind: 'down' }), code: 'BACKEND_UNAVAILABLE' },
  {
    name: 'service answers 500',
    start: viaService({ mode: 'status500' }),
    code: 'BACKEND_UNAVAILABLE',
  },
  {
    name: `service oversized (${(8 * MAX_RESPONSE_BYTES) / 1024} KiB > ${MAX_RESPONSE_BYTES / 1024} KiB)`,
    start: viaService({ mode: 'oversized', bytes: 8 * MAX_RESPONSE_BYTES }),
    code: 'BACKEND_UNAVAILABLE',
  },
  {
    name: 'service malformed JSON',
    start: viaService({ mode: 'malformed' }),
    code: 'BACKEND_UNAVAILABLE',
  },
];

describe('tenant-service faults', () => {
  it('serves all three tenants cleanly before any fault', async () => {
    await recover();
    for (const token of Object.values(tokens)) expectClean((await timed(token)).answer, 'baseline');
  });

  it('answers each fault with partial data coded on `tickets` only, and leaves the healthy tenant alone', async () => {
    const report: Record<string, unknown>[] = [];
    for (const scenario of scenarios) {
      const recoveredMs = await recover();
      const baseline = await load(tokens.healthy, 20, 4);
      await scenario.start();
      // The first call sees the fault itself, not a breaker.
      const first = await timed(tokens.faulty);
      const firstErrors = expectPartial(first.answer, [scenario.code], scenario.name);
      expect(firstErrors[0]?.message, scenario.name).not.toMatch(/circuit open/);
      // Then the faulty tenant under load, beside the healthy one.
      const [faulty, healthy] = await Promise.all([
        load(tokens.faulty, 12, 4),
        load(tokens.healthy, 30, 4),
      ]);
      const codes: Record<string, number> = {};
      for (const { answer } of [first, ...faulty]) {
        const errors = expectPartial(answer, [scenario.code, 'BACKEND_UNAVAILABLE'], scenario.name);
        // One batch, one failure: the ten customers' errors are the same.
        expect(new Set(errors.map((e) => e.message)).size, scenario.name).toBe(1);
        const { code, message } = errors[0] ?? { code: '?', message: '' };
        const key = /circuit open/.test(message) ? `${code} (circuit open)` : code;
        codes[key] = (codes[key] ?? 0) + 1;
      }
      for (const { answer } of healthy) expectClean(answer, `${scenario.name}: healthy tenant`);
      report.push({
        scenario: scenario.name,
        faultyAnswersByCode: JSON.stringify(codes),
        firstFaultyMs: Math.round(first.ms),
        faultyP50Ms: p50(faulty),
        faultyMaxMs: Math.round(Math.max(...faulty.map((r) => r.ms))),
        healthyBaselineP50Ms: p50(baseline),
        healthyP50Ms: p50(healthy),
        recoveredBeforeMs: recoveredMs,
      });
    }
    console.table(report);
    await recover();
  }, 300_000);

  it('opens the (service, origin) breaker after repeated failures, fails fast without calling, and recovers through a half-open probe', async () => {
    await recover();
    await setFault({ mode: 'status500' });
    // Two tenants fail on the same origin: enough to make it the backend's failure, not theirs.
    let opened: { tenant: string; message: string; after: number } | undefined;
    const beforeFailures = await faultyRequests();
    for (let i = 0; i < 40 && opened === undefined; i += 1) {
      const tenant = i % 2 === 0 ? 'faulty' : 'neighbour';
      const { answer } = await timed(tokens[tenant]);
      const errors = expectPartial(answer, ['BACKEND_UNAVAILABLE'], `failure ${i}`);
      const open = errors.find((e) => /circuit open/.test(e.message));
      if (open) opened = { tenant, message: open.message, after: i + 1 };
    }
    expect(opened, 'the circuit opened').toBeDefined();
    const failedCalls = (await faultyRequests()) - beforeFailures;

    // Open: both tenants of this origin fail fast, and nothing reaches the service.
    const beforeOpen = await faultyRequests();
    const whileOpen = [
      ...(await load(tokens.faulty, 6, 2)),
      ...(await load(tokens.neighbour, 6, 2)),
    ];
    const healthyWhileOpen = await load(tokens.healthy, 12, 2);
    const openMessages = new Set<string>();
    for (const { answer } of whileOpen) {
      for (const error of expectPartial(answer, ['BACKEND_UNAVAILABLE'], 'circuit open')) {
        expect(error.message).toMatch(/circuit open/);
        openMessages.add(error.message);
      }
    }
    const callsWhileOpen = (await faultyRequests()) - beforeOpen;
    expect(callsWhileOpen, 'no call while the circuit is open').toBe(0);
    for (const { answer } of healthyWhileOpen) expectClean(answer, 'healthy, circuit open');
    expect([...openMessages]).toContain('Service tickets unavailable (circuit open)');

    // The fault ends; after the open period a probe goes through and closes the circuit.
    await setFault({ mode: 'none' });
    const started = performance.now();
    let probes = 0;
    for (;;) {
      probes += 1;
      const { answer } = await timed(tokens.faulty);
      if (!answer.body.errors) break;
      expectPartial(answer, ['BACKEND_UNAVAILABLE'], 'half-open');
      if (probes > 200) throw new Error('the circuit never closed');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const recoveredMs = Math.round(performance.now() - started);
    const neighbour = await timed(tokens.neighbour);
    if (neighbour.answer.body.errors) {
      // The neighbour's own breaker may still be in its open period: it recovers the same way.
      await recover();
    }
    expectClean((await timed(tokens.neighbour)).answer, 'neighbour after recovery');
    console.table([
      {
        openedAfterRequests: opened?.after,
        openedOn: opened?.tenant,
        upstreamCallsBeforeOpen: failedCalls,
        openMessages: [...openMessages].join(' | '),
        fastFailP50Ms: p50(whileOpen),
        healthyP50MsWhileOpen: p50(healthyWhileOpen),
        upstreamCallsWhileOpen: callsWhileOpen,
        recoveredAfterMs: recoveredMs,
        requestsUntilClosed: probes,
      },
    ]);
  }, 120_000);
});
