import { MONOTONIC_CLOCK, type Clock } from './clock.js';
import { createSlidingWindow } from './sliding-window.js';

export const DEFAULT_RETRY_BUDGET_RATIO = 0.2;
export const DEFAULT_RETRY_BUDGET_MIN_PER_SECOND = 10;
export const DEFAULT_RETRY_BUDGET_TTL_MS = 10_000;

export interface RetryBudgetOptions {
  /** Retries allowed per original request over the window: 0.2 → at most 20 % extra calls. */
  ratio?: number;
  /**
   * Retries per second allowed whatever the traffic, so a quiet backend can still retry a
   * dropped keep-alive connection. The window holds `minRetriesPerSecond × ttlMs / 1000` of them.
   */
  minRetriesPerSecond?: number;
  /** Length of the sliding window in which requests and retries are counted. Default 10 s. */
  ttlMs?: number;
  clock?: Clock;
}

export interface RetryBudget {
  /** Records one original request (a first attempt, never a retry). */
  deposit(): void;
  /** Takes one retry from the budget; `false` (and nothing taken) when it is spent. */
  tryWithdraw(): boolean;
  /** Retries still available now (may be fractional). */
  balance(): number;
}

/**
 * A retry budget in the manner of Finagle's `RetryBudget`: over a sliding window of `ttlMs`,
 * retries may not exceed `ratio` × requests plus a fixed reserve of
 * `minRetriesPerSecond × ttlMs / 1000`. Unlike a per-call attempt limit, this bounds the extra
 * load a fleet of callers puts on a struggling backend: when most calls fail, retries stop
 * once the budget is spent instead of multiplying traffic.
 *
 * Deposits are made per request rather than per success (gRPC's throttling) so that the bound
 * reads directly as "at most `ratio` extra calls per call"; the circuit breaker, not the
 * budget, is what stops traffic to a backend that fails everything.
 */
export function createRetryBudget(options: RetryBudgetOptions = {}): RetryBudget {
  const ratio = options.ratio ?? DEFAULT_RETRY_BUDGET_RATIO;
  const minPerSecond = options.minRetriesPerSecond ?? DEFAULT_RETRY_BUDGET_MIN_PER_SECOND;
  const ttlMs = options.ttlMs ?? DEFAULT_RETRY_BUDGET_TTL_MS;
  if (!(ratio >= 0 && ratio <= 10)) {
    throw new TypeError(`createRetryBudget: ratio must be in [0, 10], got ${ratio}`);
  }
  if (!(minPerSecond >= 0) || !Number.isFinite(minPerSecond)) {
    throw new TypeError(
      `createRetryBudget: minRetriesPerSecond must be a non-negative number, got ${minPerSecond}`,
    );
  }
  if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) {
    throw new TypeError(`createRetryBudget: ttlMs must be a positive number, got ${ttlMs}`);
  }
  const clock = options.clock ?? MONOTONIC_CLOCK;
  const reserve = (minPerSecond * ttlMs) / 1000;
  const window = createSlidingWindow({
    windowMs: ttlMs,
    fields: ['requests', 'retries'],
    clock,
    owner: 'createRetryBudget',
  });

  function balance(): number {
    const { requests, retries } = window.totals();
    return ratio * requests + reserve - retries;
  }

  return {
    deposit() {
      window.add('requests');
    },
    tryWithdraw() {
      if (balance() < 1) return false;
      window.add('retries');
      return true;
    },
    balance,
  };
}
