import type { IncomingMessage, ServerResponse } from 'node:http';
import { TicketsError } from './errors.js';
import { type Fault, type Faults, parseFault } from './faults.js';
import { type Caller, ForbiddenKeyError, type IdentityVerifier } from './identity.js';
import type { LoggedRequest, RequestLog } from './request-log.js';
import { TICKET_STATUSES, type TicketStatus, ticketsOfMany } from './tickets.js';

/** Most customer ids one `GET /tickets` may ask for. */
export const MAX_BATCH_IDS = 1000;
/** Largest `POST /_faults` body. */
const MAX_CONTROL_BODY_BYTES = 64 * 1024;
const OVERSIZED_CHUNK_BYTES = 64 * 1024;

/** Options of {@link createTicketsHandler}. */
export interface TicketsHandlerOptions {
  verify: IdentityVerifier;
  log: RequestLog;
  faults: Faults;
  /** Called with errors that are bugs (answered 500). */
  onInternalError: (err: unknown) => void;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const BATCH_ROUTE = '/tickets';
const CUSTOMER_ROUTE = '/customers/{id}/tickets';
const CUSTOMER_PATH = /^\/customers\/([^/]+)\/tickets$/;

/** What a data request asks for. */
interface TicketsQuery {
  customerIds: string[];
  statuses?: ReadonlySet<TicketStatus>;
}

/**
 * The service's HTTP API. Data routes (`/tickets`, `/customers/{id}/tickets`) need the
 * gateway's token (and the tenant's API key where keys are configured); `/healthz` and the
 * `/_…` control routes do not. Every error is `{"error": "...", "code": "..."}`.
 */
export function createTicketsHandler(options: TicketsHandlerOptions): Handler {
  const { verify, log, faults } = options;

  const data = async (
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    route: string,
    query: () => TicketsQuery,
  ): Promise<void> => {
    let caller: Caller;
    try {
      caller = await verify(req.headers);
    } catch (err) {
      if (err instanceof ForbiddenKeyError) {
        log.record(route, err.status, entry(req, url, err.caller, []));
      } else if (err instanceof TicketsError) {
        log.record(route, err.status);
      }
      throw err;
    }
    let asked: TicketsQuery;
    try {
      asked = query();
    } catch (err) {
      if (err instanceof TicketsError) log.record(route, err.status, entry(req, url, caller, []));
      throw err;
    }
    const fault = faults.take();
    const status = fault.mode === 'status500' ? 500 : 200;
    log.record(route, status, entry(req, url, caller, asked.customerIds));
    const body = { items: ticketsOfMany(caller.tenant, asked.customerIds, asked.statuses) };
    await answer(res, body, fault);
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://tickets.invalid');
    const path = url.pathname;
    const allow = (allowed: string): void => {
      if (method !== allowed) {
        throw new TicketsError(
          405,
          'METHOD_NOT_ALLOWED',
          `method ${method} is not allowed on ${path}; use ${allowed}`,
          { allow: allowed },
        );
      }
    };

    if (path === BATCH_ROUTE) {
      allow('GET');
      return data(req, res, url, BATCH_ROUTE, () => batchQuery(url.searchParams));
    }
    const customer = CUSTOMER_PATH.exec(path);
    if (customer !== null) {
      allow('GET');
      return data(req, res, url, CUSTOMER_ROUTE, () => customerQuery(customer[1]!, url));
    }
    switch (path) {
      case '/healthz':
        allow('GET');
        return sendJson(res, 200, { status: 'ok' });
      case '/_stats':
        allow('GET');
        return sendJson(res, 200, log.stats());
      case '/_stats/reset':
        allow('POST');
        log.reset();
        return sendJson(res, 200, log.stats());
      case '/_requests':
        allow('GET');
        return sendJson(res, 200, log.requests());
      case '/_faults':
        if (method === 'GET') return sendJson(res, 200, faults.current());
        allow('POST');
        faults.set(parseFault(await readJson(req)));
        return sendJson(res, 200, faults.current());
      default:
        throw new TicketsError(404, 'NOT_FOUND', `no route ${method} ${path}`);
    }
  };

  return (req, res) => {
    route(req, res).catch((err: unknown) => {
      if (!(err instanceof TicketsError)) options.onInternalError(err);
      const known = err instanceof TicketsError ? err : undefined;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (known !== undefined) {
        for (const [name, value] of Object.entries(known.headers)) res.setHeader(name, value);
      }
      sendJson(res, known?.status ?? 500, {
        error: known?.message ?? 'internal error',
        code: known?.code ?? 'INTERNAL',
      });
    });
  };
}

function entry(
  req: IncomingMessage,
  url: URL,
  caller: Caller,
  customerIds: string[],
): Omit<LoggedRequest, 'status'> {
  const query: Record<string, string> = {};
  for (const name of new Set(url.searchParams.keys())) {
    query[name] = url.searchParams.getAll(name).join(',');
  }
  const logged: Omit<LoggedRequest, 'status'> = {
    tenant: caller.tenant,
    subject: caller.subject,
    path: url.pathname,
    query,
    customerIds,
  };
  if (caller.apiKey !== undefined) logged.apiKey = caller.apiKey;
  const traceparent = header(req, 'traceparent');
  if (traceparent !== undefined) logged.traceparent = traceparent;
  const requestId = header(req, 'x-request-id');
  if (requestId !== undefined) logged.requestId = requestId;
  return logged;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function bad(message: string): TicketsError {
  return new TicketsError(400, 'BAD_REQUEST', message);
}

function onlyParams(params: URLSearchParams, known: readonly string[]): void {
  const unknown = [...new Set(params.keys())].filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    throw bad(`unknown query parameter(s) ${unknown.join(', ')}; known: ${known.join(', ')}`);
  }
}

function statuses(params: URLSearchParams): ReadonlySet<TicketStatus> | undefined {
  const values = params.getAll('status').flatMap((v) => v.split(','));
  if (values.length === 0) return undefined;
  for (const value of values) {
    if (!(TICKET_STATUSES as readonly string[]).includes(value)) {
      throw bad(`status must be one of ${TICKET_STATUSES.join(', ')}, got "${value}"`);
    }
  }
  return new Set(values as TicketStatus[]);
}

/** `?customerId=a,b,c` (or repeated `customerId=`) `[&status=OPEN[,PENDING]]`. */
function batchQuery(params: URLSearchParams): TicketsQuery {
  onlyParams(params, ['customerId', 'status']);
  const raw = params.getAll('customerId').flatMap((v) => v.split(','));
  if (raw.length === 0) {
    throw bad('missing customerId; send ?customerId=<id>[,<id>...]');
  }
  if (raw.some((id) => id === '')) throw bad('customerId contains an empty id');
  const customerIds = [...new Set(raw)];
  if (customerIds.length > MAX_BATCH_IDS) {
    throw bad(`at most ${MAX_BATCH_IDS} customer ids per request, got ${customerIds.length}`);
  }
  return { customerIds, statuses: statuses(params) };
}

function customerQuery(segment: string, url: URL): TicketsQuery {
  onlyParams(url.searchParams, ['status']);
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    throw bad(`customer id "${segment}" is not valid percent-encoding`);
  }
  return { customerIds: [id], statuses: statuses(url.searchParams) };
}

/** The normal answer, or the fault in force instead of it. */
async function answer(
  res: ServerResponse,
  body: { items: unknown[] },
  fault: Fault,
): Promise<void> {
  switch (fault.mode) {
    case 'none':
      return sendJson(res, 200, body);
    case 'status500':
      return sendJson(res, 500, { error: 'injected fault: status500', code: 'INJECTED_FAULT' });
    case 'malformed': {
      // A complete HTTP message (right Content-Length) whose JSON stops half way.
      const text = JSON.stringify(body);
      return sendText(res, 200, text.slice(0, Math.max(6, Math.floor(text.length / 2))));
    }
    case 'oversized':
      return sendOversized(res, body, fault.bytes);
    case 'slow': {
      const delivered = await delay(res, fault.delayMs);
      if (delivered) sendJson(res, 200, body);
      return;
    }
    default: {
      const never: never = fault.mode;
      throw new Error(`unhandled fault mode ${String(never)}`);
    }
  }
}

/** Waits `ms`; resolves false early when the client goes away (nothing left to answer). */
function delay(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(true);
    }, ms);
    res.once('close', onClose);
  });
}

/**
 * Valid JSON of exactly `bytes` bytes (or the real body, if that is longer): the items plus a
 * padding string, streamed in chunks so a 1 GB body costs no 1 GB of memory.
 */
async function sendOversized(
  res: ServerResponse,
  body: { items: unknown[] },
  bytes: number,
): Promise<void> {
  const head = Buffer.from(`{"items":${JSON.stringify(body.items)},"padding":"`);
  const tail = Buffer.from('"}');
  let padding = Math.max(0, bytes - head.length - tail.length);
  res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(head.length + padding + tail.length),
  });
  const chunk = Buffer.alloc(Math.min(OVERSIZED_CHUNK_BYTES, Math.max(1, padding)), 'x');
  const write = async (buffer: Buffer): Promise<boolean> => {
    if (res.destroyed) return false;
    if (res.write(buffer)) return true;
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => () => {
        res.off('drain', onDrain);
        res.off('close', onClose);
        resolve(ok);
      };
      const onDrain = done(true);
      const onClose = done(false);
      res.once('drain', onDrain);
      res.once('close', onClose);
    });
  };
  if (!(await write(head))) return;
  while (padding > 0) {
    const part = padding >= chunk.length ? chunk : chunk.subarray(0, padding);
    if (!(await write(part))) return;
    padding -= part.length;
  }
  res.end(tail);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendText(res, status, JSON.stringify(body));
}

function sendText(res: ServerResponse, status: number, text: string): void {
  const buffer = Buffer.from(text);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(buffer.length),
  });
  res.end(buffer);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_CONTROL_BODY_BYTES) {
      throw bad(`request body exceeds ${MAX_CONTROL_BODY_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw bad(`request body is not valid JSON: ${(err as Error).message}`);
  }
}
