import { describe, expect, it } from 'vitest';
import { createConcurrencyGates } from '../../../../src/sources/http/gates.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('per-tenant concurrency gates', () => {
  it('never runs more than max calls of one key at once, hands slots over in order, and keeps keys apart', async () => {
    const gates = createConcurrencyGates();
    const releases = Array.from({ length: 5 }, () => deferred());
    let peak = 0;
    let running = 0;
    const order: number[] = [];
    const calls = releases.map((d, i) =>
      gates.run('acme\u0000tickets', 2, async () => {
        running += 1;
        peak = Math.max(peak, running);
        order.push(i);
        await d.promise;
        running -= 1;
      }),
    );
    // Another tenant is not held up by acme's queue.
    await gates.run('globex\u0000tickets', 2, async () => {});
    expect(gates.inFlight('acme\u0000tickets')).toBe(2);
    for (const d of releases) {
      d.resolve();
      await new Promise((r) => setImmediate(r));
      // A new caller arriving between hand-overs must not pass the bound either.
      expect(gates.inFlight('acme\u0000tickets')).toBeLessThanOrEqual(2);
    }
    await Promise.all(calls);
    expect(peak).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(gates.inFlight('acme\u0000tickets')).toBe(0);
  });

  it('frees the slot when the call fails', async () => {
    const gates = createConcurrencyGates();
    await expect(gates.run('k', 1, () => Promise.reject(new Error('boom')))).rejects.toThrow(
      'boom',
    );
    await expect(gates.run('k', 1, () => Promise.resolve(7))).resolves.toBe(7);
  });
});
