import { MONOTONIC_CLOCK, type Clock } from './clock.js';

export const DEFAULT_SLIDING_WINDOW_BUCKETS = 10;

export interface SlidingWindowOptions<F extends string> {
  /** Length of the window; counts older than this no longer add up. */
  windowMs: number;
  /** The counters kept, e.g. `['successes', 'failures']`. */
  fields: readonly F[];
  /** Slices of the window (its resolution). Default 10. */
  buckets?: number;
  /** Time source; default monotonic `performance.now()`. */
  clock?: Clock;
  /** Names the owner in option errors, e.g. `createCircuitBreaker: windowMs`. */
  owner?: string;
}

/** Named counters over the last `windowMs`, in O(buckets) memory whatever the traffic. */
export interface SlidingWindow<F extends string> {
  /** Adds `n` (default 1) to `field` now. */
  add(field: F, n?: number): void;
  /** Each field's sum over the window ending now. */
  totals(): Record<F, number>;
  /** Forgets everything. */
  clear(): void;
}

/**
 * A ring of time buckets: each slot holds one bucket-sized slice of time (`epoch`), and a slot
 * whose epoch is stale is reset when next written. Time is read lazily from the injected clock,
 * so nothing runs on a timer and tests move time by hand. The window is approximate at its
 * trailing edge by at most one bucket (`windowMs / buckets`), which is what the circuit breaker
 * and the retry budget can afford in exchange for constant memory.
 */
export function createSlidingWindow<F extends string>(
  options: SlidingWindowOptions<F>,
): SlidingWindow<F> {
  const owner = options.owner ?? 'createSlidingWindow';
  const { windowMs, fields } = options;
  const size = options.buckets ?? DEFAULT_SLIDING_WINDOW_BUCKETS;
  if (!(Number.isFinite(windowMs) && windowMs > 0)) {
    throw new TypeError(`${owner}: windowMs must be a positive number, got ${windowMs}`);
  }
  if (!(Number.isInteger(size) && size >= 1)) {
    throw new TypeError(`${owner}: buckets must be a positive integer, got ${size}`);
  }
  if (fields.length === 0) throw new TypeError(`${owner}: fields must name at least one counter`);
  const clock = options.clock ?? MONOTONIC_CLOCK;
  const bucketMs = windowMs / size;
  const zero = (): Record<F, number> =>
    Object.fromEntries(fields.map((f) => [f, 0])) as Record<F, number>;
  const slots = Array.from({ length: size }, () => ({ epoch: -1, counts: zero() }));

  function current() {
    const epoch = Math.floor(clock.now() / bucketMs);
    const slot = slots[((epoch % size) + size) % size]!;
    if (slot.epoch !== epoch) {
      slot.epoch = epoch;
      slot.counts = zero();
    }
    return slot;
  }

  return {
    add(field, n = 1) {
      current().counts[field] += n;
    },
    totals() {
      const oldest = Math.floor(clock.now() / bucketMs) - size + 1;
      const sums = zero();
      for (const slot of slots) {
        if (slot.epoch < oldest) continue;
        for (const f of fields) sums[f] += slot.counts[f];
      }
      return sums;
    },
    clear() {
      for (const slot of slots) {
        slot.epoch = -1;
        slot.counts = zero();
      }
    },
  };
}
