import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  importPKCS8,
  type JWK,
  SignJWT,
} from 'jose';

/** What a tenant service is told about a call: never more than the verified principal. */
export interface IdentityClaims {
  tenant: string;
  subject: string;
  scopes: readonly string[];
  /** The service the token is for (`aud`). */
  audience: string;
}

/**
 * The gateway's own identity for tenant services: short-lived ES256 tokens it signs, and the
 * public key set services verify them with (`GET /.well-known/jwks.json`).
 */
export interface IdentitySigner {
  sign(claims: IdentityClaims): Promise<string>;
  /** The public keys, as served at /.well-known/jwks.json. */
  jwks(): { keys: JWK[] };
}

export interface IdentitySignerOptions {
  issuer: string;
  ttlSeconds: number;
  /** The private key: a JWK (JSON text) or PKCS#8 PEM; omitted → a key generated now. */
  privateKey?: string | undefined;
  /** Seconds since epoch. */
  now?: () => number;
}

const ALG = 'ES256';
/** A token is reused while it has at least this share of its lifetime left. */
const REUSE_FRACTION = 0.5;
const MAX_CACHED = 10_000;

async function loadKey(text: string | undefined) {
  if (text === undefined) {
    const pair = await generateKeyPair(ALG, { extractable: true });
    return { privateKey: pair.privateKey, publicJwk: await exportJWK(pair.publicKey) };
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const jwk = JSON.parse(trimmed) as JWK;
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = jwk;
    return { privateKey: await importJWK(jwk, ALG), publicJwk: publicJwk as JWK };
  }
  const privateKey = await importPKCS8(trimmed, ALG, { extractable: true });
  const full = await exportJWK(privateKey);
  const { d: _d, ...publicJwk } = full;
  return { privateKey, publicJwk: publicJwk as JWK };
}

export async function createIdentitySigner(
  options: IdentitySignerOptions,
): Promise<IdentitySigner> {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const { privateKey, publicJwk } = await loadKey(options.privateKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const published: JWK = { ...publicJwk, kid, alg: ALG, use: 'sig' };
  const cache = new Map<string, { token: string; expiresAt: number }>();

  return {
    jwks: () => ({ keys: [published] }),
    async sign(claims) {
      const key = JSON.stringify([claims.tenant, claims.subject, claims.scopes, claims.audience]);
      const at = now();
      const cached = cache.get(key);
      if (cached && cached.expiresAt - at >= options.ttlSeconds * REUSE_FRACTION)
        return cached.token;
      const token = await new SignJWT({ tenant: claims.tenant, scope: claims.scopes.join(' ') })
        .setProtectedHeader({ alg: ALG, kid, typ: 'JWT' })
        .setIssuer(options.issuer)
        .setSubject(claims.subject)
        .setAudience(claims.audience)
        .setIssuedAt(at)
        .setExpirationTime(at + options.ttlSeconds)
        .sign(privateKey);
      if (cache.size >= MAX_CACHED) cache.clear();
      cache.set(key, { token, expiresAt: at + options.ttlSeconds });
      return token;
    },
  };
}
