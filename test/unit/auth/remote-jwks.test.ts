import { randomUUID } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJwks } from '../../../src/auth/remote-jwks.js';
import { createTokenVerifier, type TokenVerifierOptions } from '../../../src/auth/verify-token.js';
import {
  AUDIENCE,
  claimsAt,
  expectInvalidToken,
  fakeClock,
  ISSUER,
  makeKey,
  nowSeconds,
  rawToken,
  signToken,
  startJwksServer,
  type JwksServer,
  type TestKey,
} from './fixtures.js';

let k1: TestKey;
let k2: TestKey;
let rsa: TestKey;
const servers: JwksServer[] = [];

beforeAll(async () => {
  [k1, k2, rsa] = await Promise.all([
    makeKey('ES256', 'k1'),
    makeKey('ES256', 'k2'),
    makeKey('RS256', 'rsa-static'),
  ]);
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function server(keys: TestKey[]): Promise<JwksServer> {
  const s = await startJwksServer(keys.map((k) => k.publicJwk));
  servers.push(s);
  return s;
}

const MINUTE = 60_000;

function verifierFor(
  url: string,
  clock: { now: () => number },
  jwks: Partial<NonNullable<TokenVerifierOptions['jwks']>> = {},
  overrides: Partial<TokenVerifierOptions> = {},
) {
  return createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ['ES256', 'RS256'],
    // Each test checks key handling, not the cache: every verify goes to the keys.
    tokenCacheMax: 0,
    now: clock.now,
    jwks: {
      url,
      timeoutMs: 2_000,
      cooldownMs: 30_000,
      maxAgeMs: 10 * MINUTE,
      maxStaleMs: 60 * MINUTE,
      ...jwks,
    },
    ...overrides,
  });
}

/** A token whose time claims follow the (possibly advanced) test clock. */
function tokenAt(key: TestKey, clock: { now: () => number }, claims: Record<string, unknown> = {}) {
  return signToken(key, claims, { at: nowSeconds(clock.now()) });
}

describe('remote JWKS', () => {
  it('fetches the key set once and verifies with it', async () => {
    const jwks = await server([k1]);
    const clock = fakeClock();
    const verifier = verifierFor(jwks.url, clock);
    expect(await verifier.verify(await tokenAt(k1, clock))).toMatchObject({ tenantId: 'acme' });
    expect(await verifier.verify(await tokenAt(k1, clock, { sub: 'bob' }))).toMatchObject({
      subject: 'bob',
    });
    expect(jwks.requests).toBe(1);
    expect(verifier.stats().jwks).toMatchObject({
      fetches: 1,
      failures: 0,
      state: 'fresh',
      keys: 1,
    });
  });

  it('picks up a rotated key: new kid → refetch (after the cooldown) → verifies', async () => {
    const jwks = await server([k1]);
    const clock = fakeClock();
    const verifier = verifierFor(jwks.url, clock, { cooldownMs: 5_000 });
    await verifier.verify(await tokenAt(k1, clock));
    jwks.setKeys([k1.publicJwk, k2.publicJwk]);

    // Inside the cooldown an unknown kid does not cause a fetch.
    await expectInvalidToken(verifier.verify(await tokenAt(k2, clock)), 'no matching key');
    expect(jwks.requests).toBe(1);

    clock.advance(5_000);
    expect(await verifier.verify(await tokenAt(k2, clock))).toMatchObject({ tenantId: 'acme' });
    expect(jwks.requests).toBe(2);
    // The old key is still listed, so its tokens still verify.
    await verifier.verify(await tokenAt(k1, clock));
    expect(jwks.requests).toBe(2);
  });

  it('a key removed from the set stops verifying once the set is refreshed', async () => {
    const jwks = await server([k1]);
    const clock = fakeClock();
    const verifier = verifierFor(jwks.url, clock, { maxAgeMs: MINUTE });
    await verifier.verify(await tokenAt(k1, clock));
    jwks.setKeys([k2.publicJwk]);
    clock.advance(MINUTE + 1);
    await expectInvalidToken(verifier.verify(await tokenAt(k1, clock)), 'no matching key');
    expect(jwks.requests).toBe(2);
  });

  it('server stopped: keeps verifying with the last good keys up to maxStale, then 401', async () => {
    const jwks = await server([k1]);
    const clock = fakeClock();
    const errors: Error[] = [];
    const verifier = verifierFor(
      jwks.url,
      clock,
      { maxAgeMs: MINUTE, maxStaleMs: 10 * MINUTE },
      { onJwksError: (e) => errors.push(e) },
    );
    await verifier.verify(await tokenAt(k1, clock));
    await jwks.stop();

    clock.advance(2 * MINUTE); // stale: refresh fails, the last good set is used
    expect(await verifier.verify(await tokenAt(k1, clock))).toMatchObject({ tenantId: 'acme' });
    expect(verifier.stats().jwks).toMatchObject({ state: 'stale', failures: 1 });
    expect(errors).toHaveLength(1);

    clock.advance(8 * MINUTE); // 10 min old: maxAge + 9 min, still inside maxStale
    expect(await verifier.verify(await tokenAt(k1, clock, { sub: 'bob' }))).toMatchObject({
      subject: 'bob',
    });

    clock.advance(MINUTE + 1); // past maxAge + maxStale
    await expectInvalidToken(verifier.verify(await tokenAt(k1, clock)), 'signing keys unavailable');
    expect(verifier.stats().jwks?.state).toBe('expired');
    expect(await verifier.ready()).toBe(false);
  });

  it('a failing endpoint (500, not JSON) keeps the last good set, and recovery replaces it', async () => {
    const jwks = await server([k1]);
    const clock = fakeClock();
    const verifier = verifierFor(jwks.url, clock, { maxAgeMs: MINUTE });
    await verifier.verify(await tokenAt(k1, clock));

    jwks.setMode('error');
    clock.advance(MINUTE + 1);
    await verifier.verify(await tokenAt(k1, clock));
    jwks.setMode('garbage');
    clock.advance(2_000); // past the retry-after-failure delay
    await verifier.verify(await tokenAt(k1, clock));
    expect(verifier.stats().jwks).toMatchObject({ fetches: 3, failures: 2, state: 'stale' });
    expect(verifier.stats().jwks?.lastError).toMatch(/not JSON/);

    jwks.setMode('ok');
    jwks.setKeys([k2.publicJwk]);
    clock.advance(2_000);
    await verifier.verify(await tokenAt(k2, clock));
    expect(verifier.stats().jwks).toMatchObject({ fetches: 4, state: 'fresh' });
  });

  it('failed fetches are rate-limited too', async () => {
    const jwks = await server([k1]);
    jwks.setMode('error');
    const clock = fakeClock();
    const verifier = verifierFor(jwks.url, clock);
    for (let i = 0; i < 20; i += 1) {
      await expectInvalidToken(
        verifier.verify(await tokenAt(k1, clock)),
        'signing keys unavailable',
      );
    }
    expect(jwks.requests).toBe(1);
    jwks.setMode('ok');
    clock.advance(1_000);
    await verifier.verify(await tokenAt(k1, clock));
    expect(jwks.requests).toBe(2);
  });

  it('1,000 tokens with random kids in a burst cause at most one fetch', async () => {
    const jwks = await server([k1]);
    const clock = fakeClock();
    const verifier = verifierFor(jwks.url, clock, { cooldownMs: 30_000 });
    const payload = claimsAt(nowSeconds(clock.now()));
    const burst = () =>
      Promise.all(
        Array.from({ length: 1000 }, () =>
          expectInvalidToken(
            verifier.verify(rawToken({ alg: 'ES256', kid: randomUUID() }, payload, 'c2ln')),
            'no matching key',
          ),
        ),
      );

    // Cold: the first token starts the only fetch; the others wait for it.
    await burst();
    expect(jwks.requests).toBe(1);
    // Inside the cooldown: none.
    await burst();
    expect(jwks.requests).toBe(1);
    // After the cooldown: exactly one more for the whole burst.
    clock.advance(30_000);
    await burst();
    expect(jwks.requests).toBe(2);
    // The real key still works throughout.
    await verifier.verify(await tokenAt(k1, clock));
    expect(jwks.requests).toBe(2);
  });

  it('a slow endpoint is bounded by the timeout: 401, not a hang', async () => {
    const jwks = await server([k1]);
    jwks.setMode('hang');
    const clock = fakeClock();
    const errors: Error[] = [];
    const verifier = verifierFor(
      jwks.url,
      clock,
      { timeoutMs: 200 },
      { onJwksError: (e) => errors.push(e) },
    );
    const outcome = await Promise.race([
      expectInvalidToken(
        verifier.verify(await tokenAt(k1, clock)),
        'signing keys unavailable',
      ).then(() => 'rejected in time'),
      new Promise((resolve) => setTimeout(resolve, 10_000, 'hung')),
    ]);
    expect(outcome).toBe('rejected in time');
    expect(errors[0]?.message).toMatch(/timed out after 200 ms/);
    expect(jwks.requests).toBe(1);
  });

  it('does not follow redirects away from the configured URL', async () => {
    const elsewhere = await server([k1]);
    const jwks = await server([]);
    jwks.setMode('redirect', elsewhere.url);
    const verifier = verifierFor(jwks.url, fakeClock());
    await expectInvalidToken(verifier.verify(await signToken(k1)), 'signing keys unavailable');
    expect(elsewhere.requests).toBe(0);
  });

  it('static keys are used first; the JWKS for the kids they lack', async () => {
    const jwks = await server([k1]);
    const verifier = verifierFor(
      jwks.url,
      fakeClock(),
      {},
      {
        keys: [{ kid: rsa.kid, pem: rsa.publicPem }],
      },
    );
    await verifier.verify(await signToken(rsa));
    expect(jwks.requests).toBe(0);
    await verifier.verify(await signToken(k1));
    expect(jwks.requests).toBe(1);
  });

  it('uses the injected fetch, and ready() warms the key set', async () => {
    const jwks = await server([k1]);
    const calls: string[] = [];
    const verifier = verifierFor(
      jwks.url,
      fakeClock(),
      {},
      {
        fetch: (url, init) => {
          calls.push(url);
          return fetch(url, init);
        },
      },
    );
    expect(await verifier.ready()).toBe(true);
    expect(calls).toEqual([jwks.url]);
    await verifier.verify(await signToken(k1));
    expect(calls).toHaveLength(1);
  });

  it('createRemoteJwks validates its bounds', () => {
    expect(() => createRemoteJwks({ url: 'http://127.0.0.1/jwks', timeoutMs: -1 })).toThrow(
      TypeError,
    );
    expect(() => createRemoteJwks({ url: 'not a url' })).toThrow(TypeError);
  });
});
