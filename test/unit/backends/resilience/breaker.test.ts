import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../src/errors.js';
import {
  createCircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitState,
} from '../../../../src/backends/resilience/breaker.js';

function setup(options: CircuitBreakerOptions = {}) {
  let t = 0;
  const transitions: [CircuitState, CircuitState][] = [];
  const breaker = createCircuitBreaker({
    clock: { now: () => t },
    onStateChange: (from, to) => transitions.push([from, to]),
    ...options,
  });
  return {
    breaker,
    transitions,
    advance(ms: number) {
      t += ms;
    },
    fail(n = 1) {
      for (let i = 0; i < n; i++) breaker.acquire().failure();
    },
    succeed(n = 1) {
      for (let i = 0; i < n; i++) breaker.acquire().success();
    },
  };
}

function openError(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(GatewayError);
    return error as GatewayError;
  }
  throw new Error('expected acquire() to throw');
}

describe('createCircuitBreaker', () => {
  it('opens after failureThreshold consecutive failures; a success resets the count', () => {
    const { breaker, fail, succeed } = setup({ failureThreshold: 3, minimumRequests: 1_000 });
    fail(2);
    succeed();
    fail(2);
    expect(breaker.state()).toBe('closed');
    fail();
    expect(breaker.state()).toBe('open');
    const error = openError(() => breaker.acquire());
    expect(error.code).toBe('BACKEND_UNAVAILABLE');
    expect(error.message).toContain('circuit open');
  });

  it('opens on the error rate once minimumRequests outcomes are in the window', () => {
    const { breaker, fail, succeed, advance } = setup({
      failureThreshold: 100,
      errorRateThreshold: 0.5,
      minimumRequests: 10,
      windowMs: 1_000,
    });
    succeed(5);
    fail(4);
    expect(breaker.snapshot()).toMatchObject({ windowRequests: 9, windowFailures: 4 });
    expect(breaker.state()).toBe('closed');
    // Outcomes older than the window no longer count.
    advance(1_500);
    expect(breaker.snapshot().windowRequests).toBe(0);
    succeed(5);
    fail(4);
    expect(breaker.state()).toBe('closed');
    fail();
    expect(breaker.state()).toBe('open');
  });

  it('goes half-open after openMs, closes on a probe success and reopens on a probe failure', () => {
    const { breaker, transitions, fail, advance } = setup({ failureThreshold: 1, openMs: 1_000 });
    fail();
    advance(999);
    expect(breaker.state()).toBe('open');
    advance(1);
    expect(breaker.state()).toBe('half-open');
    breaker.acquire().failure();
    expect(breaker.state()).toBe('open');
    advance(1_000);
    breaker.acquire().success();
    expect(breaker.state()).toBe('closed');
    expect(transitions).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'open'],
      ['open', 'half-open'],
      ['half-open', 'closed'],
    ]);
  });

  it('lets at most halfOpenMaxProbes calls through at once; a neutral probe frees its slot', () => {
    const { breaker, fail, advance } = setup({
      failureThreshold: 1,
      openMs: 10,
      halfOpenMaxProbes: 2,
    });
    fail();
    advance(10);
    const a = breaker.acquire();
    const b = breaker.acquire();
    expect(() => breaker.acquire()).toThrow(/circuit open/);
    a.release();
    expect(breaker.state()).toBe('half-open');
    const c = breaker.acquire();
    b.success();
    expect(breaker.state()).toBe('closed');
    // c was issued in the half-open generation: its late failure must not reopen the circuit.
    c.failure();
    expect(breaker.state()).toBe('closed');
  });

  it('ignores neutral outcomes and stale permits from before a transition', () => {
    const { breaker, fail, advance } = setup({ failureThreshold: 2, openMs: 100 });
    for (let i = 0; i < 10; i++) breaker.acquire().release();
    expect(breaker.snapshot()).toMatchObject({ windowRequests: 0, consecutiveFailures: 0 });
    const slow = breaker.acquire();
    fail(2);
    expect(breaker.state()).toBe('open');
    // A success from a call started while closed must not close the open circuit.
    slow.success();
    expect(breaker.state()).toBe('open');
    advance(100);
    expect(breaker.state()).toBe('half-open');
  });

  it('settles a permit only once', () => {
    const { breaker } = setup({ failureThreshold: 2 });
    const permit = breaker.acquire();
    permit.failure();
    permit.failure();
    permit.failure();
    expect(breaker.state()).toBe('closed');
    expect(breaker.snapshot().consecutiveFailures).toBe(1);
  });

  it('survives a throwing onStateChange hook', () => {
    const breaker = createCircuitBreaker({
      failureThreshold: 1,
      onStateChange: () => {
        throw new Error('metrics down');
      },
    });
    breaker.acquire().failure();
    expect(breaker.state()).toBe('open');
  });

  it('rejects invalid options with a TypeError naming the field', () => {
    expect(() => createCircuitBreaker({ failureThreshold: 0 })).toThrow(/failureThreshold/);
    expect(() => createCircuitBreaker({ errorRateThreshold: 1.5 })).toThrow(/errorRateThreshold/);
    expect(() => createCircuitBreaker({ openMs: -1 })).toThrow(/openMs/);
    expect(() => createCircuitBreaker({ halfOpenMaxProbes: 0.5 })).toThrow(/halfOpenMaxProbes/);
  });
});
