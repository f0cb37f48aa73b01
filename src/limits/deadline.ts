import { GatewayError } from '../errors.js';
import { withTimeout } from '../util/timeout.js';

/**
 * One request's deadline: an absolute time (ms since the epoch) by which every backend call it
 * makes must have answered. Backends keep their own, longer timeouts (statement timeout,
 * inference timeout, connect timeout); the deadline bounds the request as a whole, so a slow
 * backend turns into coded field errors (partial results) instead of a request that waits for
 * the sum of every timeout on its path.
 */
export interface Deadline {
  /** Epoch milliseconds. */
  readonly at: number;
  /** Milliseconds left (0 when passed, or when the request has ended). */
  remaining(): number;
  /** Aborted when the request ends before the deadline (its client went away). */
  readonly ended?: AbortSignal | undefined;
}

/**
 * A deadline `ms` from now. `ended`, when given, ends it early: once it aborts, nothing of the
 * request waits for a backend any more, so a request whose client is gone finishes at once.
 */
export function createDeadline(
  ms: number,
  now: () => number = Date.now,
  ended?: AbortSignal,
): Deadline {
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new TypeError(`the request deadline must be a positive number of ms; got ${ms}`);
  }
  const at = now() + ms;
  return { at, ended, remaining: () => (ended?.aborted ? 0 : Math.max(0, at - now())) };
}

function expired(what: string, deadline: Deadline): GatewayError {
  if (deadline.ended?.aborted) {
    return new GatewayError(
      'BACKEND_UNAVAILABLE',
      `The request ended before the ${what} answered.`,
    );
  }
  return new GatewayError(
    'BACKEND_TIMEOUT',
    `The ${what} did not answer within the request deadline.`,
  );
}

/**
 * `work` or, if the deadline comes first, a `BACKEND_TIMEOUT` GatewayError (`BACKEND_UNAVAILABLE`
 * when the request ended first). The work itself is not cancelled (its own timeout ends it);
 * its late outcome is dropped, never unhandled.
 */
export function raceDeadline<T>(work: Promise<T>, deadline: Deadline, what: string): Promise<T> {
  return withTimeout(
    work,
    deadline.remaining(),
    () => {
      throw expired(what, deadline);
    },
    deadline.ended,
  );
}

/**
 * A view of `target` whose promise-returning methods answer within `deadline` (see
 * {@link raceDeadline}); other members pass through. One per request: the data source and
 * the predictor are wrapped for that request only, nothing is shared.
 */
export function withDeadline<T extends object>(target: T, deadline: Deadline, what: string): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value: unknown = Reflect.get(object, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(object, args);
        return result instanceof Promise ? raceDeadline(result, deadline, what) : result;
      };
    },
  });
}
