/** Milliseconds since an arbitrary origin; injected so tests can move time by hand. */
export interface Clock {
  now(): number;
}

/** The default clock: monotonic, so wall-clock jumps cannot open or close a breaker. */
export const MONOTONIC_CLOCK: Clock = { now: () => performance.now() };
