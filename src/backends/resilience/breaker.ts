import { GatewayError } from '../../errors.js';
import { MONOTONIC_CLOCK, type Clock } from './clock.js';
import { createSlidingWindow } from './sliding-window.js';

export const DEFAULT_BREAKER_FAILURE_THRESHOLD = 5;
export const DEFAULT_BREAKER_ERROR_RATE_THRESHOLD = 0.5;
export const DEFAULT_BREAKER_WINDOW_MS = 10_000;
export const DEFAULT_BREAKER_MINIMUM_REQUESTS = 20;
export const DEFAULT_BREAKER_OPEN_MS = 5_000;
export const DEFAULT_BREAKER_HALF_OPEN_MAX_PROBES = 1;

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open a closed circuit. Default 5. */
  failureThreshold?: number;
  /** Failure ratio (0 < r ≤ 1) over the rolling window that opens the circuit. Default 0.5. */
  errorRateThreshold?: number;
  /** Length of the rolling window for the error rate. Default 10 s. */
  windowMs?: number;
  /** The error rate is ignored until the window holds this many outcomes. Default 20. */
  minimumRequests?: number;
  /** How long an open circuit fails fast before letting probes through. Default 5 s. */
  openMs?: number;
  /** Calls let through at once while half-open. Default 1. */
  halfOpenMaxProbes?: number;
  /** Time source; default monotonic `performance.now()`. */
  clock?: Clock;
  /** Called on every transition (for metrics and logs); exceptions are swallowed. */
  onStateChange?: (from: CircuitState, to: CircuitState) => void;
  /**
   * The message of the error an open circuit throws; safe to show a client. Default
   * `Backend unavailable (circuit open)`.
   */
  openMessage?: string;
}

/**
 * The right to make one call. Settle it exactly once; later calls are ignored. A permit
 * issued before the circuit last changed state is stale and its outcome is ignored, so a slow
 * call started while closed cannot close a circuit that has since opened.
 */
export interface CircuitPermit {
  /** The backend answered properly. */
  success(): void;
  /** The backend failed (connection, timeout, 5xx, malformed answer). */
  failure(): void;
  /** The outcome says nothing about the backend's health (caller cancelled, 4xx). */
  release(): void;
}

export interface CircuitBreakerSnapshot {
  state: CircuitState;
  consecutiveFailures: number;
  windowRequests: number;
  windowFailures: number;
}

export interface CircuitBreaker {
  /** The current state; an open circuit whose `openMs` has passed reports `half-open`. */
  state(): CircuitState;
  /**
   * A permit for one call, or a `GatewayError('BACKEND_UNAVAILABLE')` thrown at once when the
   * circuit is open (or half-open with all probe slots taken). Nothing is called in that case.
   */
  acquire(): CircuitPermit;
  snapshot(): CircuitBreakerSnapshot;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new TypeError(`createCircuitBreaker: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

function positiveNumber(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new TypeError(`createCircuitBreaker: ${name} must be a positive number, got ${value}`);
  }
  return value;
}

export const DEFAULT_BREAKER_OPEN_MESSAGE = 'Backend unavailable (circuit open)';

/**
 * A circuit breaker (one per backend, or per tenant and backend: see `policy.ts`). Closed: calls pass; `failureThreshold` consecutive failures,
 * or an error rate of at least `errorRateThreshold` over `windowMs` (once `minimumRequests`
 * outcomes are in the window), open it. Open: `acquire()` throws without calling the backend.
 * After `openMs` it is half-open: up to `halfOpenMaxProbes` calls go through; the first success
 * closes it, a failure reopens it for another `openMs`.
 *
 * Hand-written rather than `opossum`: opossum wraps the call itself with its own timeout and
 * fallback, counts only a time-window percentage (no consecutive-failure trigger, no per-error
 * classification beyond a single `errorFilter`), and schedules the half-open transition on a
 * real timer, which makes an injectable clock impossible. Here the client decides per outcome
 * (success / failure / neutral) and time is read lazily from the injected clock.
 */
export function createCircuitBreaker(options: CircuitBreakerOptions = {}): CircuitBreaker {
  const failureThreshold = positiveInteger(
    'failureThreshold',
    options.failureThreshold ?? DEFAULT_BREAKER_FAILURE_THRESHOLD,
  );
  const errorRateThreshold = options.errorRateThreshold ?? DEFAULT_BREAKER_ERROR_RATE_THRESHOLD;
  if (!(errorRateThreshold > 0 && errorRateThreshold <= 1)) {
    throw new TypeError(
      `createCircuitBreaker: errorRateThreshold must be in (0, 1], got ${errorRateThreshold}`,
    );
  }
  const windowMs = positiveNumber('windowMs', options.windowMs ?? DEFAULT_BREAKER_WINDOW_MS);
  const minimumRequests = positiveInteger(
    'minimumRequests',
    options.minimumRequests ?? DEFAULT_BREAKER_MINIMUM_REQUESTS,
  );
  const openMs = positiveNumber('openMs', options.openMs ?? DEFAULT_BREAKER_OPEN_MS);
  const halfOpenMaxProbes = positiveInteger(
    'halfOpenMaxProbes',
    options.halfOpenMaxProbes ?? DEFAULT_BREAKER_HALF_OPEN_MAX_PROBES,
  );
  const clock = options.clock ?? MONOTONIC_CLOCK;
  const onStateChange = options.onStateChange;

  const openMessage = options.openMessage ?? DEFAULT_BREAKER_OPEN_MESSAGE;
  const window = createSlidingWindow({
    windowMs,
    fields: ['successes', 'failures'],
    clock,
    owner: 'createCircuitBreaker',
  });

  let current: CircuitState = 'closed';
  let generation = 0;
  let consecutiveFailures = 0;
  let openedAt = 0;
  let probesInFlight = 0;

  function windowTotals(): { requests: number; failures: number } {
    const { successes, failures } = window.totals();
    return { requests: successes + failures, failures };
  }

  function resetCounts(): void {
    consecutiveFailures = 0;
    window.clear();
  }

  function transition(to: CircuitState): void {
    const from = current;
    if (from === to) return;
    current = to;
    generation += 1;
    probesInFlight = 0;
    if (to === 'open') openedAt = clock.now();
    if (to !== 'half-open') resetCounts();
    if (onStateChange) {
      try {
        onStateChange(from, to);
      } catch {
        // A metrics hook must never change the outcome of a call.
      }
    }
  }

  function refresh(): CircuitState {
    if (current === 'open' && clock.now() - openedAt >= openMs) transition('half-open');
    return current;
  }

  function rejected(): GatewayError {
    return new GatewayError('BACKEND_UNAVAILABLE', openMessage);
  }

  return {
    state: refresh,

    acquire(): CircuitPermit {
      const state = refresh();
      if (state === 'open') throw rejected();
      const probe = state === 'half-open';
      if (probe) {
        if (probesInFlight >= halfOpenMaxProbes) throw rejected();
        probesInFlight += 1;
      }
      const issuedIn = generation;
      let settled = false;

      function settle(outcome: 'success' | 'failure' | 'neutral'): void {
        if (settled) return;
        settled = true;
        if (issuedIn !== generation) return;
        if (probe) {
          probesInFlight -= 1;
          if (outcome === 'success') transition('closed');
          else if (outcome === 'failure') transition('open');
          return;
        }
        if (outcome === 'neutral') return;
        if (outcome === 'success') {
          consecutiveFailures = 0;
          window.add('successes');
          return;
        }
        consecutiveFailures += 1;
        window.add('failures');
        if (consecutiveFailures >= failureThreshold) {
          transition('open');
          return;
        }
        const { requests, failures } = windowTotals();
        if (requests >= minimumRequests && failures / requests >= errorRateThreshold) {
          transition('open');
        }
      }

      return {
        success: () => settle('success'),
        failure: () => settle('failure'),
        release: () => settle('neutral'),
      };
    },

    snapshot(): CircuitBreakerSnapshot {
      const state = refresh();
      const { requests, failures } = windowTotals();
      return { state, consecutiveFailures, windowRequests: requests, windowFailures: failures };
    },
  };
}
