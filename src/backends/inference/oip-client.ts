import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, type Dispatcher } from 'undici';
import { GatewayError, isGatewayError, unreachable } from '../../errors.js';
import {
  createCircuitBreaker,
  type CircuitBreaker,
  type CircuitBreakerOptions,
} from './breaker.js';
import { createRetryBudget, type RetryBudget, type RetryBudgetOptions } from './retry-budget.js';
import type {
  Clock,
  InferenceClient,
  InferRequest,
  InferResult,
  ModelMetadata,
  TensorMetadata,
} from './types.js';

export const DEFAULT_INPUT_NAME = 'features';
export const DEFAULT_OUTPUT_NAME = 'probability';
export const DEFAULT_RETRY_MAX_ATTEMPTS = 3;
export const DEFAULT_RETRY_BASE_DELAY_MS = 20;
export const DEFAULT_RETRY_MAX_DELAY_MS = 200;
export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 30_000;
/** Error bodies are read only this far, for the log; the rest is discarded. */
const ERROR_BODY_LIMIT_BYTES = 16 * 1024;

export interface OipRetryOptions {
  /** Attempts per call, the first included. 1 disables retries. Default 3. */
  maxAttempts?: number;
  /** Backoff before retry k is uniform in [0, min(maxDelayMs, baseDelayMs × 2^(k-1))]. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** The shared retry budget, or options to build this client's own. */
  budget?: RetryBudget | RetryBudgetOptions;
}

export interface OipClientOptions {
  /** Base URL of the backend; a path prefix (behind an ingress) is kept. */
  baseUrl: string;
  /**
   * Deadline of one `infer()` call, all attempts and backoff included. The caller's `signal`
   * may end it sooner.
   */
  timeoutMs: number;
  /**
   * Limit of one attempt; default `timeoutMs`. Set it lower to leave room for a retry after
   * a timed-out attempt: a timeout is retried only if a whole attempt still fits the deadline.
   */
  attemptTimeoutMs?: number;
  /** Keep-alive connections in the pool the client creates (ignored with `dispatcher`). */
  connections: number;
  /** An undici dispatcher to use instead of creating a `Pool`; the client never closes it. */
  dispatcher?: Dispatcher;
  retry?: OipRetryOptions;
  /** The breaker (shared, e.g. per backend) or options to build this client's own. */
  breaker?: CircuitBreaker | CircuitBreakerOptions;
  /** Time source for the breaker and retry budget windows. Deadlines use real time. */
  clock?: Clock;
  /** Uniform [0, 1) source for backoff jitter. Default `Math.random`. */
  random?: () => number;
  /** Larger successful responses are refused as malformed. Default 8 MiB. */
  maxResponseBytes?: number;
}

/** An `InferenceClient` that also exposes its breaker and retry budget, for metrics. */
export interface OipClient extends InferenceClient {
  readonly breaker: CircuitBreaker;
  readonly retryBudget: RetryBudget;
}

type FailureKind =
  /** Connection refused/reset/closed: retryable, a breaker failure. */
  | 'connection'
  /** The attempt ran out of time: a breaker failure; retryable only if time remains. */
  | 'timeout'
  /** 5xx, 408, 429: retryable, a breaker failure. */
  | 'server'
  /** Other 4xx: the request is wrong (unknown model/version, bad shape); neither. */
  | 'rejected'
  /** 2xx with a body that is not the answer asked for: a breaker failure, not retried. */
  | 'malformed'
  /** The caller's signal fired: neither. */
  | 'cancelled'
  /** Our own pool is closed: neither. */
  | 'closed';

class AttemptFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    readonly error: GatewayError,
  ) {
    super(error.message);
  }
}

function unavailable(reason: string, detail: string, cause?: unknown): GatewayError {
  return new GatewayError('BACKEND_UNAVAILABLE', `Inference backend unavailable (${reason})`, {
    cause: new Error(detail, { cause }),
  });
}

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

function encodeInputs(request: InferRequest): { rows: number; data: number[] } {
  const { inputs, featureCount } = request;
  if (!Number.isInteger(featureCount) || featureCount < 1) {
    throw new GatewayError(
      'BAD_USER_INPUT',
      `featureCount must be a positive integer, got ${String(featureCount)}`,
    );
  }
  let data: number[];
  if (inputs instanceof Float32Array) {
    if (inputs.length % featureCount !== 0) {
      throw new GatewayError(
        'BAD_USER_INPUT',
        `inputs hold ${inputs.length} values, not a multiple of featureCount ${featureCount}`,
      );
    }
    data = Array.from(inputs);
  } else {
    data = new Array<number>(inputs.length * featureCount);
    for (let r = 0; r < inputs.length; r++) {
      const row = inputs[r]!;
      if (!Array.isArray(row) || row.length !== featureCount) {
        throw new GatewayError(
          'BAD_USER_INPUT',
          `input row ${r} must hold ${featureCount} numbers, got ${Array.isArray(row) ? row.length : typeof row}`,
        );
      }
      for (let f = 0; f < featureCount; f++) data[r * featureCount + f] = row[f] as number;
    }
  }
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new GatewayError(
        'BAD_USER_INPUT',
        `input row ${Math.floor(i / featureCount)} feature ${i % featureCount} is not a finite number`,
      );
    }
  }
  const rows = data.length / featureCount;
  if (rows === 0) throw new GatewayError('BAD_USER_INPUT', 'no input rows to score');
  return { rows, data };
}

function flatten(data: unknown): unknown[] {
  if (!Array.isArray(data)) return [];
  // The spec allows nested row-major arrays as well as flat ones.
  return data.some(Array.isArray) ? (data.flat(Infinity) as unknown[]) : data;
}

/**
 * Checks a 200 answer strictly: the right model (and version, when pinned), the requested
 * output with shape [N] or [N, 1] and exactly N finite numbers. Anything else would put
 * scores on the wrong rows, so it is an error, never a best effort.
 */
function parseInferResponse(
  text: string,
  expect: { model: string; version: string | undefined; outputName: string; rows: number },
): InferResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw unavailable('malformed response', 'infer response is not JSON', error);
  }
  if (!isObject(json)) throw unavailable('malformed response', 'infer response is not an object');
  const modelName = json.model_name ?? expect.model;
  if (modelName !== expect.model) {
    throw unavailable(
      'malformed response',
      `answered for model ${JSON.stringify(modelName)}, asked ${JSON.stringify(expect.model)}`,
    );
  }
  const rawVersion = json.model_version ?? expect.version ?? '';
  if (typeof rawVersion !== 'string' && typeof rawVersion !== 'number') {
    throw unavailable('malformed response', 'model_version is not a string');
  }
  const modelVersion = String(rawVersion);
  if (expect.version !== undefined && modelVersion !== expect.version) {
    throw unavailable(
      'malformed response',
      `answered with version ${modelVersion}, asked ${expect.version}`,
    );
  }
  const outputs = json.outputs;
  if (!Array.isArray(outputs)) throw unavailable('malformed response', 'outputs is not an array');
  const output: unknown = outputs.find((o) => isObject(o) && o.name === expect.outputName);
  if (!isObject(output)) {
    throw unavailable('malformed response', `no output named ${expect.outputName}`);
  }
  const shape = output.shape;
  const n = expect.rows;
  const shapeOk =
    Array.isArray(shape) &&
    shape.every((d) => Number.isInteger(d)) &&
    shape[0] === n &&
    (shape.length === 1 || (shape.length === 2 && shape[1] === 1));
  if (!shapeOk) {
    throw unavailable(
      'malformed response',
      `output shape ${JSON.stringify(shape)}, expected [${n}, 1] or [${n}]`,
    );
  }
  const data = flatten(output.data);
  if (data.length !== n) {
    throw unavailable('malformed response', `output holds ${data.length} values for ${n} rows`);
  }
  const scores = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const v = data[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw unavailable('malformed response', `output value ${i} is not a finite number`);
    }
    scores[i] = v;
  }
  return { modelName: expect.model, modelVersion, scores };
}

const tensorSchemaCheck = (t: unknown): t is TensorMetadata =>
  isObject(t) &&
  typeof t.name === 'string' &&
  typeof t.datatype === 'string' &&
  Array.isArray(t.shape) &&
  t.shape.every((d) => Number.isInteger(d));

function parseMetadata(text: string): ModelMetadata {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw unavailable('malformed response', 'metadata response is not JSON', error);
  }
  if (
    !isObject(json) ||
    typeof json.name !== 'string' ||
    !Array.isArray(json.inputs) ||
    !json.inputs.every(tensorSchemaCheck) ||
    !Array.isArray(json.outputs) ||
    !json.outputs.every(tensorSchemaCheck)
  ) {
    throw unavailable('malformed response', 'metadata response lacks name, inputs or outputs');
  }
  const versions = Array.isArray(json.versions) ? json.versions.map(String) : [];
  const platform = typeof json.platform === 'string' ? json.platform : '';
  const pick = (t: TensorMetadata): TensorMetadata => ({
    name: t.name,
    datatype: t.datatype,
    shape: [...t.shape],
  });
  return {
    name: json.name,
    versions,
    platform,
    inputs: json.inputs.map(pick),
    outputs: json.outputs.map(pick),
  };
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

function transportFailure(error: unknown, what: string): AttemptFailure {
  const code = isObject(error) || error instanceof Error ? (error as { code?: unknown }).code : '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new AttemptFailure(
      'timeout',
      new GatewayError('BACKEND_TIMEOUT', 'Inference backend timed out', { cause: error }),
    );
  }
  if (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED') {
    return new AttemptFailure(
      'closed',
      unavailable('client closed', `${what}: pool closed`, error),
    );
  }
  // Unknown transport errors are treated like connection errors: retryable, breaker failures.
  const detail = `${what}: ${typeof code === 'string' && CONNECTION_CODES.has(code) ? code : String(error)}`;
  return new AttemptFailure('connection', unavailable('connection failed', detail, error));
}

function describeStatus(status: number, body: string | null): string {
  if (body === null || body === '') return `HTTP ${status}`;
  try {
    const json: unknown = JSON.parse(body);
    if (isObject(json) && typeof json.error === 'string') return `HTTP ${status}: ${json.error}`;
  } catch {
    // Not the OIP error object; keep the raw start of the body.
  }
  return `HTTP ${status}: ${body.slice(0, 200)}`;
}

function cancellation(signal: AbortSignal): GatewayError {
  const reason: unknown = signal.reason;
  if (isGatewayError(reason)) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new GatewayError('BACKEND_TIMEOUT', 'Inference backend timed out', { cause: reason });
  }
  return new GatewayError('BACKEND_UNAVAILABLE', 'Inference request cancelled', { cause: reason });
}

/**
 * Health answers: Triton sends 200 with no body, KServe adds `{"ready": true}`. The status is
 * what the spec defines; a body is consulted only to honour an explicit `false`.
 */
function explicitlyFalse(text: string | null, keys: readonly string[]): boolean {
  if (text === null || text.trim() === '') return false;
  try {
    const json: unknown = JSON.parse(text);
    return isObject(json) && keys.some((k) => json[k] === false);
  } catch {
    return false;
  }
}

function modelPath(prefix: string, model: string, version: string | undefined): string {
  if (typeof model !== 'string' || model === '') {
    throw new GatewayError('BAD_USER_INPUT', 'model name must be a non-empty string');
  }
  const base = `${prefix}/v2/models/${encodeURIComponent(model)}`;
  return version === undefined ? base : `${base}/versions/${encodeURIComponent(version)}`;
}

function positive(name: string, value: number | undefined, integer = false): void {
  if (
    value !== undefined &&
    (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value)))
  ) {
    throw new TypeError(
      `createOipClient: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`,
    );
  }
}

/**
 * A client for one OIP v2 backend over HTTP/1.1 keep-alive (undici `Pool`).
 *
 * Failure policy, per attempt:
 * - connection refused/reset, 5xx, 408, 429 → retried with full-jitter exponential backoff
 *   while attempts, the retry budget and the deadline allow; breaker failure;
 *   the final error is `BACKEND_UNAVAILABLE`.
 * - attempt timeout → `BACKEND_TIMEOUT`; breaker failure; retried only when a whole attempt
 *   still fits before the deadline (so never with the default `attemptTimeoutMs = timeoutMs`).
 * - other 4xx (unknown model or version, wrong shape) → `BACKEND_UNAVAILABLE`, not retried and
 *   neutral for the breaker: one tenant's misconfiguration must not open the circuit for every
 *   tenant on the backend, and a 4xx proves nothing about its health either way.
 * - a 200 whose body is not the requested output of exactly N finite scores →
 *   `BACKEND_UNAVAILABLE`, not retried (it would answer the same), breaker failure.
 * - the caller's signal → its reason if a `GatewayError`, `BACKEND_TIMEOUT` for a
 *   `TimeoutError`, else `BACKEND_UNAVAILABLE`; neutral for the breaker.
 * - circuit open → `BACKEND_UNAVAILABLE` "circuit open" at once, without a request.
 */
export function createOipClient(options: OipClientOptions): OipClient {
  let url: URL;
  try {
    url = new URL(options.baseUrl);
  } catch {
    throw new TypeError(`createOipClient: baseUrl must be an absolute URL, got ${options.baseUrl}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`createOipClient: baseUrl must be http(s), got ${options.baseUrl}`);
  }
  positive('timeoutMs', options.timeoutMs);
  positive('attemptTimeoutMs', options.attemptTimeoutMs);
  positive('connections', options.connections, true);
  positive('retry.maxAttempts', options.retry?.maxAttempts, true);
  positive('maxResponseBytes', options.maxResponseBytes, true);

  const origin = url.origin;
  const prefix = url.pathname.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs;
  const attemptTimeoutMs = Math.min(options.attemptTimeoutMs ?? timeoutMs, timeoutMs);
  const maxAttempts = options.retry?.maxAttempts ?? DEFAULT_RETRY_MAX_ATTEMPTS;
  const baseDelayMs = options.retry?.baseDelayMs ?? DEFAULT_RETRY_BASE_DELAY_MS;
  const maxDelayMs = options.retry?.maxDelayMs ?? DEFAULT_RETRY_MAX_DELAY_MS;
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const random = options.random ?? Math.random;
  const clock = options.clock;

  const budgetOption = options.retry?.budget;
  const retryBudget: RetryBudget =
    budgetOption !== undefined && 'tryWithdraw' in budgetOption
      ? budgetOption
      : createRetryBudget({ ...budgetOption, ...(clock ? { clock } : {}) });
  const breakerOption = options.breaker;
  const breaker: CircuitBreaker =
    breakerOption !== undefined && 'acquire' in breakerOption
      ? breakerOption
      : createCircuitBreaker({ ...breakerOption, ...(clock ? { clock } : {}) });

  const ownPool = options.dispatcher === undefined;
  const dispatcher: Dispatcher =
    options.dispatcher ??
    new Pool(origin, {
      connections: options.connections,
      keepAliveTimeout: DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
      // Backstops only: the per-attempt AbortSignal below is what enforces the deadline.
      headersTimeout: attemptTimeoutMs + 1_000,
      bodyTimeout: attemptTimeoutMs + 1_000,
      connectTimeout: Math.max(attemptTimeoutMs, 1_000),
    });
  let closed = false;

  /**
   * One HTTP exchange under its own timer. Returns the status and (size-limited) body text;
   * throws an `AttemptFailure` classified for the retry and breaker decisions.
   */
  async function exchange(
    method: 'GET' | 'POST',
    path: string,
    body: string | undefined,
    limitMs: number,
    callerSignal: AbortSignal | undefined,
    successLimit: number,
  ): Promise<{ status: number; text: string | null }> {
    if (closed) {
      throw new AttemptFailure('closed', unavailable('client closed', 'client closed'));
    }
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, limitMs);
    const onCallerAbort = () => controller.abort();
    callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      const response = await dispatcher.request({
        origin,
        path,
        method,
        headers:
          body === undefined
            ? { accept: 'application/json' }
            : { 'content-type': 'application/json', accept: 'application/json' },
        body: body ?? null,
        signal: controller.signal,
      });
      const ok = response.statusCode >= 200 && response.statusCode < 300;
      const text = await readLimited(response.body, ok ? successLimit : ERROR_BODY_LIMIT_BYTES);
      return { status: response.statusCode, text };
    } catch (error) {
      if (callerSignal?.aborted) {
        throw new AttemptFailure('cancelled', cancellation(callerSignal));
      }
      if (timedOut) {
        throw new AttemptFailure(
          'timeout',
          new GatewayError('BACKEND_TIMEOUT', 'Inference backend timed out', {
            cause: new Error(`${method} ${path}: no complete answer within ${limitMs} ms`),
          }),
        );
      }
      throw transportFailure(error, `${method} ${path}`);
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onCallerAbort);
    }
  }

  function statusFailure(method: string, path: string, status: number, text: string | null) {
    const detail = `${method} ${path}: ${describeStatus(status, text)}`;
    if (status >= 500 || status === 408 || status === 429) {
      return new AttemptFailure('server', unavailable(`HTTP ${status}`, detail));
    }
    return new AttemptFailure(
      'rejected',
      new GatewayError(
        'BACKEND_UNAVAILABLE',
        `Inference backend rejected the request (HTTP ${status})`,
        { cause: new Error(detail) },
      ),
    );
  }

  async function infer(request: InferRequest): Promise<InferResult> {
    const { rows, data } = encodeInputs(request);
    const inputName = request.inputName ?? DEFAULT_INPUT_NAME;
    const outputName = request.outputName ?? DEFAULT_OUTPUT_NAME;
    const path = `${modelPath(prefix, request.model, request.version)}/infer`;
    const body = JSON.stringify({
      inputs: [{ name: inputName, shape: [rows, request.featureCount], datatype: 'FP32', data }],
      outputs: [{ name: outputName }],
    });
    const signal = request.signal;
    if (signal?.aborted) throw cancellation(signal);

    const deadline = performance.now() + timeoutMs;
    let lastError: GatewayError | undefined;

    for (let attempt = 1; ; attempt++) {
      let permit;
      try {
        permit = breaker.acquire();
      } catch (error) {
        // Circuit opened mid-retry: report what actually went wrong, not the breaker.
        throw lastError ?? error;
      }
      // Only calls that reach the backend earn retries; fast-failed ones would inflate the budget.
      if (attempt === 1) retryBudget.deposit();
      const limit = Math.min(attemptTimeoutMs, deadline - performance.now());
      let failure: AttemptFailure;
      try {
        const { status, text } = await exchange(
          'POST',
          path,
          body,
          limit,
          signal,
          maxResponseBytes,
        );
        if (status >= 200 && status < 300) {
          if (text === null) {
            throw new AttemptFailure(
              'malformed',
              unavailable('malformed response', `response over ${maxResponseBytes} bytes`),
            );
          }
          try {
            const result = parseInferResponse(text, {
              model: request.model,
              version: request.version,
              outputName,
              rows,
            });
            permit.success();
            return result;
          } catch (error) {
            throw new AttemptFailure('malformed', error as GatewayError);
          }
        }
        throw statusFailure('POST', path, status, text);
      } catch (error) {
        failure = error instanceof AttemptFailure ? error : transportFailure(error, `POST ${path}`);
      }

      switch (failure.kind) {
        case 'cancelled':
        case 'rejected':
        case 'closed':
          permit.release();
          throw failure.error;
        case 'malformed':
          permit.failure();
          throw failure.error;
        case 'connection':
        case 'server':
        case 'timeout':
          permit.failure();
          break;
        default:
          unreachable(failure.kind);
      }
      lastError = failure.error;
      if (attempt >= maxAttempts) throw lastError;
      const delay = random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
      const remainingAfterDelay = deadline - performance.now() - delay;
      const needed = failure.kind === 'timeout' ? attemptTimeoutMs : 1;
      if (remainingAfterDelay < needed) throw lastError;
      if (!retryBudget.tryWithdraw()) throw lastError;
      if (delay > 0) {
        try {
          await sleep(delay, undefined, signal ? { signal } : undefined);
        } catch {
          throw signal?.aborted ? cancellation(signal) : lastError;
        }
      }
    }
  }

  async function probe(path: string): Promise<{ status: number; text: string | null }> {
    try {
      return await exchange('GET', path, undefined, attemptTimeoutMs, undefined, maxResponseBytes);
    } catch (error) {
      throw error instanceof AttemptFailure ? error.error : error;
    }
  }

  return {
    breaker,
    retryBudget,
    infer,

    async modelMetadata(model, version) {
      const path = modelPath(prefix, model, version);
      const { status, text } = await probe(path);
      if (status < 200 || status >= 300) throw statusFailure('GET', path, status, text).error;
      if (text === null) {
        throw unavailable('malformed response', `metadata over ${maxResponseBytes} bytes`);
      }
      return parseMetadata(text);
    },

    async modelReady(model, version) {
      try {
        const { status, text } = await probe(`${modelPath(prefix, model, version)}/ready`);
        return status === 200 && !explicitlyFalse(text, ['ready']);
      } catch {
        return false;
      }
    },

    async serverReady() {
      try {
        const { status, text } = await probe(`${prefix}/v2/health/ready`);
        return status === 200 && !explicitlyFalse(text, ['ready', 'live']);
      } catch {
        return false;
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      if (ownPool) await dispatcher.close();
    },
  };
}
