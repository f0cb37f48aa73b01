import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  inferResponseBody,
  ModelServerError,
  modelMetadataBody,
  parseInferRequest,
} from './protocol.js';
import type { Device, DeviceCall } from './device.js';
import type { ModelRepository, ServedModel } from './repository.js';
import type { RecentCall, ServerStats } from './stats.js';
import {
  InferenceRunError,
  type InferencePool,
  PoolClosedError,
  PoolOverloadedError,
} from './worker-pool.js';

/** Default request body limit; 10 000 rows × 5 features of JSON is well under 1 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

/** Options of {@link createModelServerHandler}. */
export interface ModelServerHandlerOptions {
  repository: ModelRepository;
  pool: Pick<InferencePool, 'run'>;
  /** The devices of the `<model>/<version>`s that have one; the others run on the pool alone. */
  devices?: ReadonlyMap<string, Device>;
  stats: ServerStats;
  /** `name` in server metadata. */
  serverName: string;
  /** `version` in server metadata. */
  serverVersion: string;
  /** Larger bodies are refused with 413. */
  maxBodyBytes?: number;
  /** False while starting or draining: `/v2/health/ready` and model ready answer 400. */
  isReady: () => boolean;
  /** Called with errors that are bugs or runtime failures (answered 500). */
  onInternalError: (err: unknown) => void;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Protocol extensions this server implements (`GET /v2/models/{m}/config`). */
export const SERVER_EXTENSIONS = ['model_configuration', 'binary_tensor_data'] as const;

const MODEL_PATH = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(?:\/(ready|infer|config))?$/;

/**
 * The HTTP side of the Open Inference Protocol v2 REST API (plus `/stats`). Every error is
 * answered as `{"error": "..."}`: 400 malformed request, 404 unknown model/version/route,
 * 405 wrong method (with `Allow`), 413 body too large, 503 overloaded or shutting down,
 * 500 inference failure.
 */
export function createModelServerHandler(options: ModelServerHandlerOptions): Handler {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw new TypeError(
      `ModelServerHandlerOptions.maxBodyBytes must be a positive integer, got ${maxBodyBytes}`,
    );
  }
  const { repository, pool, stats } = options;
  const devices = options.devices ?? new Map<string, Device>();

  const resolve = (
    name: string,
    version: string | undefined,
  ): { model: ServedModel; version: string } => {
    const model = repository.models.get(name);
    if (model === undefined) throw new ModelServerError(404, `unknown model "${name}"`);
    if (version === undefined) return { model, version: model.latest };
    if (!model.files.has(version)) {
      throw new ModelServerError(
        404,
        `unknown version "${version}" of model "${name}"; available: ${model.versions.join(', ')}`,
      );
    }
    return { model, version };
  };

  const infer = async (
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    version?: string,
  ): Promise<void> => {
    let key = 'unresolved';
    let rows = 0;
    let ok = false;
    let deviceCall: DeviceCall | undefined;
    try {
      const target = resolve(name, version);
      key = `${target.model.name}/${target.version}`;
      const bytes = await readBody(req, maxBodyBytes);
      // The binary data extension: a JSON header of the given length, then raw tensor bytes.
      const headerLength = binaryHeaderLength(req, bytes.length);
      const text = bytes.toString('utf8', 0, headerLength ?? bytes.length);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw new ModelServerError(
          400,
          `request body is not valid JSON: ${(err as Error).message}`,
        );
      }
      const request = parseInferRequest(
        body,
        target.model,
        headerLength === undefined ? undefined : bytes.subarray(headerLength),
      );
      rows = request.rows;
      const compute = () => pool.run(key, request.inputs, request.outputs);
      const device = devices.get(key);
      const outputs =
        device === undefined
          ? await compute()
          : await device.run(compute, (executed) => (deviceCall = executed));
      stats.recordInfer(key, request.rows);
      ok = true;
      sendJson(res, 200, inferResponseBody(target.model, target.version, request.id, outputs));
    } catch (err) {
      stats.recordInferError(key);
      throw err;
    } finally {
      const call: RecentCall = { model: key, rows, ok };
      if (req.headers['inference-header-content-length'] !== undefined) call.binary = true;
      const requestId = headerOf(req, 'x-request-id');
      if (requestId !== undefined) call.requestId = requestId;
      const traceparent = headerOf(req, 'traceparent');
      if (traceparent !== undefined) call.traceparent = traceparent;
      if (deviceCall !== undefined) call.device = deviceCall;
      stats.recordCall(call);
    }
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const rawPath = (req.url ?? '/').split('?')[0]!;
    const path = rawPath.length > 1 && rawPath.endsWith('/') ? rawPath.slice(0, -1) : rawPath;
    const allow = (methods: string): void => {
      const allowed = methods.split(', ');
      if (method === 'HEAD' && allowed.includes('GET')) return;
      if (!allowed.includes(method)) {
        throw new ModelServerError(
          405,
          `method ${method} is not allowed on ${path}; use ${methods}`,
          {
            allow: methods.includes('GET') ? `${methods}, HEAD` : methods,
          },
        );
      }
    };

    switch (path) {
      case '/v2/health/live':
        allow('GET');
        sendJson(res, 200, { live: true });
        return;
      case '/v2/health/ready':
        allow('GET');
        if (!options.isReady()) throw new ModelServerError(400, 'server is not ready');
        sendJson(res, 200, { ready: true });
        return;
      case '/v2':
        allow('GET');
        sendJson(res, 200, {
          name: options.serverName,
          version: options.serverVersion,
          extensions: SERVER_EXTENSIONS,
        });
        return;
      case '/stats':
        allow('GET');
        sendJson(res, 200, stats.snapshot());
        return;
      case '/stats/reset':
        allow('POST');
        stats.reset();
        sendJson(res, 200, stats.snapshot());
        return;
      default:
        break;
    }

    const match = MODEL_PATH.exec(path);
    if (match === null) throw new ModelServerError(404, `no route for ${path}`);
    const name = decodeSegment(match[1]!);
    const version = match[2] === undefined ? undefined : decodeSegment(match[2]);
    const action = match[3];
    if (action === 'infer') {
      allow('POST');
      await infer(req, res, name, version);
      return;
    }
    allow('GET');
    const target = resolve(name, version);
    if (action === 'ready') {
      if (!options.isReady())
        throw new ModelServerError(400, `model "${name}" is not ready: server is not ready`);
      sendJson(res, 200, { name: target.model.name, version: target.version, ready: true });
    } else if (action === 'config') {
      sendJson(res, 200, { name: target.model.name, ...target.model.config });
    } else {
      sendJson(res, 200, modelMetadataBody(target.model));
    }
  };

  return (req, res) => {
    route(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      let status = 500;
      let message = 'internal server error';
      let headers: Readonly<Record<string, string>> = {};
      if (err instanceof ModelServerError) {
        ({ status, message, headers } = err);
      } else if (err instanceof PoolOverloadedError) {
        status = 503;
        message = `server overloaded: ${err.message}`;
        headers = { 'retry-after': '1' };
      } else if (err instanceof PoolClosedError) {
        status = 503;
        message = 'server is shutting down';
      } else if (err instanceof InferenceRunError) {
        message = `inference failed: ${err.message}`;
        options.onInternalError(err);
      } else {
        options.onInternalError(err);
      }
      sendJson(res, status, { error: message }, headers);
      if (status === 413) {
        // The rest of the body was not read; close rather than parse it as the next request.
        res.on('finish', () => req.destroy());
      }
    });
  };
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ModelServerError(400, `malformed percent-encoding in path segment "${segment}"`);
  }
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    ...(status === 413 ? { connection: 'close' } : {}),
    ...headers,
  });
  res.end(payload);
}

/** The JSON header's length of a binary-tensor request; undefined for a plain JSON body. */
function binaryHeaderLength(req: IncomingMessage, bodyLength: number): number | undefined {
  const raw = req.headers['inference-header-content-length'];
  if (raw === undefined) return undefined;
  const length = Number(raw);
  if (!(Number.isSafeInteger(length) && length > 0 && length <= bodyLength)) {
    throw new ModelServerError(
      400,
      `Inference-Header-Content-Length ${JSON.stringify(raw)} must be a positive integer no larger than the body (${bodyLength} bytes)`,
    );
  }
  return length;
}

/** Reads the body, refusing (413) more than `limit` bytes, declared or actual. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(
      new ModelServerError(
        413,
        `request body of ${declared} bytes exceeds the limit of ${limit} bytes`,
      ),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(new ModelServerError(413, `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new ModelServerError(400, `request body could not be read: ${err.message}`));
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
