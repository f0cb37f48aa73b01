import type { Dispatcher } from 'undici';
import { GatewayError } from '../../errors.js';
import type { CircuitBreaker } from '../resilience/breaker.js';
import { createHttpExchange, type HttpExchange } from '../resilience/http-exchange.js';
import {
  AttemptFailure,
  createResiliencePolicy,
  type ResiliencePolicyOptions,
} from '../resilience/policy.js';
import type { RetryBudget } from '../resilience/retry-budget.js';
import {
  FP32_MAX,
  type InferenceClient,
  type InferRequest,
  type InferResult,
  type ModelMetadata,
  type TensorMetadata,
} from './types.js';

export const DEFAULT_INPUT_NAME = 'features';
export const DEFAULT_OUTPUT_NAME = 'probability';
export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
const LABEL = 'Inference backend';

export interface OipClientOptions extends Omit<ResiliencePolicyOptions, 'label'> {
  /** Base URL of the backend; a path prefix (behind an ingress) is kept. */
  baseUrl: string;
  /** Keep-alive connections in the pool the client creates (ignored with `dispatcher`). */
  connections: number;
  /** An undici dispatcher to use instead of creating a `Pool`; the client never closes it. */
  dispatcher?: Dispatcher;
  /** Larger successful responses are refused as malformed. Default 8 MiB. */
  maxResponseBytes?: number;
  /**
   * Send inputs as raw FP32 bytes after a JSON header (the KServe/Triton binary tensor data
   * extension) instead of JSON numbers; answers are read as JSON either way. Default false.
   */
  binaryTensors?: boolean | undefined;
}

/** A binary-data infer body: the JSON header, then the FP32 values little-endian. */
function binaryInferBody(header: string, data: readonly number[]) {
  const json = Buffer.from(header);
  const body = Buffer.allocUnsafe(json.length + data.length * 4);
  json.copy(body, 0);
  const view = new DataView(body.buffer, body.byteOffset + json.length, data.length * 4);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i] as number, true);
  return { body, headerLength: json.length };
}

/** An `InferenceClient` that also exposes its breakers and retry budget, for metrics. */
export interface OipClient extends InferenceClient {
  /** The backend's shared breaker. */
  readonly breaker: CircuitBreaker;
  readonly retryBudget: RetryBudget;
  /** A tenant's own breaker on this backend, once it has made a call. */
  tenantBreaker(tenant: string): CircuitBreaker | undefined;
}

function unavailable(reason: string, detail: string, cause?: unknown): GatewayError {
  return new GatewayError('BACKEND_UNAVAILABLE', `${LABEL} unavailable (${reason})`, {
    cause: new Error(detail, { cause }),
  });
}

function malformed(detail: string, cause?: unknown): AttemptFailure {
  return new AttemptFailure('malformed', unavailable('malformed response', detail, cause));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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
    if (Math.abs(v) > FP32_MAX) {
      throw new GatewayError(
        'BAD_USER_INPUT',
        `input row ${Math.floor(i / featureCount)} feature ${i % featureCount} is outside the FP32 range (±${FP32_MAX})`,
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
 * scores on the wrong rows, so it is an error, never a best effort: `malformed` (the
 * backend's failure), except non-finite scores in an otherwise proper answer (JSON `null`,
 * which is how NaN and ±Infinity serialise), which the request's inputs caused: `input`.
 */
function parseInferResponse(
  text: string,
  expect: { model: string; version: string | undefined; outputName: string; rows: number },
): InferResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw malformed('infer response is not JSON', error);
  }
  if (!isObject(json)) throw malformed('infer response is not an object');
  const modelName = json.model_name ?? expect.model;
  if (modelName !== expect.model) {
    throw malformed(
      `answered for model ${JSON.stringify(modelName)}, asked ${JSON.stringify(expect.model)}`,
    );
  }
  const rawVersion = json.model_version ?? expect.version ?? '';
  if (typeof rawVersion !== 'string' && typeof rawVersion !== 'number') {
    throw malformed('model_version is not a string');
  }
  const modelVersion = String(rawVersion);
  if (expect.version !== undefined && modelVersion !== expect.version) {
    throw malformed(`answered with version ${modelVersion}, asked ${expect.version}`);
  }
  const outputs = json.outputs;
  if (!Array.isArray(outputs)) throw malformed('outputs is not an array');
  const output: unknown = outputs.find((o) => isObject(o) && o.name === expect.outputName);
  if (!isObject(output)) throw malformed(`no output named ${expect.outputName}`);
  const shape = output.shape;
  const n = expect.rows;
  const shapeOk =
    Array.isArray(shape) &&
    shape.every((d) => Number.isInteger(d)) &&
    shape[0] === n &&
    (shape.length === 1 || (shape.length === 2 && shape[1] === 1));
  if (!shapeOk) {
    throw malformed(`output shape ${JSON.stringify(shape)}, expected [${n}, 1] or [${n}]`);
  }
  const data = flatten(output.data);
  if (data.length !== n) throw malformed(`output holds ${data.length} values for ${n} rows`);
  const scores = new Array<number>(n);
  let nonFinite = -1;
  for (let i = 0; i < n; i++) {
    const v = data[i];
    if (v === null || (typeof v === 'number' && !Number.isFinite(v))) {
      if (nonFinite === -1) nonFinite = i;
      continue;
    }
    if (typeof v !== 'number') throw malformed(`output value ${i} is not a number`);
    scores[i] = v;
  }
  if (nonFinite !== -1) {
    throw new AttemptFailure(
      'input',
      new GatewayError(
        'BAD_USER_INPUT',
        'The model gave no finite score for these inputs; their values may be too extreme for it.',
        {
          extensions: { reason: 'NON_FINITE_SCORE' },
          cause: new Error(`${expect.model}: output value ${nonFinite} is not a finite number`),
        },
      ),
    );
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
 * A client for one OIP v2 backend over HTTP/1.1 keep-alive: the protocol (paths, encoding,
 * strict response checks) on top of the one resilience policy (`resilience/policy.ts`: attempt
 * timeout, deadline, retries with backoff, retry budget, the backend's shared breaker and one
 * breaker per tenant), whose failure policy applies unchanged. What the protocol adds:
 * - connection refused/reset, 5xx, 408, 429 → retried; the final error is `BACKEND_UNAVAILABLE`.
 * - attempt timeout → `BACKEND_TIMEOUT`.
 * - other 4xx (unknown model or version, wrong shape) → `BACKEND_UNAVAILABLE`, not retried and
 *   neutral for every breaker.
 * - a 200 whose body is not the requested output of exactly N scores → `BACKEND_UNAVAILABLE`,
 *   not retried, a health failure.
 * - a proper 200 with non-finite scores → `BAD_USER_INPUT`, not retried: the inputs did it, so
 *   it counts against the sending tenant's breaker only.
 * - inputs that are not finite FP32 → `BAD_USER_INPUT` before any request.
 * - the caller's signal → its reason if a `GatewayError`, `BACKEND_TIMEOUT` for a
 *   `TimeoutError`, else `BACKEND_UNAVAILABLE`; neutral.
 * - circuit open → `BACKEND_UNAVAILABLE` "circuit open" at once, without a request.
 * Metadata and health probes make one attempt, outside the breakers.
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
  positive('connections', options.connections, true);
  positive('maxResponseBytes', options.maxResponseBytes, true);

  const {
    baseUrl: _baseUrl,
    connections,
    dispatcher,
    maxResponseBytes: _max,
    binaryTensors = false,
    ...policyOptions
  } = options;
  const policy = createResiliencePolicy({ ...policyOptions, label: LABEL });
  const prefix = url.pathname.replace(/\/+$/, '');
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const http: HttpExchange = createHttpExchange({
    origin: url.origin,
    label: LABEL,
    connections,
    dispatcher,
    attemptTimeoutMs: Math.min(options.attemptTimeoutMs ?? options.timeoutMs, options.timeoutMs),
  });

  async function infer(request: InferRequest): Promise<InferResult> {
    const { rows, data } = encodeInputs(request);
    const inputName = request.inputName ?? DEFAULT_INPUT_NAME;
    const outputName = request.outputName ?? DEFAULT_OUTPUT_NAME;
    const path = `${modelPath(prefix, request.model, request.version)}/infer`;
    const shape = [rows, request.featureCount];
    let body: string | Uint8Array;
    let headers = request.headers;
    let contentType: string | undefined;
    if (binaryTensors) {
      const header = JSON.stringify({
        inputs: [
          {
            name: inputName,
            shape,
            datatype: 'FP32',
            parameters: { binary_data_size: data.length * 4 },
          },
        ],
        outputs: [{ name: outputName }],
      });
      const encoded = binaryInferBody(header, data);
      body = encoded.body;
      contentType = 'application/octet-stream';
      headers = { ...headers, 'inference-header-content-length': String(encoded.headerLength) };
    } else {
      body = JSON.stringify({
        inputs: [{ name: inputName, shape, datatype: 'FP32', data }],
        outputs: [{ name: outputName }],
      });
    }
    const expect = { model: request.model, version: request.version, outputName, rows };
    return policy.call(
      async ({ signal }) => {
        const call = { method: 'POST', path } as const;
        const answer = await http.send({
          ...call,
          body,
          contentType,
          headers,
          signal,
          maxResponseBytes,
        });
        if (answer.status < 200 || answer.status >= 300) throw http.statusFailure(call, answer);
        if (answer.text === null) throw malformed(`response over ${maxResponseBytes} bytes`);
        return parseInferResponse(answer.text, expect);
      },
      { signal: request.signal, tenant: request.tenant },
    );
  }

  function probe(path: string) {
    return policy.once(({ signal }) =>
      http.send({ method: 'GET', path, signal, maxResponseBytes }),
    );
  }

  return {
    breaker: policy.breaker,
    retryBudget: policy.retryBudget,
    tenantBreaker: policy.tenantBreaker,
    infer,

    async modelMetadata(model, version) {
      const path = modelPath(prefix, model, version);
      const answer = await probe(path);
      if (answer.status < 200 || answer.status >= 300) {
        throw http.statusFailure({ method: 'GET', path }, answer).error;
      }
      if (answer.text === null) {
        throw unavailable('malformed response', `metadata over ${maxResponseBytes} bytes`);
      }
      return parseMetadata(answer.text);
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

    close: () => http.close(),
  };
}
