import type { Device, DeviceCall, DeviceCounters } from './device.js';

/**
 * Infer counters for tests and demos (not part of the protocol): how many infer calls and
 * rows each `<model>/<version>` served, how many infer calls were refused, and which requests
 * the latest calls said they were made for.
 */

/** Infer calls kept in `recentCalls`, the oldest dropped first. */
export const MAX_RECENT_CALLS = 50;

/** One infer call as its caller named it: the headers that tie it to the caller's requests. */
export interface RecentCall {
  /** `<model>/<version>`, or `unresolved`. */
  model: string;
  /** Rows of the call; 0 when it was refused before they were read. */
  rows: number;
  /** Whether it was answered 200. */
  ok: boolean;
  /** The `x-request-id` header as sent (a batching caller may list several, comma-separated). */
  requestId?: string;
  /** The `traceparent` header as sent. */
  traceparent?: string;
  /** Whether the inputs came as binary tensor data. */
  binary?: boolean;
  /** Which instance of the model's device executed it, and when: only for a model with one. */
  device?: DeviceCall;
}

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
  /** The last {@link MAX_RECENT_CALLS} infer calls, oldest first. */
  recentCalls: RecentCall[];
  /** Per `<model>/<version>` that has a device: its settings and counters. */
  devices: Record<string, DeviceCounters>;
  /** When the counters were last reset (ISO 8601). */
  since: string;
}

/** Mutable counters behind `GET /stats` and `POST /stats/reset`. */
export interface ServerStats {
  recordInfer(key: string, rows: number): void;
  recordInferError(key: string): void;
  /** Keeps `call` in `recentCalls` (every infer call, answered or refused). */
  recordCall(call: RecentCall): void;
  snapshot(): StatsSnapshot;
  reset(): void;
}

/** Creates zeroed counters over `devices` (reset with them); `now` is injectable for tests. */
export function createServerStats(
  devices: ReadonlyMap<string, Device> = new Map(),
  now: () => Date = () => new Date(),
): ServerStats {
  let requests = new Map<string, number>();
  let rows = new Map<string, number>();
  let errors = new Map<string, number>();
  let recent: RecentCall[] = [];
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
    recordCall(call) {
      recent.push(call);
      if (recent.length > MAX_RECENT_CALLS) recent.shift();
    },
    snapshot() {
      return {
        inferRequests: Object.fromEntries(requests),
        inferredRows: Object.fromEntries(rows),
        inferErrors: Object.fromEntries(errors),
        recentCalls: recent.map((call) => ({ ...call })),
        devices: Object.fromEntries([...devices].map(([key, device]) => [key, device.counters()])),
        since: since.toISOString(),
      };
    },
    reset() {
      requests = new Map();
      rows = new Map();
      errors = new Map();
      recent = [];
      for (const device of devices.values()) device.reset();
      since = now();
    },
  };
}
