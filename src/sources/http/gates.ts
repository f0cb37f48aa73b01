/**
 * Concurrency gates shared by every request of the process: at most `max` calls in flight per
 * key (a tenant and a service), the rest waiting in order, so one tenant's burst cannot take
 * every connection of a service the tenants share.
 */
export interface ConcurrencyGates {
  run<T>(key: string, max: number, fn: () => Promise<T>): Promise<T>;
  /** Calls in flight for `key` (tests, metrics). */
  inFlight(key: string): number;
}

interface Gate {
  active: number;
  waiting: (() => void)[];
}

export function createConcurrencyGates(): ConcurrencyGates {
  const gates = new Map<string, Gate>();
  return {
    async run(key, max, fn) {
      let gate = gates.get(key);
      if (!gate) {
        gate = { active: 0, waiting: [] };
        gates.set(key, gate);
      }
      const g = gate;
      // A finished call hands its slot to the next waiter, so `active` never passes `max`.
      if (g.active >= max) await new Promise<void>((resolve) => g.waiting.push(resolve));
      else g.active += 1;
      try {
        return await fn();
      } finally {
        const next = g.waiting.shift();
        if (next) next();
        else {
          g.active -= 1;
          if (g.active === 0) gates.delete(key);
        }
      }
    },
    inFlight: (key) => gates.get(key)?.active ?? 0,
  };
}
