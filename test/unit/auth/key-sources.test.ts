import { exportJWK, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { createStaticKeySource, keyFitsAlgorithm } from '../../../src/auth/key-sources.js';
import { makeKey, rsa1024, type TestKey } from './fixtures.js';

let rsaA: TestKey;
let rsaB: TestKey;
let ec: TestKey;
let ed: TestKey;

beforeAll(async () => {
  [rsaA, rsaB, ec, ed] = await Promise.all([
    makeKey('RS256', 'a'),
    makeKey('RS256', 'b'),
    makeKey('ES256', 'e'),
    makeKey('EdDSA', 'd'),
  ]);
});

const ALL = ['RS256', 'PS256', 'ES256', 'EdDSA'];

describe('createStaticKeySource', () => {
  it('selects by kid, and by alg compatibility', async () => {
    const source = createStaticKeySource(
      [
        { kid: 'a', pem: rsaA.publicPem },
        { kid: 'b', jwk: rsaB.publicJwk },
        { kid: 'e', pem: ec.publicPem },
        { kid: 'd', jwk: ed.publicJwk },
      ],
      { algorithms: ALL },
    );
    expect(await source.keysFor({ alg: 'RS256', kid: 'a' })).toHaveLength(1);
    // The same RSA key serves PS256 too when no alg pins it.
    expect(await source.keysFor({ alg: 'PS256', kid: 'a' })).toHaveLength(1);
    // kid 'b' is pinned to RS256 by its JWK's alg.
    expect(await source.keysFor({ alg: 'PS256', kid: 'b' })).toHaveLength(0);
    expect(await source.keysFor({ alg: 'ES256', kid: 'a' })).toHaveLength(0);
    expect(await source.keysFor({ alg: 'EdDSA', kid: 'd' })).toHaveLength(1);
    expect(await source.keysFor({ alg: 'RS256', kid: 'zzz' })).toHaveLength(0);
    // No kid: every key that fits.
    expect(await source.keysFor({ alg: 'RS256' })).toHaveLength(2);
    // Symmetric algorithms never get a public key.
    expect(await source.keysFor({ alg: 'HS256' })).toHaveLength(0);
    expect(await source.keysFor({ alg: 'none' })).toHaveLength(0);
  });

  it('prefers the exact kid over keys configured without one', async () => {
    const source = createStaticKeySource(
      [{ pem: rsaA.publicPem }, { kid: 'b', pem: rsaB.publicPem }],
      { algorithms: ['RS256'] },
    );
    const [byKid] = await source.keysFor({ alg: 'RS256', kid: 'b' });
    const [fallback] = await source.keysFor({ alg: 'RS256', kid: 'other' });
    expect(byKid).toBeDefined();
    expect(fallback).toBeDefined();
    expect(byKid).not.toBe(fallback);
  });

  it.each<[string, () => Parameters<typeof createStaticKeySource>[0]]>([
    ['an RSA-1024 key', () => [{ jwk: rsa1024('w').publicJwk }]],
    ['a private JWK', () => [{ jwk: { ...ec.publicJwk, d: 'AAAA' } }]],
    ['a symmetric JWK', () => [{ jwk: { kty: 'oct', k: 'c2VjcmV0' } }]],
    ['garbage PEM', () => [{ pem: '-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----' }]],
    ['neither pem nor jwk', () => [{ kid: 'x' }]],
    ['an alg that is not allowed', () => [{ pem: rsaA.publicPem, alg: 'RS512' }]],
    ['an alg the key type cannot do', () => [{ pem: ec.publicPem, alg: 'RS256' }]],
    ['a key that fits no allowed algorithm', () => [{ pem: ed.publicPem }]],
  ])('refuses %s at creation, naming the key', (_name, keys) => {
    expect(() => createStaticKeySource(keys(), { algorithms: ['RS256', 'ES256'] })).toThrow(
      /auth\.keys\[0\]/,
    );
  });

  it('keyFitsAlgorithm checks type and curve', async () => {
    const p384 = await exportJWK((await generateKeyPair('ES384')).publicKey);
    expect(keyFitsAlgorithm(p384, 'ES384')).toBe(true);
    expect(keyFitsAlgorithm(p384, 'ES256')).toBe(false);
    expect(keyFitsAlgorithm(rsaA.publicJwk, 'PS512')).toBe(true);
    expect(keyFitsAlgorithm(rsaA.publicJwk, 'HS256')).toBe(false);
  });
});
