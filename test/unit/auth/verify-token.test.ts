import { beforeAll, describe, expect, it } from 'vitest';
import { createTokenVerifier, type TokenVerifierOptions } from '../../../src/auth/verify-token.js';
import { authSchema, type AuthConfig } from '../../../src/config/schema.js';
import { GatewayError } from '../../../src/errors.js';
import {
  AUDIENCE,
  claimsAt,
  expectInvalidToken,
  ISSUER,
  makeKey,
  nowSeconds,
  signToken,
  type TestKey,
} from './fixtures.js';

let rsa: TestKey;
let ec: TestKey;
let ed: TestKey;

beforeAll(async () => {
  [rsa, ec, ed] = await Promise.all([
    makeKey('RS256', 'rsa-1'),
    makeKey('ES256', 'ec-1'),
    makeKey('EdDSA', 'ed-1'),
  ]);
});

function verifierFor(overrides: Partial<TokenVerifierOptions> = {}) {
  return createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ['RS256', 'ES256', 'EdDSA'],
    keys: [
      { kid: rsa.kid, pem: rsa.publicPem },
      { kid: ec.kid, jwk: ec.publicJwk },
      { kid: ed.kid, alg: 'EdDSA', pem: ed.publicPem },
    ],
    ...overrides,
  });
}

describe('valid tokens', () => {
  it.each(['RS256', 'ES256', 'EdDSA'] as const)('%s token → Principal', async (alg) => {
    const key = { RS256: rsa, ES256: ec, EdDSA: ed }[alg];
    const at = nowSeconds();
    const principal = await verifierFor().verify(
      await signToken(key, { sub: `user-${alg}` }, { at }),
    );
    expect(principal).toEqual({
      tenantId: 'acme',
      subject: `user-${alg}`,
      scopes: ['read', 'predict'],
      claims: claimsAt(at, { sub: `user-${alg}` }),
      expiresAt: at + 3600,
    });
  });

  it('returns a deeply frozen Principal (it is shared through the cache)', async () => {
    const principal = await verifierFor().verify(
      await signToken(rsa, { extra: { nested: [1, 2] } }),
    );
    expect(Object.isFrozen(principal)).toBe(true);
    expect(Object.isFrozen(principal.claims)).toBe(true);
    expect(Object.isFrozen((principal.claims.extra as { nested: number[] }).nested)).toBe(true);
    expect(Object.isFrozen(principal.scopes)).toBe(true);
  });

  it('collects scopes from scope, scp and roles without duplicates', async () => {
    const principal = await verifierFor().verify(
      await signToken(ec, { scope: 'read  predict', scp: ['admin', 'read'], roles: ['ops'] }),
    );
    expect(principal.scopes).toEqual(['read', 'predict', 'admin', 'ops']);
    const spaceSeparatedScp = await verifierFor().verify(
      await signToken(ec, { scope: undefined, scp: 'a b' }),
    );
    expect(spaceSeparatedScp.scopes).toEqual(['a', 'b']);
    const none = await verifierFor().verify(await signToken(ec, { scope: undefined }));
    expect(none.scopes).toEqual([]);
  });

  it('reads the tenant from the namespaced claim, and accepts both claims when they agree', async () => {
    const namespaced = await verifierFor().verify(
      await signToken(rsa, { tenant: undefined, 'https://atrium.dev/tenant': 'globex' }),
    );
    expect(namespaced.tenantId).toBe('globex');
    const both = await verifierFor().verify(
      await signToken(rsa, { 'https://atrium.dev/tenant': 'acme' }),
    );
    expect(both.tenantId).toBe('acme');
    const custom = await verifierFor({ tenantClaims: ['org'] }).verify(
      await signToken(rsa, { tenant: undefined, org: 'initech' }),
    );
    expect(custom.tenantId).toBe('initech');
  });

  it('accepts any of several configured issuers and audiences', async () => {
    const verifier = verifierFor({
      issuer: ['https://other.test/', ISSUER],
      audience: ['x', AUDIENCE],
    });
    const principal = await verifier.verify(await signToken(rsa, { aud: ['y', AUDIENCE] }));
    expect(principal.subject).toBe('alice');
  });

  it('uses a static key without kid for tokens with any kid, and tokens without kid', async () => {
    const verifier = verifierFor({ keys: [{ pem: ec.publicPem }] });
    await expect(verifier.verify(await signToken(ec))).resolves.toMatchObject({ subject: 'alice' });
    await expect(
      verifier.verify(await signToken(ec, {}, { header: { kid: undefined } })),
    ).resolves.toMatchObject({ subject: 'alice' });
  });

  it('honours clock tolerance for exp, nbf and iat', async () => {
    const at = nowSeconds();
    const verifier = verifierFor({ clockToleranceSeconds: 30 });
    await expect(
      verifier.verify(await signToken(rsa, { exp: at - 10, iat: at - 100 })),
    ).resolves.toBeDefined();
    await expect(verifier.verify(await signToken(rsa, { nbf: at + 10 }))).resolves.toBeDefined();
    await expect(verifier.verify(await signToken(rsa, { iat: at + 10 }))).resolves.toBeDefined();
  });

  it('accepts the configured typ (and its application/ form)', async () => {
    const verifier = verifierFor({ typ: 'at+jwt' });
    await expect(
      verifier.verify(await signToken(rsa, {}, { header: { typ: 'at+jwt' } })),
    ).resolves.toBeDefined();
    await expect(
      verifier.verify(
        await signToken(rsa, { sub: 'bob' }, { header: { typ: 'application/at+jwt' } }),
      ),
    ).resolves.toBeDefined();
  });

  it('accepts HS256 with the configured secret when HS256 is configured', async () => {
    const secret = 'a-shared-secret-that-is-long-enough-123';
    const verifier = verifierFor({
      algorithms: ['RS256', 'HS256'],
      hs256Secret: secret,
      keys: [{ kid: rsa.kid, pem: rsa.publicPem }],
    });
    const { SignJWT } = await import('jose');
    const token = await new SignJWT(claimsAt(nowSeconds()))
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(secret));
    await expect(verifier.verify(token)).resolves.toMatchObject({ tenantId: 'acme' });
  });

  it('takes the parsed AuthConfig from the config schema as its options', async () => {
    const config: AuthConfig = authSchema.parse({
      issuer: ISSUER,
      audience: AUDIENCE,
      keys: [{ kid: ec.kid, pem: ec.publicPem }],
    });
    const verifier = createTokenVerifier({ ...config, now: Date.now });
    await expect(verifier.verify(await signToken(ec))).resolves.toMatchObject({ tenantId: 'acme' });
  });
});

describe('claim failures', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['expired', { exp: -60 }, 'token expired'],
    ['not yet valid (nbf beyond tolerance)', { nbf: 120 }, 'token not yet valid'],
    ['issued in the future (iat beyond tolerance)', { iat: 120 }, 'token issued in the future'],
    ['wrong issuer', { iss: 'https://evil.test/' }, 'unexpected issuer'],
    ['no issuer', { iss: undefined }, 'missing iss claim'],
    ['wrong audience', { aud: 'someone-else' }, 'unexpected audience'],
    ['wrong audience list', { aud: ['a', 'b'] }, 'unexpected audience'],
    ['no exp', { exp: undefined }, 'missing exp claim'],
    ['non-numeric exp', { exp: 'tomorrow' }, 'invalid exp claim'],
    ['no sub', { sub: undefined }, 'missing sub claim'],
    ['non-string sub', { sub: 42 }, 'invalid sub claim'],
    ['empty sub', { sub: '' }, 'invalid sub claim'],
    ['no tenant claim', { tenant: undefined }, 'missing tenant claim'],
    ['upper-case tenant', { tenant: 'ACME' }, 'invalid tenant'],
    ['tenant with underscore', { tenant: 'ac_me' }, 'invalid tenant'],
    ['tenant starting with a hyphen', { tenant: '-acme' }, 'invalid tenant'],
    ['tenant path traversal', { tenant: '../globex' }, 'invalid tenant'],
    ['numeric tenant', { tenant: 7 }, 'invalid tenant'],
    [
      'conflicting tenant claims',
      { tenant: 'acme', 'https://atrium.dev/tenant': 'globex' },
      'conflicting tenant claims',
    ],
    ['non-string scope', { scope: 7 }, 'invalid scope claim'],
    ['roles with a non-string member', { roles: ['ok', 1] }, 'invalid scope claim'],
  ];
  it.each(cases)('%s → UNAUTHENTICATED', async (_name, relative, reason) => {
    const at = nowSeconds();
    // Time claims in the table are relative to now.
    const claims = Object.fromEntries(
      Object.entries(relative).map(([k, v]) =>
        ['exp', 'nbf', 'iat'].includes(k) && typeof v === 'number' ? [k, at + v] : [k, v],
      ),
    );
    await expectInvalidToken(
      verifierFor({ clockToleranceSeconds: 30 }).verify(await signToken(rsa, claims, { at })),
      reason,
    );
  });

  it('wrong typ when typ is configured → UNAUTHENTICATED', async () => {
    const verifier = verifierFor({ typ: 'at+jwt' });
    await expectInvalidToken(
      verifier.verify(await signToken(rsa, {}, { header: { typ: 'JWT' } })),
      'unexpected token type',
    );
    await expectInvalidToken(verifier.verify(await signToken(rsa)), 'unexpected token type');
  });
});

describe('verifyAuthorizationHeader', () => {
  it('missing or empty header → challenge without an error code (RFC 6750 §3.1)', async () => {
    for (const header of [undefined, '', '   ']) {
      const error = await verifierFor()
        .verifyAuthorizationHeader(header)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GatewayError);
      expect((error as GatewayError).code).toBe('UNAUTHENTICATED');
      expect((error as GatewayError).status).toBe(401);
      expect((error as GatewayError).headers).toEqual({
        'WWW-Authenticate': 'Bearer realm="atrium"',
      });
    }
  });

  it('another scheme → challenge without an error code', async () => {
    const error = (await verifierFor()
      .verifyAuthorizationHeader('Basic YWxpY2U6c2VjcmV0')
      .catch((e: unknown) => e)) as GatewayError;
    expect(error.code).toBe('UNAUTHENTICATED');
    expect(error.headers['WWW-Authenticate']).toBe('Bearer realm="atrium"');
  });

  it('Bearer without a token, or with extra parts → invalid_token', async () => {
    const verifier = verifierFor();
    await expectInvalidToken(verifier.verifyAuthorizationHeader('Bearer'), 'malformed token');
    await expectInvalidToken(verifier.verifyAuthorizationHeader('Bearer a b'), 'malformed token');
  });

  it('accepts any case of the scheme and surrounding whitespace', async () => {
    const token = await signToken(ed);
    const verifier = verifierFor();
    await expect(verifier.verifyAuthorizationHeader(`Bearer ${token}`)).resolves.toBeDefined();
    await expect(verifier.verifyAuthorizationHeader(`  bearer   ${token} `)).resolves.toBeDefined();
  });

  it('a huge header is refused before parsing', async () => {
    await expectInvalidToken(
      verifierFor().verifyAuthorizationHeader(`Bearer ${'a'.repeat(100_000)}`),
      'token too large',
    );
  });
});

describe('configuration mistakes throw TypeError at creation', () => {
  const base: TokenVerifierOptions = { issuer: ISSUER, audience: AUDIENCE, algorithms: ['RS256'] };
  it.each<[string, TokenVerifierOptions]>([
    ['no key source', base],
    ['HS256 without a secret', { ...base, algorithms: ['HS256'] }],
    ['HS256 with a short secret', { ...base, algorithms: ['HS256'], hs256Secret: 'short' }],
    ['alg none', { ...base, algorithms: ['none'], hs256Secret: 'x'.repeat(32) }],
    ['no algorithms', { ...base, algorithms: [], hs256Secret: 'x'.repeat(32) }],
    ['empty issuer list', { ...base, issuer: [], jwks: { url: 'https://idp.test/jwks' } }],
    ['empty tenant claims', { ...base, tenantClaims: [], jwks: { url: 'https://idp.test/jwks' } }],
    ['relative JWKS url', { ...base, jwks: { url: '/jwks.json' } }],
  ])('%s', (_name, options) => {
    expect(() => createTokenVerifier(options)).toThrow(TypeError);
  });
});
