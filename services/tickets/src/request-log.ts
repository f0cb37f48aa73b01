/**
 * What the service saw, for tests and demos (not part of the API): counters behind `/_stats`
 * and the last data requests behind `/_requests`, so a test can count upstream calls per batch
 * and a canary can check that no request carried another tenant.
 */

/** How many data requests `/_requests` keeps (the oldest are dropped first). */
export const REQUEST_LOG_CAPACITY = 10_000;

/** One data request as `/_requests` lists it. */
export interface LoggedRequest {
  /** The verified `tenant` claim. */
  tenant: string;
  /** The verified `sub` claim. */
  subject: string;
  /** The URL path as sent, e.g. `/customers/c1/tickets`. */
  path: string;
  /** The query parameters (a repeated parameter's values joined with ","). */
  query: Record<string, string>;
  /** The customer ids the request asked for, after splitting and de-duplication. */
  customerIds: string[];
  /** Which tenant's API key it carried (never the key itself), see `Caller.apiKey`. */
  apiKey?: string;
  traceparent?: string;
  /** The `x-request-id` header. */
  requestId?: string;
  /** The status it was answered with. */
  status: number;
}

/** The JSON body of `GET /_stats`. */
export interface StatsSnapshot {
  /** Data requests received (refused ones included). */
  requests: number;
  /** Data requests per verified tenant (401s have no tenant and are not counted here). */
  byTenant: Record<string, number>;
  /** Data requests per route: `/tickets`, `/customers/{id}/tickets`. */
  byPath: Record<string, number>;
  /** Data requests per answered status. */
  byStatus: Record<string, number>;
  /** Customer ids asked for per verified tenant (the batch sizes summed). */
  customerIds: Record<string, number>;
}

/** Mutable counters and the bounded log of data requests. */
export interface RequestLog {
  /** Counts a data request on `route` answered with `status`; logs it when `entry` is given. */
  record(route: string, status: number, entry?: Omit<LoggedRequest, 'status'>): void;
  stats(): StatsSnapshot;
  /** Oldest first. */
  requests(): LoggedRequest[];
  /** Zeroes the counters and empties the log. */
  reset(): void;
}

export function createRequestLog(capacity = REQUEST_LOG_CAPACITY): RequestLog {
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new TypeError(`request log capacity must be a positive integer, got ${capacity}`);
  }
  let requests = 0;
  let byTenant = new Map<string, number>();
  let byPath = new Map<string, number>();
  let byStatus = new Map<string, number>();
  let customerIds = new Map<string, number>();
  // A ring: `next` is where the next entry goes; `size` grows to `capacity` and stays.
  let ring: LoggedRequest[] = [];
  let next = 0;
  const add = (map: Map<string, number>, key: string, by = 1): void => {
    map.set(key, (map.get(key) ?? 0) + by);
  };
  return {
    record(route, status, entry) {
      requests += 1;
      add(byPath, route);
      add(byStatus, String(status));
      if (entry === undefined) return;
      add(byTenant, entry.tenant);
      add(customerIds, entry.tenant, entry.customerIds.length);
      const logged = { ...entry, status };
      if (ring.length < capacity) ring.push(logged);
      else ring[next] = logged;
      next = (next + 1) % capacity;
    },
    stats() {
      return {
        requests,
        byTenant: Object.fromEntries(byTenant),
        byPath: Object.fromEntries(byPath),
        byStatus: Object.fromEntries(byStatus),
        customerIds: Object.fromEntries(customerIds),
      };
    },
    requests() {
      return ring.length < capacity ? [...ring] : [...ring.slice(next), ...ring.slice(0, next)];
    },
    reset() {
      requests = 0;
      byTenant = new Map();
      byPath = new Map();
      byStatus = new Map();
      customerIds = new Map();
      ring = [];
      next = 0;
    },
  };
}
