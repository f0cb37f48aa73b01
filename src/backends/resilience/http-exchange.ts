import { Pool, type Dispatcher } from 'undici';
import { GatewayError } from '../../errors.js';
import { AttemptFailure } from './policy.js';

export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 30_000;
/** Error bodies are read only this far, for the log; the rest is discarded. */
const ERROR_BODY_LIMIT_BYTES = 16 * 1024;

export interface HttpExchangeOptions {
  /** `scheme://host:port` of the upstream. */
  origin: string;
  /** Names the upstream in client-safe messages, e.g. `Inference backend`. */
  label: string;
  /** Keep-alive connections in the pool the exchange creates (ignored with `dispatcher`). */
  connections: number;
  /** An undici dispatcher to use instead of creating a `Pool`; never closed by the exchange. */
  dispatcher?: Dispatcher | undefined;
  /**
   * The policy's attempt timeout: the pool's own header/body timeouts are set just above it,
   * as backstops only (the attempt's signal is what enforces it).
   */
  attemptTimeoutMs: number;
}

export interface HttpRequest {
  method: 'GET' | 'POST';
  /** Path and query, already encoded. */
  path: string;
  /** The body: JSON text, or bytes of `contentType`; omitted for GET. */
  body?: string | Uint8Array | undefined;
  /** The body's media type; default `application/json`. */
  contentType?: string | undefined;
  /** Extra request headers (identity, credentials, trace context); never logged. */
  headers?: Readonly<Record<string, string>> | undefined;
  /** The attempt's signal (see `AttemptContext`). */
  signal: AbortSignal;
  /** A larger success body is returned as `text: null` (the caller decides it is malformed). */
  maxResponseBytes: number;
}

export interface HttpAnswer {
  status: number;
  /** The body, or `null` when a success body passed `maxResponseBytes`. */
  text: string | null;
}

/** HTTP/1.1 keep-alive exchanges with one upstream, failures classified for the policy. */
export interface HttpExchange {
  /** One request; throws an `AttemptFailure` for transport failures (not for statuses). */
  send(request: HttpRequest): Promise<HttpAnswer>;
  /** The classified failure for a non-2xx answer (`server` or `rejected`). */
  statusFailure(request: Pick<HttpRequest, 'method' | 'path'>, answer: HttpAnswer): AttemptFailure;
  /** A `BACKEND_UNAVAILABLE` error worded for this upstream. */
  unavailable(reason: string, detail: string, cause?: unknown): GatewayError;
  /** Closes the pool it created (not an injected dispatcher). Idempotent. */
  close(): Promise<void>;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a body up to `limit` bytes; beyond that the stream is destroyed and `null` returned. */
async function readLimited(body: Dispatcher.ResponseData['body'], limit: number) {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      return null;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** An error body for the log: the `{"error": …}` object many APIs (OIP v2 among them) send. */
function describeStatus(status: number, body: string | null): string {
  if (body === null || body === '') return `HTTP ${status}`;
  try {
    const json: unknown = JSON.parse(body);
    if (isObject(json) && typeof json.error === 'string') return `HTTP ${status}: ${json.error}`;
  } catch {
    // Not an error object; keep the raw start of the body.
  }
  return `HTTP ${status}: ${body.slice(0, 200)}`;
}

/** See {@link HttpExchange}. */
export function createHttpExchange(options: HttpExchangeOptions): HttpExchange {
  const { origin, label, attemptTimeoutMs } = options;
  const ownPool = options.dispatcher === undefined;
  const dispatcher: Dispatcher =
    options.dispatcher ??
    new Pool(origin, {
      connections: options.connections,
      keepAliveTimeout: DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
      headersTimeout: attemptTimeoutMs + 1_000,
      bodyTimeout: attemptTimeoutMs + 1_000,
      connectTimeout: Math.max(attemptTimeoutMs, 1_000),
    });
  let closed = false;

  function unavailable(reason: string, detail: string, cause?: unknown): GatewayError {
    return new GatewayError('BACKEND_UNAVAILABLE', `${label} unavailable (${reason})`, {
      cause: new Error(detail, { cause }),
    });
  }

  function transportFailure(error: unknown, what: string): AttemptFailure {
    const code =
      isObject(error) || error instanceof Error ? (error as { code?: unknown }).code : '';
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new AttemptFailure(
        'timeout',
        new GatewayError('BACKEND_TIMEOUT', `${label} timed out`, { cause: error }),
      );
    }
    if (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED') {
      return new AttemptFailure(
        'closed',
        unavailable('client closed', `${what}: pool closed`, error),
      );
    }
    // Unknown transport errors are treated like connection errors: retryable, health failures.
    const detail = `${what}: ${typeof code === 'string' && CONNECTION_CODES.has(code) ? code : String(error)}`;
    return new AttemptFailure('connection', unavailable('connection failed', detail, error));
  }

  return {
    unavailable,

    async send({ method, path, body, contentType, headers, signal, maxResponseBytes }) {
      if (closed) {
        throw new AttemptFailure('closed', unavailable('client closed', 'client closed'));
      }
      try {
        const response = await dispatcher.request({
          origin,
          path,
          method,
          headers: {
            ...headers,
            ...(body === undefined
              ? { accept: 'application/json' }
              : { 'content-type': contentType ?? 'application/json', accept: 'application/json' }),
          },
          body: body ?? null,
          signal,
        });
        const ok = response.statusCode >= 200 && response.statusCode < 300;
        const text = await readLimited(
          response.body,
          ok ? maxResponseBytes : ERROR_BODY_LIMIT_BYTES,
        );
        return { status: response.statusCode, text };
      } catch (error) {
        throw transportFailure(error, `${method} ${path}`);
      }
    },

    statusFailure({ method, path }, { status, text }) {
      const detail = `${method} ${path}: ${describeStatus(status, text)}`;
      if (status >= 500 || status === 408 || status === 429) {
        return new AttemptFailure('server', unavailable(`HTTP ${status}`, detail));
      }
      return new AttemptFailure(
        'rejected',
        new GatewayError('BACKEND_UNAVAILABLE', `${label} rejected the request (HTTP ${status})`, {
          cause: new Error(detail),
        }),
      );
    },

    async close() {
      if (closed) return;
      closed = true;
      if (ownPool) await dispatcher.close();
    },
  };
}
