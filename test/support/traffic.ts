import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TEST_AUDIENCE, TEST_ISSUER, type TestSigner } from './tokens.js';

/** One request of a run: when it was sent, how long it took and what came back. */
export interface Sample {
  /** Which target it went to (its label). */
  readonly target: string;
  /** `performance.now()` when it was sent. */
  readonly sentAt: number;
  readonly latencyMs: number;
  /** HTTP status; 0 when no answer came within the client's timeout (or the socket failed). */
  readonly status: number;
  readonly code?: string | undefined;
  readonly reason?: string | undefined;
  readonly retryAfter?: string | null | undefined;
  readonly rateLimit?: string | null | undefined;
}

export interface Target {
  readonly label: string;
  readonly url: string;
  readonly token: string;
}

export interface DriveOptions {
  /** Requests go to these round-robin. */
  targets: readonly Target[];
  /** Requests per second, all targets together, sent on a fixed schedule (open loop). */
  perSecond: number;
  durationMs: number;
  /** Client-side bound per request; longer counts as no answer (status 0). */
  timeoutMs?: number;
  query?: string;
}

/** Sends one GraphQL POST and records what came back. */
export async function send(target: Target, query: string, timeoutMs: number): Promise<Sample> {
  const sentAt = performance.now();
  try {
    const response = await fetch(`${target.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${target.token}` },
      body: JSON.stringify({ query }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await response.json()) as {
      errors?: { extensions?: { code?: string; reason?: string } }[];
    };
    const extensions = body.errors?.[0]?.extensions;
    return {
      target: target.label,
      sentAt,
      latencyMs: performance.now() - sentAt,
      status: response.status,
      code: extensions?.code,
      reason: extensions?.reason,
      retryAfter: response.headers.get('retry-after'),
      rateLimit: response.headers.get('ratelimit'),
    };
  } catch {
    return { target: target.label, sentAt, latencyMs: performance.now() - sentAt, status: 0 };
  }
}

/**
 * Open-loop load: request `i` leaves at `start + i / perSecond` whatever happened to earlier
 * ones, so a slow gateway cannot slow the offered rate down (and hide a limit that leaks).
 */
export async function drive(options: DriveOptions): Promise<Sample[]> {
  const { targets, perSecond, durationMs } = options;
  const query = options.query ?? '{ viewer { tenant { id } } }';
  const timeoutMs = options.timeoutMs ?? 5_000;
  const interval = 1_000 / perSecond;
  const total = Math.floor((durationMs / 1_000) * perSecond);
  const start = performance.now();
  const pending: Promise<Sample>[] = [];
  for (let i = 0; i < total; i += 1) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(send(targets[i % targets.length] as Target, query, timeoutMs));
  }
  return Promise.all(pending);
}

/** Counts samples by a key. */
export function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) {
    const k = key(item);
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
}

/**
 * A production config file (JSON) for spawned gateways: the test's ES256 public key, the
 * given tenants and overrides. Returns its path.
 */
export async function writeGatewayConfig(
  dir: string,
  name: string,
  signer: TestSigner,
  config: Record<string, unknown> & { tenants: unknown[] },
): Promise<string> {
  const path = join(dir, `${name}.json`);
  const file = {
    server: { host: '127.0.0.1', port: 0, drainTimeoutMs: 2_000 },
    auth: {
      issuer: TEST_ISSUER,
      audience: TEST_AUDIENCE,
      algorithms: ['ES256'],
      keys: [{ kid: signer.kid, alg: 'ES256', jwk: signer.publicJwk }],
    },
    ...config,
    // These gateways exercise limits, operator state and HTTP, not the data plane (whose
    // suites check bindings themselves): a tenant without the demo tables is served, logged.
    data: { bindingCheck: 'warn', ...(config.data as Record<string, unknown> | undefined) },
  };
  await writeFile(path, JSON.stringify(file, null, 2));
  return path;
}

/** Resolves once `GET /readyz` answers 200 (every dependency, the store included, is up). */
export async function untilReady(url: string, timeoutMs = 30_000): Promise<number> {
  const started = performance.now();
  for (;;) {
    const status = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5_000) }).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) return performance.now() - started;
    if (performance.now() - started > timeoutMs) {
      throw new Error(`${url}/readyz still answers ${status} after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
