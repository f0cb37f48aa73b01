import { describe, expect, it } from 'vitest';
import { createRetryBudget } from '../../../../src/backends/resilience/retry-budget.js';

function withClock() {
  let t = 0;
  return {
    clock: { now: () => t },
    advance(ms: number) {
      t += ms;
    },
  };
}

function drain(budget: ReturnType<typeof createRetryBudget>): number {
  let n = 0;
  while (budget.tryWithdraw()) n++;
  return n;
}

describe('createRetryBudget', () => {
  it('allows ratio × requests plus the reserve, and no more', () => {
    const { clock } = withClock();
    const budget = createRetryBudget({ ratio: 0.2, minRetriesPerSecond: 1, ttlMs: 10_000, clock });
    for (let i = 0; i < 100; i++) budget.deposit();
    expect(drain(budget)).toBe(30);
    expect(budget.tryWithdraw()).toBe(false);
    for (let i = 0; i < 5; i++) budget.deposit();
    expect(drain(budget)).toBe(1);
  });

  it('forgets requests and retries older than the window', () => {
    const { clock, advance } = withClock();
    const budget = createRetryBudget({ ratio: 0.5, minRetriesPerSecond: 0, ttlMs: 1_000, clock });
    for (let i = 0; i < 10; i++) budget.deposit();
    expect(drain(budget)).toBe(5);
    advance(1_100);
    expect(budget.balance()).toBe(0);
    expect(budget.tryWithdraw()).toBe(false);
    for (let i = 0; i < 4; i++) budget.deposit();
    expect(drain(budget)).toBe(2);
  });

  it('keeps a reserve for quiet backends', () => {
    const { clock } = withClock();
    const budget = createRetryBudget({ ratio: 0.2, minRetriesPerSecond: 2, ttlMs: 1_000, clock });
    expect(drain(budget)).toBe(2);
  });

  it('rejects invalid options', () => {
    expect(() => createRetryBudget({ ratio: -1 })).toThrow(/ratio/);
    expect(() => createRetryBudget({ ttlMs: 0 })).toThrow(/ttlMs/);
    expect(() => createRetryBudget({ minRetriesPerSecond: Number.NaN })).toThrow(/minRetries/);
  });
});
