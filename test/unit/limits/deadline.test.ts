import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../../../src/errors.js';
import { createDeadline, raceDeadline, withDeadline } from '../../../src/limits/deadline.js';

const later = <T>(ms: number, value: T) =>
  new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

describe('request deadline', () => {
  it('passes results that arrive in time', async () => {
    await expect(raceDeadline(later(5, 'ok'), createDeadline(1_000), 'data backend')).resolves.toBe(
      'ok',
    );
  });

  it('fails late work with BACKEND_TIMEOUT at the deadline, and drops the late outcome', async () => {
    const started = Date.now();
    const late = new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 200));
    const error = await raceDeadline(late, createDeadline(30), 'model backend').catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).code).toBe('BACKEND_TIMEOUT');
    expect((error as GatewayError).message).toBe(
      'The model backend did not answer within the request deadline.',
    );
    expect(Date.now() - started).toBeLessThan(150);
    // The late rejection must not become an unhandled rejection (vitest would fail the run).
    await later(250, undefined);
  });

  it('refuses at once when the deadline has passed', async () => {
    let now = 0;
    const deadline = createDeadline(10, () => now);
    now = 11;
    expect(deadline.remaining()).toBe(0);
    await expect(raceDeadline(later(1, 1), deadline, 'data backend')).rejects.toMatchObject({
      code: 'BACKEND_TIMEOUT',
    });
  });

  it('wraps the promise-returning methods of an object, passes everything else through', async () => {
    const target = {
      size: 3,
      sync: () => 'sync',
      fast: () => later(1, 'fast'),
      slow: () => later(500, 'slow'),
    };
    const wrapped = withDeadline(target, createDeadline(50), 'data backend');
    expect(wrapped.size).toBe(3);
    expect(wrapped.sync()).toBe('sync');
    await expect(wrapped.fast()).resolves.toBe('fast');
    await expect(wrapped.slow()).rejects.toMatchObject({ code: 'BACKEND_TIMEOUT' });
  });

  it('stops waiting as soon as the request ends, pending or later calls alike', async () => {
    const ended = new AbortController();
    const deadline = createDeadline(60_000, Date.now, ended.signal);
    const pending = raceDeadline(new Promise(() => undefined), deadline, 'data backend');
    ended.abort();
    await expect(pending).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      message: 'The request ended before the data backend answered.',
    });
    expect(deadline.remaining()).toBe(0);
    await expect(raceDeadline(later(1, 1), deadline, 'model backend')).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
    });
  });

  it('rejects a nonsense deadline', () => {
    expect(() => createDeadline(0)).toThrow(TypeError);
    expect(() => createDeadline(Number.NaN)).toThrow(TypeError);
  });

  describe('one request', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('keeps one timer for the calls waiting at once, and none when none waits', async () => {
      vi.useFakeTimers();
      const deadline = createDeadline(1_000);
      let answer!: (value: string) => void;
      const slow = new Promise<string>((resolve) => (answer = resolve));
      const waiting = [
        raceDeadline(slow, deadline, 'data backend'),
        raceDeadline(new Promise(() => undefined), deadline, 'model backend'),
        raceDeadline(new Promise(() => undefined), deadline, 'tenant service'),
      ];
      expect(vi.getTimerCount()).toBe(1);
      answer('rows');
      await expect(waiting[0]).resolves.toBe('rows');
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(1_000);
      await expect(waiting[1]).rejects.toMatchObject({
        code: 'BACKEND_TIMEOUT',
        message: 'The model backend did not answer within the request deadline.',
      });
      await expect(waiting[2]).rejects.toMatchObject({ code: 'BACKEND_TIMEOUT' });
      expect(vi.getTimerCount()).toBe(0);

      const fresh = createDeadline(1_000);
      await raceDeadline(Promise.resolve(1), fresh, 'data backend');
      expect(vi.getTimerCount()).toBe(0);
    });

    it('ends without a signal: waiting calls fail at once, and `ended` aborts when read', async () => {
      const deadline = createDeadline(60_000);
      const pending = raceDeadline(new Promise(() => undefined), deadline, 'tenant service');
      const signal = deadline.ended;
      expect(signal?.aborted).toBe(false);
      deadline.end();
      deadline.end();
      await expect(pending).rejects.toMatchObject({
        code: 'BACKEND_UNAVAILABLE',
        message: 'The request ended before the tenant service answered.',
      });
      expect(signal?.aborted).toBe(true);
      expect(deadline.remaining()).toBe(0);
      const late = createDeadline(60_000);
      late.end();
      expect(late.ended?.aborted).toBe(true);
    });
  });
});
