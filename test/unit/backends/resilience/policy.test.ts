import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../src/errors.js';
import {
  AttemptFailure,
  createResiliencePolicy,
  type FailureKind,
  type ResiliencePolicyOptions,
} from '../../../../src/backends/resilience/policy.js';

function setup(options: Partial<ResiliencePolicyOptions> = {}) {
  let t = 0;
  const attempts: string[] = [];
  const transitions: string[] = [];
  const policy = createResiliencePolicy({
    label: 'Test upstream',
    timeoutMs: 1_000,
    retry: { maxAttempts: 1 },
    breaker: { failureThreshold: 3, openMs: 1_000 },
    tenantBreaker: {
      onStateChange: (tenant, from, to) => transitions.push(`${tenant}:${from}->${to}`),
    },
    clock: { now: () => t },
    random: () => 0,
    ...options,
  });
  /** One call that fails with `kind` (or succeeds with `ok`), for `tenant`. */
  async function call(tenant: string | undefined, outcome: FailureKind | 'ok') {
    return policy.call(
      async () => {
        attempts.push(tenant ?? '-');
        if (outcome === 'ok') return 'ok';
        throw new AttemptFailure(outcome, new GatewayError('BACKEND_UNAVAILABLE', outcome));
      },
      { tenant },
    );
  }
  return {
    policy,
    attempts,
    transitions,
    call,
    settled: (tenant: string | undefined, outcome: FailureKind | 'ok') =>
      call(tenant, outcome).then(
        () => 'ok',
        (error: GatewayError) => error.message,
      ),
    advance(ms: number) {
      t += ms;
    },
  };
}

describe('createResiliencePolicy: breakers per tenant and per backend', () => {
  it('contains a tenant whose calls fail, without opening the backend’s shared breaker', async () => {
    const { policy, attempts, transitions, settled } = setup();
    for (let i = 0; i < 3; i++) expect(await settled('a', 'server')).toBe('server');
    expect(policy.tenantBreaker('a')?.state()).toBe('open');
    expect(policy.breaker.state()).toBe('closed');
    expect(await settled('a', 'ok')).toContain('unavailable for this tenant (circuit open)');
    expect(await settled('b', 'ok')).toBe('ok');
    expect(attempts).toEqual(['a', 'a', 'a', 'b']);
    expect(transitions).toEqual(['a:closed->open']);
  });

  it('opens the shared breaker once failures come from several tenants', async () => {
    const { policy, settled } = setup();
    await settled('a', 'timeout');
    await settled('a', 'timeout');
    expect(policy.breaker.snapshot().consecutiveFailures).toBe(0);
    // From here on two tenants are failing: their failures are the backend's.
    for (let i = 0; i < 3; i++) await settled('b', 'server');
    expect(policy.breaker.state()).toBe('open');
    expect(await settled('c', 'ok')).toBe('Test upstream unavailable (circuit open)');
  });

  it('counts refused connections against the shared breaker at once: no request causes them', async () => {
    const { policy, settled } = setup();
    for (let i = 0; i < 3; i++) await settled('a', 'connection');
    expect(policy.breaker.state()).toBe('open');
    expect(policy.tenantBreaker('a')?.state()).toBe('open');
  });

  it('forgets a tenant’s failures older than the attribution window', async () => {
    const { policy, settled, advance } = setup({ attributionWindowMs: 1_000 });
    await settled('a', 'server');
    advance(1_500);
    for (let i = 0; i < 2; i++) await settled('b', 'server');
    expect(policy.breaker.snapshot().consecutiveFailures).toBe(0);
    await settled('a', 'server');
    expect(policy.breaker.snapshot().consecutiveFailures).toBe(1);
  });

  it('never counts input failures against the shared breaker, whoever sends them', async () => {
    const { policy, settled } = setup();
    for (const tenant of ['a', 'b', 'c', 'd']) {
      for (let i = 0; i < 3; i++) await settled(tenant, 'input');
    }
    expect(policy.breaker.state()).toBe('closed');
    expect(policy.tenantBreaker('d')?.state()).toBe('open');
  });

  it('counts every health failure of a call without a tenant against the shared breaker', async () => {
    const { policy, settled } = setup();
    for (let i = 0; i < 3; i++) await settled(undefined, 'malformed');
    expect(policy.breaker.state()).toBe('open');
  });

  it('keeps rejected, cancelled and closed outcomes neutral for both breakers', async () => {
    const { policy, settled } = setup();
    for (const kind of ['rejected', 'cancelled', 'closed'] as const) {
      for (let i = 0; i < 3; i++) await settled('a', kind);
    }
    expect(policy.tenantBreaker('a')?.snapshot()).toMatchObject({
      state: 'closed',
      windowRequests: 0,
    });
    expect(policy.breaker.snapshot().windowRequests).toBe(0);
  });

  it('gives the tenant breaker’s probe slot back when the shared circuit refuses', async () => {
    const { policy, settled, advance } = setup();
    for (let i = 0; i < 3; i++) await settled('a', 'server');
    for (let i = 0; i < 3; i++) await settled(undefined, 'server');
    advance(1_000);
    // Both half-open now; take the shared probe slot with a call that does not settle yet.
    let finish = () => {};
    const pending = policy.call(
      () => new Promise<string>((resolve) => (finish = () => resolve('x'))),
    );
    expect(await settled('a', 'ok')).toBe('Test upstream unavailable (circuit open)');
    finish();
    await pending;
    expect(await settled('a', 'ok')).toBe('ok');
    expect(policy.tenantBreaker('a')?.state()).toBe('closed');
  });

  it('bounds the tenant breakers it keeps', async () => {
    const { policy, settled } = setup({ tenantBreaker: { maxTenants: 2 } });
    await settled('a', 'ok');
    await settled('b', 'ok');
    await settled('c', 'ok');
    expect(policy.tenantBreaker('a')).toBeUndefined();
    expect(policy.tenantBreaker('c')).toBeDefined();
  });
});

describe('createResiliencePolicy: attempts', () => {
  it('classifies a timed-out attempt as BACKEND_TIMEOUT and an unclassified throw as a connection failure', async () => {
    const policy = createResiliencePolicy({ timeoutMs: 30, retry: { maxAttempts: 1 } });
    const hang = policy.call(
      ({ signal }) =>
        new Promise((_, reject) => (signal.onabort = () => reject(new Error('aborted')))),
    );
    await expect(hang).rejects.toMatchObject({ code: 'BACKEND_TIMEOUT' });
    await expect(policy.call(() => Promise.reject(new Error('boom')))).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      message: 'Backend unavailable (connection failed)',
    });
  });

  it('retries connection failures within the attempts allowed', async () => {
    let n = 0;
    const policy = createResiliencePolicy({
      timeoutMs: 1_000,
      retry: { maxAttempts: 3, baseDelayMs: 1 },
      random: () => 0,
    });
    const value = await policy.call(async ({ attempt }) => {
      n = attempt;
      if (attempt < 3)
        throw new AttemptFailure('connection', new GatewayError('BACKEND_UNAVAILABLE', 'x'));
      return 'third';
    });
    expect(value).toBe('third');
    expect(n).toBe(3);
  });

  it('runs once() outside the breakers: an open circuit does not stop a probe', async () => {
    const { policy, settled } = setup();
    for (let i = 0; i < 3; i++) await settled(undefined, 'server');
    expect(policy.breaker.state()).toBe('open');
    expect(await policy.once(async () => 'probe')).toBe('probe');
    await expect(
      policy.once(() =>
        Promise.reject(
          new AttemptFailure('rejected', new GatewayError('BACKEND_UNAVAILABLE', 'no')),
        ),
      ),
    ).rejects.toMatchObject({ message: 'no' });
  });

  it('rejects invalid options with a TypeError naming the field', () => {
    expect(() => createResiliencePolicy({ timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => createResiliencePolicy({ timeoutMs: 1, sharedFailureTenants: 0 })).toThrow(
      /sharedFailureTenants/,
    );
    expect(() =>
      createResiliencePolicy({ timeoutMs: 1, tenantBreaker: { maxTenants: 1.5 } }),
    ).toThrow(/maxTenants/);
  });
});
