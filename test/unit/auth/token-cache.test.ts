import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createTokenVerifier,
  type TokenVerifier,
  type TokenVerifierOptions,
} from '../../../src/auth/verify-token.js';
import {
  AUDIENCE,
  expectInvalidToken,
  fakeClock,
  ISSUER,
  makeKey,
  nowSeconds,
  signToken,
  type TestKey,
} from './fixtures.js';

let key: TestKey;

beforeAll(async () => {
  key = await makeKey('ES256', 'cache-key');
});

function verifierFor(overrides: Partial<TokenVerifierOptions> = {}) {
  return createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ['ES256'],
    keys: [{ kid: key.kid, jwk: key.publicJwk }],
    ...overrides,
  });
}

/** The two ways in: a bare token, and the request's Authorization header (remembered by its text). */
const WAYS: [string, (verifier: TokenVerifier, token: string) => Promise<unknown>][] = [
  ['verify', (verifier, token) => verifier.verify(token)],
  [
    'Authorization header',
    (verifier, token) => verifier.verifyAuthorizationHeader(`Bearer ${token}`),
  ],
];

describe.each(WAYS)('verified-token cache, by %s', (_way, check) => {
  it('a second verify of the same token does not verify the signature again', async () => {
    const verifier = verifierFor();
    const token = await signToken(key);
    const first = await verifier.verify(token);
    const second = await verifier.verify(token);
    expect(second).toBe(first);
    expect(verifier.stats()).toMatchObject({ verifications: 1, cacheHits: 1, cacheSize: 1 });
    await verifier.verifyAuthorizationHeader(`Bearer ${token}`);
    expect(verifier.stats()).toMatchObject({ verifications: 1, cacheHits: 2 });
  });

  it('concurrent verifies of one token share one verification', async () => {
    const verifier = verifierFor();
    const token = await signToken(key);
    const principals = await Promise.all(Array.from({ length: 20 }, () => check(verifier, token)));
    expect(new Set(principals).size).toBe(1);
    expect(verifier.stats().verifications).toBe(1);
  });

  it('distinct tokens are verified separately', async () => {
    const verifier = verifierFor();
    await check(verifier, await signToken(key, { sub: 'a' }));
    await check(verifier, await signToken(key, { sub: 'b' }));
    expect(verifier.stats()).toMatchObject({ verifications: 2, cacheHits: 0, cacheSize: 2 });
  });

  it('failures are not cached', async () => {
    const verifier = verifierFor();
    const token = await signToken(key, { tenant: 'NOT VALID' });
    await expectInvalidToken(check(verifier, token), 'invalid tenant');
    await expectInvalidToken(check(verifier, token), 'invalid tenant');
    expect(verifier.stats()).toMatchObject({ verifications: 2, cacheHits: 0, cacheSize: 0 });
  });

  it('is bounded by tokenCacheMax (least recently used goes first)', async () => {
    const verifier = verifierFor({ tokenCacheMax: 2 });
    const tokens = await Promise.all(['a', 'b', 'c'].map((sub) => signToken(key, { sub })));
    for (const token of tokens) await check(verifier, token);
    expect(verifier.stats().cacheSize).toBe(2);
    await check(verifier, tokens[2]!);
    await check(verifier, tokens[0]!);
    expect(verifier.stats()).toMatchObject({ verifications: 4, cacheHits: 1, cacheSize: 2 });
  });

  it('tokenCacheMax 0 disables the cache', async () => {
    const verifier = verifierFor({ tokenCacheMax: 0 });
    const token = await signToken(key);
    await check(verifier, token);
    await check(verifier, token);
    expect(verifier.stats()).toMatchObject({ verifications: 2, cacheHits: 0, cacheSize: 0 });
  });

  it('never serves an entry past exp, even inside the clock tolerance (injected clock)', async () => {
    const clock = fakeClock();
    const at = nowSeconds(clock.now());
    const verifier = verifierFor({ now: clock.now, clockToleranceSeconds: 30 });
    const token = await signToken(key, { iat: at, exp: at + 60 }, { at });
    await check(verifier, token);
    clock.advance(59_000);
    await check(verifier, token);
    expect(verifier.stats()).toMatchObject({ verifications: 1, cacheHits: 1 });

    // Past exp but inside the tolerance: verified again (not from the cache), still accepted.
    clock.advance(2_000);
    await check(verifier, token);
    expect(verifier.stats()).toMatchObject({ verifications: 2, cacheHits: 1 });

    // Past exp + tolerance: refused.
    clock.advance(30_000);
    await expectInvalidToken(check(verifier, token), 'token expired');
    expect(verifier.stats()).toMatchObject({ verifications: 3, cacheHits: 1 });
  });

  it('a short-lived token stops verifying after exp in real time (tolerance 0)', async () => {
    const verifier = verifierFor({ clockToleranceSeconds: 0 });
    const at = nowSeconds();
    const exp = at + 2;
    const token = await signToken(key, { iat: at, exp }, { at });
    await check(verifier, token);
    await check(verifier, token);
    expect(verifier.stats().cacheHits).toBe(1);
    while (Date.now() <= exp * 1000) await sleep(100);
    await expectInvalidToken(check(verifier, token), 'token expired');
    expect(verifier.stats().cacheHits).toBe(1);
  });
});
