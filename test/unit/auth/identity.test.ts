import { createLocalJWKSet, decodeJwt, exportPKCS8, generateKeyPair, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { createIdentitySigner } from '../../../src/auth/identity.js';

const claims = { tenant: 'acme', subject: 'alice', scopes: ['read'], audience: 'tickets' };

describe('the identity the gateway signs for services', () => {
  it('verifies with jose against its JWKS: audience, issuer, tenant, subject, scopes, under a minute', async () => {
    const signer = await createIdentitySigner({ issuer: 'atrium', ttlSeconds: 30 });
    const token = await signer.sign(claims);
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(signer.jwks()), {
      audience: 'tickets',
      issuer: 'atrium',
      algorithms: ['ES256'],
    });
    expect(payload).toMatchObject({ tenant: 'acme', sub: 'alice', scope: 'read', aud: 'tickets' });
    expect(payload.exp! - payload.iat!).toBe(30);
    expect(protectedHeader.kid).toBe(signer.jwks().keys[0]?.kid);
    expect(signer.jwks().keys[0]).not.toHaveProperty('d');
    await expect(
      jwtVerify(token, createLocalJWKSet(signer.jwks()), { audience: 'billing' }),
    ).rejects.toThrow();
  });

  it('signs per tenant, subject, scopes and audience, reusing a token only while half its life is left', async () => {
    let now = 1_000_000;
    const signer = await createIdentitySigner({ issuer: 'atrium', ttlSeconds: 30, now: () => now });
    const first = await signer.sign(claims);
    expect(await signer.sign(claims)).toBe(first);
    expect(decodeJwt(await signer.sign({ ...claims, tenant: 'globex' })).tenant).toBe('globex');
    expect(await signer.sign({ ...claims, audience: 'billing' })).not.toBe(first);
    now += 16;
    expect(await signer.sign(claims)).not.toBe(first);
  });

  it('signs with a configured key (PKCS#8 PEM), so every replica publishes the same JWKS', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const pem = await exportPKCS8(privateKey);
    const [a, b] = await Promise.all([
      createIdentitySigner({ issuer: 'atrium', ttlSeconds: 30, privateKey: pem }),
      createIdentitySigner({ issuer: 'atrium', ttlSeconds: 30, privateKey: pem }),
    ]);
    expect(a.jwks()).toEqual(b.jwks());
    await jwtVerify(await a.sign(claims), createLocalJWKSet(b.jwks()), { audience: 'tickets' });
  });
});
