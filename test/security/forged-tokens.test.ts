import { KeyObject, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../../src/auth/verify-token.js';
import { createEmbeddedData } from '../../src/backends/data/pglite.js';
import type { SqlDataSource } from '../../src/backends/data/tenant-data-source.js';
import { DEFAULT_MIGRATIONS_DIR, DEMO_EXAMPLE_DIR } from '../../src/config/schema.js';
import {
  AUDIENCE,
  b64url,
  claimsAt,
  hmacSigner,
  ISSUER,
  type JwksServer,
  makeKey,
  nowSeconds,
  rawToken,
  rs256Signer,
  rsa1024,
  signRaw,
  signToken,
  startJwksServer,
  type TestKey,
} from '../unit/auth/fixtures.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { createTestSigner } from '../support/tokens.js';
import { runPool } from './support.js';

// Forged and defective tokens through the HTTP gateway (the verifier-level cases live in
// test/unit/auth): every one a 401 UNAUTHENTICATED with a Bearer challenge; and a burst of
// random-kid tokens costs at most one JWKS fetch.

let rsa: TestKey;
let ec: TestKey;
let attacker: TestKey;
let weak: ReturnType<typeof rsa1024>;
let jwks: JwksServer;
let attackerServer: JwksServer;
let data: SqlDataSource;
let gateway: TestGateway;

const TYP = { typ: 'JWT' };

beforeAll(async () => {
  [rsa, ec, attacker] = await Promise.all([
    makeKey('RS256', 'rsa-1'),
    makeKey('ES256', 'ec-1'),
    makeKey('RS256', 'attacker-1'),
  ]);
  weak = rsa1024('weak-1');
  // The gateway's JWKS also serves an RSA-1024 key: trusted, but too weak to verify with.
  jwks = await startJwksServer([rsa.publicJwk, ec.publicJwk, weak.publicJwk]);
  // Where hostile headers point; it must never be asked for anything.
  attackerServer = await startJwksServer([attacker.publicJwk]);
  data = await createEmbeddedData({
    tenants: [{ id: 'acme', data: { strategy: 'schema' } }],
    migrations: DEFAULT_MIGRATIONS_DIR,
    seed: `${DEMO_EXAMPLE_DIR}seed.ts`,
    seedSize: 5,
  });
  gateway = await startTestGateway({
    signer: await createTestSigner(),
    tenants: [{ id: 'acme', data: { strategy: 'schema' } }],
    dataSource: data,
    verifier: createTokenVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['RS256', 'ES256'],
      typ: 'JWT',
      clockToleranceSeconds: 30,
      jwks: { url: jwks.url, cooldownMs: 30_000 },
    }),
  });
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  await data?.close();
  await jwks?.stop();
  await attackerServer?.stop();
});

async function forgeries(): Promise<[string, string][]> {
  const now = nowSeconds();
  const valid = await signToken(rsa, {}, { header: TYP });
  const [h, p, s] = valid.split('.') as [string, string, string];
  const claims = claimsAt(now);
  const pem = rsa.publicPem;
  // Our real key, signing outside jose (which refuses to sign what we want to forge).
  const rsaSigner = rs256Signer(KeyObject.from(rsa.privateKey));
  const ecDer = (await signToken(ec, {}, { header: TYP })).split('.');
  const list: [string, string | Promise<string>][] = [
    ...['none', 'None', 'NONE', 'nOnE'].flatMap((alg): [string, string][] => [
      [`alg ${alg}, empty signature`, rawToken({ alg, typ: 'JWT' }, claims, '')],
      [`alg ${alg}, with signature bytes`, rawToken({ alg, kid: rsa.kid, typ: 'JWT' }, claims, s)],
    ]),
    ['alg rs256 (wrong case)', `${b64url({ alg: 'rs256', kid: rsa.kid, typ: 'JWT' })}.${p}.${s}`],
    [
      'HS256 signed with the RSA public key PEM',
      signRaw({ alg: 'HS256', kid: rsa.kid, typ: 'JWT' }, claims, hmacSigner(pem)),
    ],
    [
      'HS256 signed with the public JWK JSON',
      signRaw(
        { alg: 'HS256', kid: rsa.kid, typ: 'JWT' },
        claims,
        hmacSigner(JSON.stringify(rsa.publicJwk)),
      ),
    ],
    [
      'HS256 signed with the modulus',
      signRaw(
        { alg: 'HS256', typ: 'JWT' },
        claims,
        hmacSigner(Buffer.from(String(rsa.publicJwk.n), 'base64url')),
      ),
    ],
    ['HS256 with an empty secret', signRaw({ alg: 'HS256', typ: 'JWT' }, claims, hmacSigner(''))],
    ['null signature segment', `${h}.${p}.`],
    ['"null" as the signature', `${h}.${p}.${b64url('null')}`],
    ['blank (zero-byte) signature', `${h}.${p}.${Buffer.alloc(256).toString('base64url')}`],
    ['signature of another token', `${h}.${b64url({ ...claims, sub: 'mallory' })}.${s}`],
    [
      'payload changed after signing (tenant)',
      `${h}.${b64url({ ...claims, tenant: 'globex' })}.${s}`,
    ],
    ['ES256 signature truncated', `${ecDer[0]}.${ecDer[1]}.${(ecDer[2] ?? '').slice(0, 20)}`],
    [
      'embedded jwk (attacker key)',
      signToken(attacker, {}, { header: { ...TYP, jwk: attacker.publicJwk } }),
    ],
    [
      'embedded jwk, our kid',
      signToken(attacker, {}, { header: { ...TYP, kid: rsa.kid, jwk: attacker.publicJwk } }),
    ],
    [
      'jku to the attacker JWKS',
      signToken(attacker, {}, { header: { ...TYP, jku: attackerServer.url } }),
    ],
    [
      'x5u to the attacker',
      signToken(attacker, {}, { header: { ...TYP, x5u: attackerServer.url } }),
    ],
    ['x5c with garbage', signToken(attacker, {}, { header: { ...TYP, x5c: ['MIIB'] } })],
    [
      'kid path traversal',
      signToken(attacker, {}, { header: { ...TYP, kid: '../../../../../../dev/null' } }),
    ],
    ['kid SQL injection', signToken(attacker, {}, { header: { ...TYP, kid: "' OR '1'='1" } })],
    [
      'kid of our key, attacker signature',
      signToken(attacker, {}, { header: { ...TYP, kid: rsa.kid } }),
    ],
    ['kid 10 KB', signToken(attacker, {}, { header: { ...TYP, kid: 'k'.repeat(10_000) } })],
    [
      'kid of the EC key on an RS256 token',
      signToken(rsa, {}, { header: { ...TYP, kid: ec.kid } }),
    ],
    [
      'expired an hour ago',
      signToken(rsa, { exp: now - 3_600, iat: now - 7_200 }, { header: TYP }),
    ],
    ['expired beyond the 30 s tolerance', signToken(rsa, { exp: now - 120 }, { header: TYP })],
    ['nbf an hour ahead', signToken(rsa, { nbf: now + 3_600 }, { header: TYP })],
    ['nbf beyond the tolerance', signToken(rsa, { nbf: now + 300 }, { header: TYP })],
    ['missing exp', signToken(rsa, { exp: undefined }, { header: TYP })],
    ['exp as a string', signToken(rsa, { exp: String(now + 3_600) }, { header: TYP })],
    ['wrong iss', signToken(rsa, { iss: 'https://evil.example/' }, { header: TYP })],
    ['missing iss', signToken(rsa, { iss: undefined }, { header: TYP })],
    ['wrong aud', signToken(rsa, { aud: 'someone-else' }, { header: TYP })],
    ['missing aud', signToken(rsa, { aud: undefined }, { header: TYP })],
    ['wrong typ', signToken(rsa, {}, { header: { typ: 'JOSE+JSON' } })],
    ['missing typ', signToken(rsa, {}, { header: { typ: undefined } })],
    [
      'unknown crit',
      signRaw(
        {
          alg: 'RS256',
          kid: rsa.kid,
          typ: 'JWT',
          crit: ['x-atrium-unknown'],
          'x-atrium-unknown': 1,
        },
        claims,
        rsaSigner,
      ),
    ],
    [
      'crit b64 false',
      signRaw(
        { alg: 'RS256', kid: rsa.kid, typ: 'JWT', crit: ['b64'], b64: false },
        claims,
        rsaSigner,
      ),
    ],
    [
      'RSA-1024 key from the JWKS',
      signRaw({ alg: 'RS256', kid: weak.kid, typ: 'JWT' }, claims, rs256Signer(weak.privateKey)),
    ],
    [
      'another issuer with its own key',
      signToken(
        attacker,
        { iss: 'https://other-issuer.example/' },
        { header: { ...TYP, kid: 'other-1' } },
      ),
    ],
    [
      'PS256 (not an allowed algorithm)',
      `${b64url({ alg: 'PS256', kid: rsa.kid, typ: 'JWT' })}.${p}.${s}`,
    ],
    ['two segments', `${h}.${p}`],
    ['five segments (JWE shape)', `${h}.${p}.${s}.${s}.${s}`],
    ['random bytes', randomBytes(64).toString('base64url')],
  ];
  return Promise.all(list.map(async ([name, token]) => [name, await token] as [string, string]));
}

async function send(token: string, url = gateway.url) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: '{ viewer { subject tenant { id } } }' }),
  });
  const body = (await response.json()) as {
    data?: unknown;
    errors?: { extensions?: { code?: string } }[];
  };
  return { status: response.status, challenge: response.headers.get('www-authenticate'), body };
}

describe('forged and defective tokens over HTTP', () => {
  it('accepts the control token (the setup can say yes)', async () => {
    const answer = await send(await signToken(rsa, {}, { header: TYP }));
    expect(answer.status).toBe(200);
    expect(answer.body.data).toEqual({ viewer: { subject: 'alice', tenant: { id: 'acme' } } });
    // The hand-rolled signer the crit forgeries use makes valid signatures too.
    const raw = signRaw(
      { alg: 'RS256', kid: rsa.kid, typ: 'JWT' },
      claimsAt(nowSeconds()),
      rs256Signer(KeyObject.from(rsa.privateKey)),
    );
    expect((await send(raw)).status).toBe(200);
  });

  it('answers every forgery with 401 UNAUTHENTICATED and a Bearer challenge; fetches nothing from the attacker', async () => {
    const tokens = await forgeries();
    const outcomes = new Map<string, number>();
    const accepted: string[] = [];
    for (const [name, token] of tokens) {
      const answer = await send(token);
      const key = `${answer.status} ${answer.body.errors?.[0]?.extensions?.code ?? 'none'}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      if (answer.status !== 401 || !answer.challenge?.startsWith('Bearer realm="atrium"')) {
        accepted.push(`${name}: ${key}`);
      }
    }
    console.log(`forged tokens: ${tokens.length} tried`, Object.fromEntries(outcomes));
    expect(tokens.length).toBeGreaterThanOrEqual(30);
    expect(accepted).toEqual([]);
    expect(Object.fromEntries(outcomes)).toEqual({ '401 UNAUTHENTICATED': tokens.length });
    expect(attackerServer.requests).toBe(0);
  });

  it('a burst of 1,000 random-kid tokens costs at most one JWKS fetch', async () => {
    // A fresh JWKS endpoint and verifier, so every fetch it counts is this test's.
    const counted = await startJwksServer([rsa.publicJwk, ec.publicJwk]);
    const fresh = await startTestGateway({
      signer: await createTestSigner(),
      tenants: [{ id: 'acme', data: { strategy: 'schema' } }],
      dataSource: data,
      verifier: createTokenVerifier({
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['RS256', 'ES256'],
        typ: 'JWT',
        jwks: { url: counted.url, cooldownMs: 30_000 },
      }),
    });
    try {
      const tokens = await Promise.all(
        Array.from({ length: 1_000 }, () =>
          signToken(
            attacker,
            {},
            { header: { ...TYP, kid: randomBytes(12).toString('base64url') } },
          ),
        ),
      );
      const statuses = new Map<number, number>();
      await runPool(tokens, 50, async (token) => {
        const { status } = await send(token, fresh.url);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      });
      console.log(
        'random-kid burst: 1000 tokens, statuses',
        Object.fromEntries(statuses),
        `JWKS fetches ${counted.requests}`,
      );
      expect(Object.fromEntries(statuses)).toEqual({ 401: 1_000 });
      // One fetch (the first key lookup, shared by the whole burst), not one per unknown kid.
      expect(counted.requests).toBe(1);
      // The known keys work right after the burst, from the same fetch.
      expect((await send(await signToken(ec, {}, { header: TYP }), fresh.url)).status).toBe(200);
      expect(counted.requests).toBe(1);
    } finally {
      await fresh.stop();
      await counted.stop();
    }
  });
});
