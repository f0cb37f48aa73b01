/**
 * Who is calling: the short-lived token the gateway signs for its realm (tenant, subject;
 * audience = this service), verified with jose against the gateway's JWKS — as
 * services/tickets does; the realm serves only the tenant the token names.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';

/** Algorithms the gateway may sign with; anything else (notably `none`, HS*) is refused. */
export const ALLOWED_ALGORITHMS = ['ES256', 'EdDSA', 'RS256'];
/** Longest lifetime (`exp - iat`, seconds) a token may declare. */
export const MAX_TOKEN_LIFETIME_S = 60;

/** A refusal with an HTTP status and a stable code. */
export class RealmError extends Error {
  override name = 'RealmError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A verified caller. */
export interface Caller {
  tenant: string;
  subject: string;
  issuer: string | undefined;
  audience: string;
}

export interface IdentityVerifierOptions {
  /** The gateway's JWKS URL (`…/.well-known/jwks.json`). */
  jwks: URL;
  /** The `aud` the gateway signs for this service. */
  audience: string;
  /** The gateway's `iss`; unchecked when absent. */
  issuer?: string | undefined;
  /** Test seam: a key resolver instead of the remote JWKS. */
  getKey?: JWTVerifyGetKey;
}

export type IdentityVerifier = (headers: IncomingHttpHeaders) => Promise<Caller>;

export function createIdentityVerifier(options: IdentityVerifierOptions): IdentityVerifier {
  if (options.audience === '') throw new TypeError('IdentityVerifierOptions.audience is empty');
  const getKey = options.getKey ?? createRemoteJWKSet(options.jwks);
  return async (headers) => {
    const bearer = /^Bearer +([^\s]+) *$/i.exec(headers.authorization ?? '');
    if (bearer === null) {
      throw new RealmError(
        401,
        'UNAUTHENTICATED',
        'missing or malformed Authorization header; send "Bearer <token signed by the gateway>"',
      );
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(bearer[1]!, getKey, {
        audience: options.audience,
        ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
        algorithms: ALLOWED_ALGORITHMS,
        requiredClaims: ['exp', 'iat', 'sub'],
      }));
    } catch (err) {
      throw translateVerifyError(err);
    }
    const { exp, iat, sub, tenant, iss } = payload as typeof payload & { tenant?: unknown };
    if (exp! - iat! > MAX_TOKEN_LIFETIME_S) {
      throw new RealmError(
        401,
        'UNAUTHENTICATED',
        `token lifetime ${exp! - iat!} s exceeds ${MAX_TOKEN_LIFETIME_S} s`,
      );
    }
    if (typeof tenant !== 'string' || tenant === '') {
      throw new RealmError(401, 'UNAUTHENTICATED', 'token has no "tenant" claim (a string)');
    }
    if (typeof sub !== 'string' || sub === '') {
      throw new RealmError(401, 'UNAUTHENTICATED', 'token has no "sub" claim (a string)');
    }
    return { tenant, subject: sub, issuer: iss, audience: options.audience };
  };
}

/**
 * jose's errors about the token are the caller's (401); failing to get the gateway's keys is
 * this service's trouble (503).
 */
function translateVerifyError(err: unknown): RealmError {
  const unavailable = (message: string): RealmError =>
    new RealmError(503, 'JWKS_UNAVAILABLE', `cannot load the gateway's keys: ${message}`);
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
    return unavailable(err.message);
  }
  if (err instanceof joseErrors.JOSEError) {
    if (err.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set/.test(err.message)) {
      return unavailable(err.message);
    }
    return new RealmError(401, 'UNAUTHENTICATED', `token refused (${err.code}): ${err.message}`);
  }
  return unavailable(err instanceof Error ? err.message : String(err));
}
