import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { withTimeout } from '../../../src/util/timeout.js';

class Late extends Error {}

/** A promise the test settles by hand. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejections nobody handled while `fn` and the turns after it ran. */
async function unhandledDuring(fn: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const listener = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', listener);
  try {
    await fn();
    vi.useRealTimers();
    await new Promise((resolve) => setTimeout(resolve, 10));
  } finally {
    process.off('unhandledRejection', listener);
  }
  return seen;
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('withTimeout', () => {
  it('settles like the work when it answers in time, and clears its timer', async () => {
    const ok = withTimeout(Promise.resolve('value'), 1_000, () => 'fallback');
    await expect(ok).resolves.toBe('value');
    expect(vi.getTimerCount()).toBe(0);

    const own = new Error('own failure');
    const failed = withTimeout(Promise.reject(own), 1_000, () => 'fallback');
    await expect(failed).rejects.toBe(own);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects with what onTimeout throws when the time is up; the late outcome is dropped', async () => {
    const work = deferred<string>();
    const caller = new Error('the caller’s own timeout error');
    const unhandled = await unhandledDuring(async () => {
      const result = withTimeout(work.promise, 50, () => {
        throw caller;
      });
      await vi.advanceTimersByTimeAsync(49);
      let settled = false;
      void result.then(
        () => (settled = true),
        () => (settled = true),
      );
      await Promise.resolve();
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await expect(result).rejects.toBe(caller);
      work.reject(new Late('too late'));
    });
    expect(unhandled).toEqual([]);
  });

  it('resolves with what onTimeout returns (giving up quietly)', async () => {
    const work = deferred<string>();
    const result = withTimeout(work.promise, 20, () => 'gave up');
    await vi.advanceTimersByTimeAsync(20);
    await expect(result).resolves.toBe('gave up');
    work.resolve('late value');
    await expect(result).resolves.toBe('gave up');
  });

  it('with no time left runs onTimeout at once, sets no timer, and still handles the work', async () => {
    const work = deferred<string>();
    let calls = 0;
    const unhandled = await unhandledDuring(async () => {
      for (const ms of [0, -5]) {
        const result = withTimeout(work.promise, ms, () => {
          calls += 1;
          throw new Error('expired');
        });
        expect(vi.getTimerCount()).toBe(0);
        await expect(result).rejects.toThrow('expired');
      }
      work.reject(new Late('too late'));
    });
    expect(calls).toBe(2);
    expect(unhandled).toEqual([]);
  });

  it('refuses NaN as a time (a caller mistake)', () => {
    expect(() => withTimeout(Promise.resolve(1), Number.NaN, () => 0)).toThrow(TypeError);
  });
});
