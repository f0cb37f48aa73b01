import { describe, expect, it } from 'vitest';
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
});
