import { GatewayError } from '../errors.js';

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
 * A request's own deadline, as `createDeadline` makes it: it also knows when the request is
 * over, and every backend call of the request waits on it through one timer.
 */
export interface RequestDeadline extends Deadline {
  /**
   * The request ended before its answer (its client went away): calls still waiting fail as
   * `BACKEND_UNAVAILABLE` at once, later ones too, and `ended` aborts. Idempotent.
   */
  end(): void;
  /** `work`, or the deadline's error if it comes first (see {@link raceDeadline}). */
  race<T>(work: Promise<T>, what: string): Promise<T>;
}

interface Waiter {
  readonly what: string;
  reject(error: GatewayError): void;
}

/**
 * A deadline `ms` from now. `ended`, when given, ends it early: once it aborts, nothing of the
 * request waits for a backend any more, so a request whose client is gone finishes at once
 * (`end()` does the same without a signal). The calls waiting at one time share one timer,
 * cleared when none waits; `ended` is made on first read, so a request that never asks for
 * it costs no AbortController.
 */
export function createDeadline(
  ms: number,
  now: () => number = Date.now,
  ended?: AbortSignal,
): RequestDeadline {
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new TypeError(`the request deadline must be a positive number of ms; got ${ms}`);
  }
  const at = now() + ms;
  let over = false;
  let controller: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;
  const waiters = new Set<Waiter>();

  const deadline: RequestDeadline = {
    at,
    get ended(): AbortSignal {
      if (ended !== undefined) return ended;
      controller ??= new AbortController();
      if (over) controller.abort();
      return controller.signal;
    },
    remaining: () => (over ? 0 : Math.max(0, at - now())),
    end() {
      if (over) return;
      over = true;
      controller?.abort();
      expireAll();
    },
    race<T>(work: Promise<T>, what: string): Promise<T> {
      if (deadline.remaining() <= 0) {
        // Handled in every case, so a late rejection of `work` is never unhandled.
        work.then(
          () => undefined,
          () => undefined,
        );
        return Promise.reject(expired(what, over));
      }
      return new Promise<T>((resolve, reject) => {
        const waiter: Waiter = { what, reject };
        waiters.add(waiter);
        timer ??= setTimeout(expireAll, at - now());
        const done = (): boolean => {
          if (!waiters.delete(waiter)) return false;
          if (waiters.size === 0 && timer !== undefined) {
            clearTimeout(timer);
            timer = undefined;
          }
          return true;
        };
        work.then(
          (value) => done() && resolve(value),
          (error: unknown) => done() && reject(error),
        );
      });
    },
  };

  function expireAll(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const expiring = [...waiters];
    waiters.clear();
    for (const waiter of expiring) waiter.reject(expired(waiter.what, over));
  }

  ended?.addEventListener('abort', () => deadline.end(), { once: true });
  if (ended?.aborted) deadline.end();
  return deadline;
}

function expired(what: string, ended: boolean): GatewayError {
  if (ended) {
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
export function raceDeadline<T>(
  work: Promise<T>,
  deadline: RequestDeadline,
  what: string,
): Promise<T> {
  return deadline.race(work, what);
}

/**
 * A view of `target` whose promise-returning methods answer within `deadline` (see
 * {@link raceDeadline}); other members pass through. One per request: the data source and
 * the predictor are wrapped for that request only, nothing is shared.
 */
export function withDeadline<T extends object>(
  target: T,
  deadline: RequestDeadline,
  what: string,
): T {
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
