import {
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';

export const TEST_ISSUER = 'https://issuer.test';
export const TEST_AUDIENCE = 'atrium-test';

export interface TestSigner {
  kid: string;
  publicJwk: JWK;
  /** A really signed ES256 token; `claims` override the defaults (tenant, sub, scope). */
  sign(
    claims: JWTPayload & { tenant?: string },
    options?: { expiresIn?: string | number },
  ): Promise<string>;
}

/** A fresh ES256 key pair for one test file: tokens in tests are really signed. */
export async function createTestSigner(kid = 'test-key-1'): Promise<TestSigner> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return {
    kid,
    publicJwk,
    sign: (claims, options = {}) =>
      new SignJWT({ scope: 'read write predict', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .setIssuer(TEST_ISSUER)
        .setAudience(TEST_AUDIENCE)
        .setSubject(typeof claims.sub === 'string' ? claims.sub : 'tester')
        .setIssuedAt()
        .setExpirationTime(options.expiresIn ?? '10m')
        .sign(privateKey as CryptoKey),
  };
}
