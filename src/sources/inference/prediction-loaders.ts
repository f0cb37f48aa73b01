import { createHash } from 'node:crypto';
import DataLoader from 'dataloader';
import type { TenantModelConfig } from '../../config/schema.js';
import { GatewayError } from '../../errors.js';
import { predictionKey } from '../../store/keys.js';
import type { Store } from '../../store/types.js';
import type { Logger } from '../../telemetry/logger.js';
import type { RequestOrigin } from '../../telemetry/tracing.js';
import type { Tenant } from '../../tenancy/tenant.js';

export interface PredictionResult {
  model: string;
  version: string;
  score: number;
  label: string;
  cached: boolean;
}

/** Where scores come from: the micro-batching predictor over the OIP v2 clients. */
export interface PredictionService {
  predict(
    tenantId: string,
    target: { backend: string; model: string; version?: string | undefined },
    rows: number[][],
    /** The request the rows are for: its id and trace context go to the model backend. */
    origin: RequestOrigin,
  ): Promise<{ scores: number[]; modelVersion: string }>;
}

/** One prediction-cache lookup: a batch's MGET (for metrics). */
export interface PredictionCacheEvent {
  tenantId: string;
  /** The tenant's logical model name. */
  model: string;
  hits: number;
  misses: number;
  /** The store did not answer; every row was scored without it. */
  failed: boolean;
}

export interface PredictionLoadersOptions {
  tenant: Tenant;
  predictor: PredictionService;
  /** The request these loaders serve (its id and trace context). */
  origin: RequestOrigin;
  /**
   * Read-through cache (one MGET per batch, pipelined write-back); omitted, or a TTL of 0 → no
   * cache: rows are neither hashed nor looked up.
   */
  cache?: Pick<Store, 'mget' | 'msetWithTtl'> | undefined;
  cacheTtlSeconds: number;
  log?: Logger | undefined;
  /** Told the outcome of every cache lookup; exceptions are swallowed. */
  onCacheLookup?: ((event: PredictionCacheEvent) => void) | undefined;
}

export interface PredictionLoaders {
  /** Scores `row` (the model's features, in order) with the tenant's logical model `name`. */
  load(name: string, row: readonly number[]): Promise<PredictionResult>;
  /**
   * The model's feature vector for an entity (booleans as 0/1); `valueOf` reads one feature
   * (a field or column name from the tenant's model config) off the entity.
   */
  featuresOf(name: string, valueOf: (feature: string) => unknown): number[];
}

/** The label of the highest threshold whose minimum is not above the score. */
export function labelFor(thresholds: Readonly<Record<string, number>>, score: number): string {
  let best: [string, number] | undefined;
  for (const [label, min] of Object.entries(thresholds)) {
    if (min <= score && (best === undefined || min > best[1])) best = [label, min];
  }
  return best?.[0] ?? 'unknown';
}

/** Hash of the row exactly as the model receives it (FP32), so equal inputs share a cache entry. */
export function inputHash(row: readonly number[]): string {
  return createHash('sha256').update(Float32Array.from(row)).digest('base64url').slice(0, 32);
}

function modelOf(tenant: Tenant, name: string): TenantModelConfig {
  // Own keys only: a model named `__proto__` or `constructor` must not find Object's.
  const model = Object.hasOwn(tenant.models, name) ? tenant.models[name] : undefined;
  if (!model) {
    throw new GatewayError('FORBIDDEN', `The model "${name}" is not configured for this tenant.`);
  }
  return model;
}

interface CachedScore {
  s: number;
  v: string;
}

function parseCached(text: string | null | undefined): CachedScore | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<CachedScore>;
    return typeof value.s === 'number' && typeof value.v === 'string'
      ? { s: value.s, v: value.v }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One DataLoader per logical model of the request's tenant: every prediction field of the
 * request joins one batch per model, which becomes one cache MGET and (for the misses) one
 * infer call through the micro-batcher. Cache keys carry the tenant, model and version.
 */
export function createPredictionLoaders(options: PredictionLoadersOptions): PredictionLoaders {
  const { tenant, predictor, origin, cacheTtlSeconds, log, onCacheLookup } = options;
  // Entries that are never written cannot be found: TTL 0 is no cache at all.
  const cache = cacheTtlSeconds > 0 ? options.cache : undefined;
  const loaders = new Map<string, DataLoader<readonly number[], PredictionResult>>();

  async function batch(
    name: string,
    rows: readonly (readonly number[])[],
  ): Promise<(PredictionResult | Error)[]> {
    const model = modelOf(tenant, name);
    const cacheVersion = model.version ?? 'latest';
    const keys = cache
      ? rows.map((row) => predictionKey(tenant.id, model.model, cacheVersion, inputHash(row)))
      : [];
    let hits: (string | null)[] = [];
    let cacheFailed = false;
    if (cache) {
      try {
        hits = await cache.mget(keys);
      } catch (error) {
        cacheFailed = true;
        // A store outage costs cache hits, never the answer.
        log?.warn(
          { err: (error as Error).message },
          'prediction cache unavailable; scoring without it',
        );
      }
    }
    const results: (PredictionResult | Error | undefined)[] = rows.map((_, i) => {
      const cached = parseCached(hits[i]);
      return (
        cached && {
          model: name,
          version: cached.v,
          score: cached.s,
          label: labelFor(model.thresholds, cached.s),
          cached: true,
        }
      );
    });
    const missing = results.flatMap((result, i) => (result === undefined ? [i] : []));
    if (cache && onCacheLookup) {
      try {
        onCacheLookup({
          tenantId: tenant.id,
          model: name,
          hits: rows.length - missing.length,
          misses: missing.length,
          failed: cacheFailed,
        });
      } catch {
        // A metrics hook must never change a prediction.
      }
    }
    if (missing.length === 0) return results as PredictionResult[];
    try {
      const { scores, modelVersion } = await predictor.predict(
        tenant.id,
        { backend: model.backend, model: model.model, version: model.version },
        missing.map((i) => [...(rows[i] ?? [])]),
        origin,
      );
      const writes: { key: string; value: string }[] = [];
      missing.forEach((rowIndex, j) => {
        const score = scores[j] ?? Number.NaN;
        results[rowIndex] = {
          model: name,
          version: modelVersion,
          score,
          label: labelFor(model.thresholds, score),
          cached: false,
        };
        if (cache && Number.isFinite(score)) {
          writes.push({
            key: keys[rowIndex] ?? '',
            value: JSON.stringify({ s: score, v: modelVersion }),
          });
        }
      });
      if (cache && writes.length > 0 && cacheTtlSeconds > 0) {
        // Write-back is off the response path: the answer does not wait for the cache.
        cache.msetWithTtl(writes, cacheTtlSeconds).catch((error: unknown) => {
          log?.warn({ err: (error as Error).message }, 'prediction cache write failed');
        });
      }
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      for (const i of missing) results[i] = failure;
    }
    return results.map((r) => r ?? new Error('prediction missing'));
  }

  function loaderFor(name: string): DataLoader<readonly number[], PredictionResult> {
    let loader = loaders.get(name);
    if (!loader) {
      loader = new DataLoader((rows) => batch(name, rows), {
        cacheKeyFn: (row) => row.join(','),
        name: `prediction(${name}):${tenant.id}`,
      });
      loaders.set(name, loader);
    }
    return loader;
  }

  return {
    load: async (name, row) => {
      modelOf(tenant, name);
      return loaderFor(name).load(row);
    },
    featuresOf(name, valueOf) {
      const model = modelOf(tenant, name);
      return model.features.map((feature) => {
        const value = valueOf(feature);
        if (typeof value === 'boolean') return value ? 1 : 0;
        // int8 and numeric columns may arrive as text from the driver.
        if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) {
          return Number(value);
        }
        if (typeof value === 'number' && Number.isFinite(value)) return value;
        // A tenant config naming a field the entity lacks: an operator error, masked for clients.
        throw new Error(`model ${name}: feature ${feature} is not a numeric field of the entity`);
      });
    },
  };
}
