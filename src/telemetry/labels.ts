/** The label value that stands for every value beyond a bound. */
export const OVERFLOW_LABEL = 'other';

/**
 * Maps raw values (tenant ids, operation names) to metric label values, keeping at most `max`
 * distinct ones: first come, first served, for the life of the process; every later value
 * becomes `overflow`.
 *
 * First-come rather than top-N: a label, once given, never changes meaning, so counters stay
 * monotonic and dashboards do not see series vanish and reappear when the ranking shifts; and
 * it needs no per-value counting beyond the bound, so memory stays O(max) whatever the traffic.
 * The cost is that which tenants get a label depends on the order they first appear after a
 * start; with at most `max` tenants configured, which is the normal case, every one has its own.
 */
export interface LabelBound {
  (value: string): string;
  /** Distinct values holding a label of their own. */
  readonly size: number;
}

export function createLabelBound(max: number, overflow: string = OVERFLOW_LABEL): LabelBound {
  if (!Number.isInteger(max) || max < 0) {
    throw new TypeError(`createLabelBound: max must be a non-negative integer, got ${max}`);
  }
  const kept = new Set<string>();
  const bound = (value: string): string => {
    if (kept.has(value)) return value;
    if (kept.size >= max) return overflow;
    kept.add(value);
    return value;
  };
  Object.defineProperty(bound, 'size', { get: () => kept.size, enumerable: true });
  return bound as LabelBound;
}
