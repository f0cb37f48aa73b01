/** Upper bounds of the rows-per-infer-call histogram (Prometheus `le`); `+Inf` is implied. */
export const BATCH_ROWS_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] as const;

/** Label used when a model's version is not pinned (the server's version policy chooses). */
export const UNPINNED_VERSION_LABEL = 'default';

export interface InferStatsKey {
  tenantId: string;
  backend: string;
  model: string;
  /** The configured version, or `default` when unpinned. */
  version: string;
}

export interface InferStatsEntry extends InferStatsKey {
  /** `predict()` calls (before micro-batching joins them). */
  predictCalls: number;
  /** Rows asked for through `predict()`. */
  predictRows: number;
  /** Backend infer calls (one per executed batch), successful or not. */
  inferCalls: number;
  /** Infer calls that ended in an error. */
  inferErrors: number;
  /** Rows sent to the backend, summed over infer calls. */
  inferRows: number;
  /** Largest batch sent, in rows. */
  maxBatchRows: number;
  /** Sum of infer call durations, ms. */
  inferDurationMsSum: number;
  /**
   * Cumulative histogram of rows per infer call, Prometheus-style: `counts[i]` calls had at most
   * `BATCH_ROWS_BUCKETS[i]` rows; the final element counts every call (`+Inf`).
   */
  batchRowsHistogram: number[];
}

export interface InferStats {
  recordPredict(key: InferStatsKey, rows: number): void;
  recordInfer(key: InferStatsKey, rows: number, durationMs: number, ok: boolean): void;
  /** A copy of every series, in first-seen order. */
  snapshot(): InferStatsEntry[];
}

/**
 * In-process counters per (tenant, backend, model, version). The series count is bounded by
 * configuration (tenants × their models), not by traffic, so nothing is evicted.
 */
export function createInferStats(): InferStats {
  const series = new Map<string, InferStatsEntry>();

  function entryFor(key: InferStatsKey): InferStatsEntry {
    const id = JSON.stringify([key.tenantId, key.backend, key.model, key.version]);
    let entry = series.get(id);
    if (entry === undefined) {
      entry = {
        tenantId: key.tenantId,
        backend: key.backend,
        model: key.model,
        version: key.version,
        predictCalls: 0,
        predictRows: 0,
        inferCalls: 0,
        inferErrors: 0,
        inferRows: 0,
        maxBatchRows: 0,
        inferDurationMsSum: 0,
        batchRowsHistogram: new Array<number>(BATCH_ROWS_BUCKETS.length + 1).fill(0),
      };
      series.set(id, entry);
    }
    return entry;
  }

  return {
    recordPredict(key, rows) {
      const entry = entryFor(key);
      entry.predictCalls += 1;
      entry.predictRows += rows;
    },
    recordInfer(key, rows, durationMs, ok) {
      const entry = entryFor(key);
      entry.inferCalls += 1;
      if (!ok) entry.inferErrors += 1;
      entry.inferRows += rows;
      entry.maxBatchRows = Math.max(entry.maxBatchRows, rows);
      entry.inferDurationMsSum += durationMs;
      const histogram = entry.batchRowsHistogram;
      for (let i = 0; i < BATCH_ROWS_BUCKETS.length; i++) {
        if (rows <= BATCH_ROWS_BUCKETS[i]!) histogram[i]! += 1;
      }
      histogram[BATCH_ROWS_BUCKETS.length]! += 1;
    },
    snapshot() {
      return [...series.values()].map((e) => ({
        ...e,
        batchRowsHistogram: [...e.batchRowsHistogram],
      }));
    },
  };
}
