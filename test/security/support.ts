import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { Pool } from 'undici';
import { createEmbeddedData } from '../../src/backends/data/pglite.js';
import type { SqlDataSource } from '../../src/backends/data/tenant-data-source.js';
import { DEFAULT_MIGRATIONS_DIR, DEMO_EXAMPLE_DIR } from '../../src/config/schema.js';
import { type ErrorCode, HTTP_STATUS } from '../../src/errors.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { startTestGateway, type TestGateway, type TestGatewayOptions } from '../support/gateway.js';
import { createTestSigner, type TestSigner } from '../support/tokens.js';

/** Codes a client may see; INTERNAL_SERVER_ERROR is excluded on purpose: it means a bug. */
const CLIENT_CODES = new Set<string>([
  ...(Object.keys(HTTP_STATUS) as ErrorCode[]).filter((c) => c !== 'INTERNAL_SERVER_ERROR'),
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
]);

/** One answer as the batteries judge it. */
export interface Outcome {
  status: number;
  /** `status code` (first error's code, or `data` when there is none). */
  key: string;
  /** Why the answer breaks the contract; undefined when it keeps it. */
  problem?: string | undefined;
}

interface ErrorBody {
  data?: unknown;
  errors?: { message?: unknown; extensions?: { code?: unknown } }[];
}

/**
 * The contract every answer must keep: no 5xx; a JSON body; 4xx → at least one error, each
 * with a client code; 200 → `data`, and any error a client code. INTERNAL_SERVER_ERROR anywhere
 * is a failure (a masked bug).
 */
export function judge(status: number, text: string, method = 'POST'): Outcome {
  if (status >= 500)
    return { status, key: `${status}`, problem: `status ${status}: ${text.slice(0, 300)}` };
  if (method === 'HEAD') return { status, key: `${status} HEAD` };
  let body: ErrorBody;
  try {
    body = JSON.parse(text) as ErrorBody;
  } catch {
    return { status, key: `${status} NOT_JSON`, problem: `not JSON: ${text.slice(0, 200)}` };
  }
  if (typeof body !== 'object' || body === null) {
    return { status, key: `${status} NOT_OBJECT`, problem: `not an object: ${text.slice(0, 200)}` };
  }
  const errors = Array.isArray(body.errors) ? body.errors : [];
  const codes = errors.map((e) => e.extensions?.code);
  const key = `${status} ${typeof codes[0] === 'string' ? codes[0] : 'data' in body ? 'data' : 'NONE'}`;
  const uncoded = codes.find((c) => typeof c !== 'string' || !CLIENT_CODES.has(c));
  if (codes.length > 0 && uncoded !== undefined) {
    return { status, key, problem: `error code ${String(uncoded)}: ${text.slice(0, 300)}` };
  }
  const protocolOnly =
    codes.length > 0 && codes.every((c) => String(c).startsWith('PERSISTED_QUERY_'));
  // APQ protocol errors are 200 without data by design (clients retry with the query).
  if (status === 200 && !('data' in body) && !protocolOnly) {
    return { status, key, problem: `200 without data: ${text.slice(0, 200)}` };
  }
  if (status !== 200 && errors.length === 0) {
    return { status, key, problem: `${status} without a coded error: ${text.slice(0, 200)}` };
  }
  return { status, key };
}

/** Outcome counts by `status code`, plus the contract breaches seen (first few kept). */
export class Tally {
  readonly counts = new Map<string, number>();
  readonly problems: string[] = [];
  total = 0;
  problemCount = 0;

  add(outcome: Outcome, label: string): void {
    this.total += 1;
    this.counts.set(outcome.key, (this.counts.get(outcome.key) ?? 0) + 1);
    if (outcome.problem !== undefined) {
      this.problemCount += 1;
      if (this.problems.length < 20) this.problems.push(`${label}: ${outcome.problem}`);
    }
  }

  histogram(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** Runs `tasks` with at most `concurrency` in flight. */
export async function runPool<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/**
 * Sends raw bytes on a fresh connection and resolves with the status and body of the answer
 * (or `undefined` status when the server closed without one). For requests undici refuses to
 * send: bad request lines, illegal header bytes, conflicting lengths.
 */
export function sendRaw(
  url: string,
  bytes: Buffer | string,
  timeoutMs = 5_000,
): Promise<{ status: number | undefined; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(
        parseRawResponse(Buffer.concat(chunks).toString('latin1')) ?? {
          status: undefined,
          body: '',
        },
      );
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      if (parseRawResponse(Buffer.concat(chunks).toString('latin1'), true)) finish();
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', finish);
    socket.on('connect', () => socket.write(bytes));
  });
}

/**
 * The first final (non-1xx) response in `text`, with its body de-chunked; with `complete`,
 * undefined until that body has fully arrived.
 */
function parseRawResponse(
  text: string,
  complete = false,
): { status: number; body: string } | undefined {
  let rest = text;
  for (;;) {
    const match = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(rest);
    const head = rest.indexOf('\r\n\r\n');
    if (!match || head < 0) return undefined;
    const status = Number(match[1]);
    const headers = rest.slice(0, head);
    rest = rest.slice(head + 4);
    if (status >= 100 && status < 200) continue;
    const decode = (raw: string) => Buffer.from(raw, 'latin1').toString('utf8');
    const length = /\r\ncontent-length: *(\d+)/i.exec(headers);
    if (length) {
      const n = Number(length[1]);
      if (complete && rest.length < n) return undefined;
      return { status, body: decode(rest.slice(0, n)) };
    }
    if (/\r\ntransfer-encoding: *chunked/i.test(headers)) {
      let body = '';
      let at = 0;
      for (;;) {
        const line = rest.indexOf('\r\n', at);
        if (line < 0) return complete ? undefined : { status, body: decode(body) };
        const size = parseInt(rest.slice(at, line), 16);
        if (!Number.isFinite(size)) return { status, body: decode(body) };
        if (size === 0) return { status, body: decode(body) };
        if (complete && rest.length < line + 2 + size) return undefined;
        body += rest.slice(line + 2, line + 2 + size);
        at = line + 2 + size + 2;
      }
    }
    return complete ? undefined : { status, body: decode(rest) };
  }
}

/** Model settings for tenants whose predictions go to the (test's) predictor. */
export const MODELS = {
  churn: {
    backend: 'local',
    model: 'churn',
    version: '2',
    thresholds: { low: 0, high: 0.5 },
    features: [
      'tenureMonths',
      'monthlySpend',
      'supportTickets',
      'daysSinceLastLogin',
      'lifetimeValue',
    ],
  },
  fraud: {
    backend: 'local',
    model: 'fraud',
    version: '2',
    thresholds: { legit: 0, block: 0.85 },
    features: ['amount', 'itemCount', 'isInternational', 'paymentAttempts', 'hourOfDay'],
  },
};

export interface SecurityGateway {
  gateway: TestGateway;
  signer: TestSigner;
  data: SqlDataSource;
  pool: Pool;
  tokens: { acme: string; globex: string; closed: string };
  stop(): Promise<void>;
}

/**
 * The real gateway over embedded PostgreSQL (PGlite) with three tenants: `acme` (pro plan,
 * fraud feature), `globex` (free plan), `closed` (pro plan without introspection).
 */
export async function startSecurityGateway(
  extra: Partial<TestGatewayOptions> & {
    /** Another gateway's data (its tenants' rows), shared instead of seeding a new PGlite. */
    data?: SqlDataSource;
  } = {},
): Promise<SecurityGateway> {
  const { data: shared, ...options } = extra;
  const signer = await createTestSigner();
  const tenants: TestGatewayOptions['tenants'] = [
    {
      id: 'acme',
      data: { strategy: 'schema' as const },
      plan: 'pro',
      features: ['fraud'],
      models: { churn: MODELS.churn, fraud: MODELS.fraud },
    },
    {
      id: 'globex',
      data: { strategy: 'row' as const },
      plan: 'free',
      models: { churn: MODELS.churn },
    },
    {
      id: 'closed',
      data: { strategy: 'schema' as const },
      plan: 'pro',
      limits: { introspection: false },
    },
  ];
  const data =
    shared ??
    (await createEmbeddedData({
      tenants: tenants.map((t) => ({ id: t.id, data: t.data })),
      migrations: DEFAULT_MIGRATIONS_DIR,
      seed: `${DEMO_EXAMPLE_DIR}seed.ts`,
      seedSize: 30,
    }));
  const gateway = await startTestGateway({ signer, tenants, dataSource: data, ...options });
  const pool = new Pool(gateway.url, { connections: 16, pipelining: 1 });
  const tokens = {
    acme: await signer.sign({ tenant: 'acme' }, { expiresIn: '1h' }),
    globex: await signer.sign({ tenant: 'globex' }, { expiresIn: '1h' }),
    closed: await signer.sign({ tenant: 'closed' }, { expiresIn: '1h' }),
  };
  return {
    gateway,
    signer,
    data,
    pool,
    tokens,
    async stop() {
      await pool.close();
      await gateway.stop();
      if (!shared) await data.close();
    },
  };
}

/** A request sent through the pool; resolves to the status and the body text. */
export async function request(
  pool: Pool,
  options: {
    method?: string;
    path?: string;
    headers?: Record<string, string | string[]>;
    body?: string | Buffer;
  },
): Promise<{ status: number; text: string }> {
  const response = await pool.request({
    method: (options.method ?? 'POST') as 'POST',
    path: options.path ?? '/graphql',
    headers: options.headers,
    body: options.body,
  });
  return { status: response.statusCode, text: await response.body.text() };
}

/** Deterministic PRNG (mulberry32): a failing case can be replayed from its seed. */
export function createRandom(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
    chance: (p: number) => next() < p,
  };
}

export type Random = ReturnType<typeof createRandom>;

/** Error-level log lines the gateway wrote (a masked 500 or an unexpected throw shows here). */
export function captureErrorLogs() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return { logger: createLogger({ level: 'error', destination }), lines };
}
