/**
 * Infer counters for tests and demos (not part of the protocol): how many infer calls and
 * rows each `<model>/<version>` served, and how many infer calls were refused.
 */

/** The JSON body of `GET /stats`. */
export interface StatsSnapshot {
  /** Successful infer calls per `<model>/<version>`. */
  inferRequests: Record<string, number>;
  /** Rows (first dimension) inferred by those calls per `<model>/<version>`. */
  inferredRows: Record<string, number>;
  /**
   * Infer calls answered with an error, per `<model>/<version>` when the model and version
   * resolved, else under `unresolved` (a fixed key, so junk URLs cannot grow the map).
   */
  inferErrors: Record<string, number>;
  /** When the counters were last reset (ISO 8601). */
  since: string;
}

/** Mutable counters behind `GET /stats` and `POST /stats/reset`. */
export interface ServerStats {
  recordInfer(key: string, rows: number): void;
  recordInferError(key: string): void;
  snapshot(): StatsSnapshot;
  reset(): void;
}

/** Creates zeroed counters; `now` is injectable for tests. */
export function createServerStats(now: () => Date = () => new Date()): ServerStats {
  let requests = new Map<string, number>();
  let rows = new Map<string, number>();
  let errors = new Map<string, number>();
  let since = now();
  const add = (map: Map<string, number>, key: string, by: number): void => {
    map.set(key, (map.get(key) ?? 0) + by);
  };
  return {
    recordInfer(key, n) {
      add(requests, key, 1);
      add(rows, key, n);
    },
    recordInferError(key) {
      add(errors, key, 1);
    },
    snapshot() {
      return {
        inferRequests: Object.fromEntries(requests),
        inferredRows: Object.fromEntries(rows),
        inferErrors: Object.fromEntries(errors),
        since: since.toISOString(),
      };
    },
    reset() {
      requests = new Map();
      rows = new Map();
      errors = new Map();
      since = now();
    },
  };
}
