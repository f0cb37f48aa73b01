/**
 * The realm's HTTP server: GraphQL over HTTP at /graphql (graphql-http's handler on node:http),
 * behind the gateway's signed identity, plus /healthz and the test routes /_stats,
 * /_stats/reset and /_requests.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type DocumentNode, Kind } from 'graphql';
import { createHandler } from 'graphql-http/lib/use/http';
import { type Caller, createIdentityVerifier, RealmError } from './identity.js';
import { createRealmSchema, type RealmContext } from './realm-schema.js';
import { listenDrainable } from '../../lifecycle.js';

/** How long `close()` waits for in-flight requests before cutting connections. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
/** Requests kept for /_requests. */
export const MAX_LOGGED_REQUESTS = 10_000;

export interface RealmServerOptions {
  host: string;
  /** 0 lets the OS pick a free port. */
  port: number;
  /** The gateway's JWKS URL. */
  jwks: URL;
  /** The `aud` tokens must carry (default in main.ts: `realm`). */
  audience: string;
  /** The `iss` tokens must carry; unchecked when absent. */
  issuer?: string | undefined;
  drainTimeoutMs?: number;
  /** Diagnostics (internal errors). */
  log: (message: string) => void;
}

/** One GraphQL request that passed identity. */
export interface LoggedRequest {
  tenant: string;
  subject: string;
  issuer: string | undefined;
  audience: string;
  /** Root fields of the operation (`__schema` for an introspection). */
  rootFields: string[];
  /** Ids asked through `_customers` in this request. */
  customerIds: string[];
  requestId?: string;
  traceparent?: string;
}

export interface RealmStats {
  /** GraphQL requests that passed identity. */
  requests: number;
  byTenant: Record<string, number>;
  /** Requests per root field (one request may count under several). */
  byRootField: Record<string, number>;
  /** Refused requests by status. */
  refused: Record<string, number>;
}

export interface RunningRealmServer {
  url: string;
  port: number;
  /** Stops accepting, drains in-flight requests (cut after the drain timeout). Idempotent. */
  close(): Promise<void>;
}

function rootFieldsOf(document: DocumentNode, operationName: string | null | undefined): string[] {
  const operation = document.definitions.find(
    (d) =>
      d.kind === Kind.OPERATION_DEFINITION &&
      (operationName == null || d.name?.value === operationName),
  );
  if (operation?.kind !== Kind.OPERATION_DEFINITION) return [];
  return operation.selectionSet.selections.flatMap((s) =>
    s.kind === Kind.FIELD ? [s.name.value] : [],
  );
}

function json(res: ServerResponse, status: number, body: unknown, extra = {}): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      ...extra,
    })
    .end(text);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export async function startRealmServer(options: RealmServerOptions): Promise<RunningRealmServer> {
  const verify = createIdentityVerifier(options);
  const schema = createRealmSchema();
  const stats: RealmStats = { requests: 0, byTenant: {}, byRootField: {}, refused: {} };
  let logged: LoggedRequest[] = [];
  const entries = new WeakMap<IncomingMessage, { caller: Caller; entry: LoggedRequest }>();

  const graphql = createHandler<RealmContext>({
    schema,
    context: (req) => {
      const known = entries.get(req.raw)!;
      return {
        tenant: known.caller.tenant,
        onCustomers: (ids) => known.entry.customerIds.push(...ids),
      };
    },
    onOperation: (req, args) => {
      const known = entries.get(req.raw);
      if (!known) return;
      known.entry.rootFields = rootFieldsOf(args.document, args.operationName);
      for (const field of known.entry.rootFields) {
        stats.byRootField[field] = (stats.byRootField[field] ?? 0) + 1;
      }
    },
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://realm').pathname;
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/_stats' && req.method === 'GET') return json(res, 200, stats);
    if (path === '/_requests' && req.method === 'GET') return json(res, 200, logged);
    if (path === '/_stats/reset' && req.method === 'POST') {
      Object.assign(stats, { requests: 0, byTenant: {}, byRootField: {}, refused: {} });
      logged = [];
      return json(res, 200, { ok: true });
    }
    if (path !== '/graphql') return json(res, 404, { error: 'not found', code: 'NOT_FOUND' });
    let caller: Caller;
    try {
      caller = await verify(req.headers);
    } catch (err) {
      const refusal =
        err instanceof RealmError ? err : new RealmError(500, 'INTERNAL', 'internal error');
      stats.refused[refusal.status] = (stats.refused[refusal.status] ?? 0) + 1;
      if (!(err instanceof RealmError)) options.log(`error: ${String(err)}`);
      return json(res, refusal.status, { error: refusal.message, code: refusal.code });
    }
    stats.requests += 1;
    stats.byTenant[caller.tenant] = (stats.byTenant[caller.tenant] ?? 0) + 1;
    const entry: LoggedRequest = {
      tenant: caller.tenant,
      subject: caller.subject,
      issuer: caller.issuer,
      audience: caller.audience,
      rootFields: [],
      customerIds: [],
    };
    const requestId = header(req, 'x-request-id');
    if (requestId !== undefined) entry.requestId = requestId;
    const traceparent = header(req, 'traceparent');
    if (traceparent !== undefined) entry.traceparent = traceparent;
    logged.push(entry);
    if (logged.length > MAX_LOGGED_REQUESTS) logged.shift();
    entries.set(req, { caller, entry });
    await graphql(req, res);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.log(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      if (!res.headersSent) json(res, 500, { error: 'internal error', code: 'INTERNAL' });
      else res.destroy();
    });
  });
  const listening = await listenDrainable(
    server,
    options.host,
    options.port,
    options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
  );
  return {
    url: listening.url,
    port: listening.port,
    close: listening.close,
  };
}
