/**
 * Why a store call failed. All three mean "degrade": treat a read as a miss, fall back to
 * local limits, skip the write. They differ only for logs and metrics.
 * - `STORE_UNAVAILABLE`: not connected (outage, reconnecting, closed); nothing was sent.
 * - `STORE_TIMEOUT`: sent (or queued) but no reply within the deadline; it may have run.
 * - `STORE_FAILED`: the store answered with an error (e.g. a script error, `OOM`).
 */
export type StoreErrorCode = 'STORE_UNAVAILABLE' | 'STORE_TIMEOUT' | 'STORE_FAILED';

/** The one error a `Store` rejects with at run time. Its message is for logs, not clients. */
export class StoreError extends Error {
  override name = 'StoreError';
  readonly code: StoreErrorCode;
  /** The store operation, e.g. `get`, `rateLimit`. */
  readonly operation: string;

  constructor(code: StoreErrorCode, operation: string, message: string, options?: ErrorOptions) {
    super(`${operation}: ${message}`, options);
    this.code = code;
    this.operation = operation;
  }
}

export function isStoreError(error: unknown): error is StoreError {
  return error instanceof StoreError;
}
