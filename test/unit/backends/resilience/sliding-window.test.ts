import { describe, expect, it } from 'vitest';
import { createSlidingWindow } from '../../../../src/backends/resilience/sliding-window.js';

function manual() {
  let t = 0;
  return {
    clock: { now: () => t },
    advance(ms: number) {
      t += ms;
    },
  };
}

describe('createSlidingWindow', () => {
  it('sums each counter over the window and forgets what is older', () => {
    const { clock, advance } = manual();
    const window = createSlidingWindow({ windowMs: 1_000, fields: ['a', 'b'], clock });
    window.add('a');
    window.add('b', 3);
    advance(500);
    window.add('a', 2);
    expect(window.totals()).toEqual({ a: 3, b: 3 });
    // The first slice (t = 0) leaves the window once a whole window has passed since it.
    advance(550);
    expect(window.totals()).toEqual({ a: 2, b: 0 });
    advance(1_000);
    expect(window.totals()).toEqual({ a: 0, b: 0 });
  });

  it('reuses its slots: memory does not grow with time or traffic', () => {
    const { clock, advance } = manual();
    const window = createSlidingWindow({ windowMs: 100, fields: ['n'], buckets: 4, clock });
    for (let i = 0; i < 1_000; i++) {
      window.add('n');
      advance(10);
    }
    // 100 ms of 4 slices of 25 ms: the last 7–10 adds are in the window.
    const { n } = window.totals();
    expect(n).toBeGreaterThanOrEqual(7);
    expect(n).toBeLessThanOrEqual(10);
  });

  it('clear() forgets everything', () => {
    const { clock } = manual();
    const window = createSlidingWindow({ windowMs: 1_000, fields: ['n'], clock });
    window.add('n', 5);
    window.clear();
    expect(window.totals()).toEqual({ n: 0 });
  });

  it('rejects invalid options, naming the owner and the field', () => {
    expect(() => createSlidingWindow({ windowMs: 0, fields: ['n'], owner: 'x' })).toThrow(
      /x: windowMs/,
    );
    expect(() => createSlidingWindow({ windowMs: 10, fields: ['n'], buckets: 0 })).toThrow(
      /buckets/,
    );
    expect(() => createSlidingWindow({ windowMs: 10, fields: [] })).toThrow(/fields/);
  });
});
