import { LRUCache } from 'lru-cache';
import { GatewayError, isGatewayError, type ErrorCode } from '../../errors.js';
import { originHeaders, type RequestOrigin } from '../../telemetry/tracing.js';
import { createMicroBatcher, type MicroBatcher } from './micro-batcher.js';
import {
  createInferStats,
  UNPINNED_VERSION_LABEL,
  type InferStats,
  type InferStatsEntry,
  type InferStatsKey,
} from './stats.js';
import { FP32_MAX, type InferenceClient } from './types.js';

export const DEFAULT_MAX_BATCHERS = 10_000;
export const DEFAULT_BATCHER_IDLE_MS = 5 * 60_000;

/** Where a tenant's logical model is served (from `TenantModelConfig` + the backend name). */
export interface ModelRef {
  /** Name of an entry in `inference.backends`. */
  backend: string;
  /** Model name on the backend. */
  model: string;
  /** Pinned version; omitted → the server's policy, and `modelVersion` reports what it chose. */
  version?: string | undefined;
  /** Input tensor name; default `features`. */
  inputName?: string | undefined;
  /** Output tensor name; default `probability`. */
  outputName?: string | undefined;
}

export interface Prediction {
  /** One score per input row, in order. */
  scores: number[];
  /** The version that produced the scores (as the backend reported it). */
  modelVersion: string;
}

/** One backend infer call, reported after it settles. */
export interface InferEvent {
  tenantId: string;
  backend: string;
  model: string;
  /** The configured version, or `default` when unpinned. */
  version: string;
  /** Rows in the call (the batch size). */
  rows: number;
  durationMs: number;
  outcome: 'success' | 'error';
  /** The error's code when `outcome` is `error`. */
  errorCode?: ErrorCode;
}

export interface MicroBatchSettings {
  enabled: boolean;
  windowMs: number;
  maxBatchSize: number;
  /** Batches of one (tenant, model, version) scored at once; see `MicroBatcherOptions`. */
  maxInFlight?: number | undefined;
}

export interface PredictorOptions {
  /** The client for a backend name; `undefined` (or a throw) → `BACKEND_UNAVAILABLE`. */
  clients: (backend: string) => InferenceClient | undefined;
  /** `inference.microBatch` from the config. */
  microBatch: MicroBatchSettings;
  /** Called after every backend infer call; exceptions are swallowed. */
  onInfer?: (event: InferEvent) => void;
  /** Micro-batchers kept at most (least recently used are dropped). Default 10 000. */
  maxBatchers?: number;
  /** A batcher unused this long is dropped. Default 5 min. */
  batcherIdleMs?: number;
  /** Counters to record into; default a fresh set, read with `stats()`. */
  stats?: InferStats;
}

export interface Predictor {
  /**
   * Scores `rows` (each a row of the model's features, all the same length) for one tenant.
   * Concurrent calls for the same (tenant, backend, model, version) may share one backend
   * call; calls of different tenants never do. Errors: `BAD_USER_INPUT` for malformed rows,
   * otherwise the client's `BACKEND_UNAVAILABLE` / `BACKEND_TIMEOUT`, shared by every caller
   * whose rows were in the failed batch (all of them this tenant's). The backend call carries
   * the tenant, so the client's breakers contain its failures (see `resilience/policy.ts`),
   * and the origins of the requests whose rows it holds (`originHeaders`: their ids, the
   * first one's trace context).
   */
  predict(
    tenantId: string,
    ref: ModelRef,
    rows: number[][],
    origin: RequestOrigin,
  ): Promise<Prediction>;
  /** Counters per (tenant, backend, model, version). */
  stats(): InferStatsEntry[];
  /** Micro-batchers currently held (for tests and gauges). */
  batcherCount(): number;
}

function validateRows(rows: unknown): number {
  if (!Array.isArray(rows)) throw new GatewayError('BAD_USER_INPUT', 'rows must be an array');
  let width = -1;
  for (let r = 0; r < rows.length; r++) {
    const row: unknown = rows[r];
    if (!Array.isArray(row) || row.length === 0) {
      throw new GatewayError('BAD_USER_INPUT', `row ${r} must be a non-empty array of numbers`);
    }
    if (width === -1) width = row.length;
    else if (row.length !== width) {
      throw new GatewayError(
        'BAD_USER_INPUT',
        `row ${r} has ${row.length} features, row 0 has ${width}`,
      );
    }
    for (let f = 0; f < row.length; f++) {
      const v: unknown = row[f];
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new GatewayError('BAD_USER_INPUT', `row ${r} feature ${f} is not a finite number`);
      }
      // Checked here, before the row joins a micro-batch, so it cannot fail the batch's others.
      if (Math.abs(v) > FP32_MAX) {
        throw new GatewayError(
          'BAD_USER_INPUT',
          `row ${r} feature ${f} is outside the FP32 range the model takes (±${FP32_MAX})`,
        );
      }
    }
  }
  return width;
}

/**
 * The one entry point for predictions: validates rows, routes them to one micro-batcher per
 * (tenant, backend, model, version, feature count, tensor names) and counts what it does.
 * Because the tenant is part of the batcher key, a batch can only ever hold one tenant's rows.
 */
export function createPredictor(options: PredictorOptions): Predictor {
  const { clients, microBatch, onInfer } = options;
  if (typeof clients !== 'function') {
    throw new TypeError('createPredictor: clients must be a function (backend name → client)');
  }
  const stats = options.stats ?? createInferStats();
  const batchers = new LRUCache<string, MicroBatcher<string>>({
    max: options.maxBatchers ?? DEFAULT_MAX_BATCHERS,
    ttl: options.batcherIdleMs ?? DEFAULT_BATCHER_IDLE_MS,
    updateAgeOnGet: true,
    // Dropping a batcher loses nothing: its pending timer still flushes what it holds.
  });

  function report(event: InferEvent): void {
    if (!onInfer) return;
    try {
      onInfer(event);
    } catch {
      // A metrics hook must never change a prediction.
    }
  }

  function resolveClient(backend: string): InferenceClient {
    let client: InferenceClient | undefined;
    try {
      client = clients(backend);
    } catch (error) {
      if (isGatewayError(error)) throw error;
      client = undefined;
    }
    if (client === undefined) {
      throw new GatewayError('BACKEND_UNAVAILABLE', 'Inference backend not configured', {
        cause: new Error(`no inference backend named ${JSON.stringify(backend)}`),
      });
    }
    return client;
  }

  function createBatcher(
    ref: ModelRef,
    featureCount: number,
    key: InferStatsKey,
  ): MicroBatcher<string> {
    return createMicroBatcher<string>({
      enabled: microBatch.enabled,
      windowMs: microBatch.windowMs,
      maxBatchSize: microBatch.maxBatchSize,
      ...(microBatch.maxInFlight === undefined ? {} : { maxInFlight: microBatch.maxInFlight }),
      execute: async (rows, origins) => {
        const started = performance.now();
        try {
          const client = resolveClient(ref.backend);
          const result = await client.infer({
            model: ref.model,
            version: ref.version,
            inputs: rows,
            featureCount,
            inputName: ref.inputName,
            outputName: ref.outputName,
            tenant: key.tenantId,
            headers: originHeaders(origins),
          });
          const durationMs = performance.now() - started;
          stats.recordInfer(key, rows.length, durationMs, true);
          report({ ...key, rows: rows.length, durationMs, outcome: 'success' });
          return { scores: result.scores, meta: result.modelVersion };
        } catch (error) {
          const durationMs = performance.now() - started;
          stats.recordInfer(key, rows.length, durationMs, false);
          const errorCode = isGatewayError(error) ? error.code : 'BACKEND_UNAVAILABLE';
          report({ ...key, rows: rows.length, durationMs, outcome: 'error', errorCode });
          throw error;
        }
      },
    });
  }

  return {
    async predict(tenantId, ref, rows, origin) {
      if (typeof tenantId !== 'string' || tenantId === '') {
        throw new TypeError('predict: tenantId must be a non-empty string');
      }
      const featureCount = validateRows(rows);
      const key: InferStatsKey = {
        tenantId,
        backend: ref.backend,
        model: ref.model,
        version: ref.version ?? UNPINNED_VERSION_LABEL,
      };
      stats.recordPredict(key, rows.length);
      if (rows.length === 0) return { scores: [], modelVersion: ref.version ?? '' };
      const batcherKey = JSON.stringify([
        tenantId,
        ref.backend,
        ref.model,
        ref.version ?? null,
        featureCount,
        ref.inputName ?? null,
        ref.outputName ?? null,
      ]);
      let batcher = batchers.get(batcherKey);
      if (batcher === undefined) {
        batcher = createBatcher(ref, featureCount, key);
        batchers.set(batcherKey, batcher);
      }
      const { scores, meta } = await batcher.submitWithMeta(rows, origin);
      return { scores, modelVersion: meta ?? ref.version ?? '' };
    },
    stats: () => stats.snapshot(),
    batcherCount: () => batchers.size,
  };
}
