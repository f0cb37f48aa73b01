/**
 * What every reference tenant service does first: verify the short-lived token the gateway signs
 * (tenant, subject; audience = the service) with jose against the gateway's JWKS. Token
 * problems are the caller's (401 UNAUTHENTICATED); failing to get the gateway's keys is the
 * service's own trouble (503 JWKS_UNAVAILABLE), so a JWKS outage does not read as "your token
 * is bad".
 */
import type { IncomingHttpHeaders } from 'node:http';
import { errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';

/** Algorithms the gateway may sign with; anything else (notably `none`, HS*) is refused. */
export const ALLOWED_ALGORITHMS = ['ES256', 'EdDSA', 'RS256'];
/** Longest lifetime (`exp - iat`, seconds) a token may declare. */
export const MAX_TOKEN_LIFETIME_S = 60;

/** A refusal with an HTTP status and a stable code; each service answers it as its own error. */
export class IdentityRefusal extends Error {
  override name = 'IdentityRefusal';
  constructor(
    readonly status: 401 | 503,
    readonly code: 'UNAUTHENTICATED' | 'JWKS_UNAVAILABLE',
    message: string,
  ) {
    super(message);
  }
}

export interface VerifiedCaller {
  tenant: string;
  subject: string;
  issuer: string | undefined;
}

export async function verifyGatewayToken(
  headers: IncomingHttpHeaders,
  getKey: JWTVerifyGetKey,
  options: { audience: string; issuer?: string | undefined },
): Promise<VerifiedCaller> {
  const authorization = headers.authorization;
  const bearer = /^Bearer +([^\s]+) *$/i.exec(authorization ?? '');
  if (bearer?.[1] === undefined) {
    throw new IdentityRefusal(
      401,
      'UNAUTHENTICATED',
      authorization === undefined
        ? 'missing Authorization header; send "Bearer <token signed by the gateway>"'
        : 'Authorization header is not "Bearer <token>"',
    );
  }
  let payload;
  try {
    ({ payload } = await jwtVerify(bearer[1], getKey, {
      audience: options.audience,
      ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
      algorithms: ALLOWED_ALGORITHMS,
      requiredClaims: ['exp', 'iat', 'sub'],
    }));
  } catch (err) {
    throw translateVerifyError(err);
  }
  const { exp = 0, iat = 0, sub, tenant, iss } = payload as typeof payload & { tenant?: unknown };
  if (exp - iat > MAX_TOKEN_LIFETIME_S) {
    throw new IdentityRefusal(
      401,
      'UNAUTHENTICATED',
      `token lifetime exp - iat = ${exp - iat} s exceeds ${MAX_TOKEN_LIFETIME_S} s; ` +
        'the gateway must send short-lived tokens',
    );
  }
  if (typeof tenant !== 'string' || tenant === '') {
    throw new IdentityRefusal(401, 'UNAUTHENTICATED', 'token has no "tenant" claim (a string)');
  }
  if (typeof sub !== 'string' || sub === '') {
    throw new IdentityRefusal(401, 'UNAUTHENTICATED', 'token has no "sub" claim (a string)');
  }
  return { tenant, subject: sub, issuer: iss };
}

function translateVerifyError(err: unknown): IdentityRefusal {
  const unavailable = (message: string): IdentityRefusal =>
    new IdentityRefusal(503, 'JWKS_UNAVAILABLE', `cannot load the gateway's keys: ${message}`);
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
    return unavailable(err.message);
  }
  if (err instanceof joseErrors.JOSEError) {
    // jose's untyped errors are the JWKS answer's (not 200, not JSON); the typed ones the token's.
    if (err.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set/.test(err.message)) {
      return unavailable(err.message);
    }
    return new IdentityRefusal(
      401,
      'UNAUTHENTICATED',
      `token refused (${err.code}): ${err.message}`,
    );
  }
  // A failed fetch of the JWKS (connection refused, DNS) reaches us as a plain TypeError.
  return unavailable(err instanceof Error ? err.message : String(err));
}
