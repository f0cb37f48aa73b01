/**
 * Who is calling: the short-lived token the gateway signs for this service (tenant, subject;
 * audience = this service), verified against the gateway's JWKS, plus, where the service is
 * configured with per-tenant API keys, the key of that tenant.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { TicketsError } from './errors.js';

/** Algorithms the gateway may sign with; anything else (notably `none`, HS*) is refused. */
export const ALLOWED_ALGORITHMS = ['ES256', 'EdDSA', 'RS256'];
/** Longest lifetime (`exp - iat`, seconds) a token may declare. */
export const MAX_TOKEN_LIFETIME_S = 60;

/** A verified caller. */
export interface Caller {
  tenant: string;
  subject: string;
  /**
   * Which tenant's API key the request carried (never the key): a tenant name, `"<unknown>"`
   * for a key of no tenant, absent for no key.
   */
  apiKey?: string;
}

/** Options of {@link createIdentityVerifier}. */
export interface IdentityVerifierOptions {
  /** The gateway's JWKS URL (`…/.well-known/jwks.json`). */
  jwks: URL;
  /** This service's name, the `aud` the gateway signs for it. */
  audience: string;
  /** The gateway's `iss`; unchecked when absent. */
  issuer?: string;
  /** Per-tenant API keys; when given, every request must carry its tenant's key. */
  keys?: ReadonlyMap<string, string>;
  /** Test seam: a key resolver instead of the remote JWKS. */
  getKey?: JWTVerifyGetKey;
}

/** Resolves the caller of a request or throws a {@link TicketsError} (401, 403 or 503). */
export type IdentityVerifier = (headers: IncomingHttpHeaders) => Promise<Caller>;

/** Marks a request whose token verified but whose API key did not (403). */
export class ForbiddenKeyError extends TicketsError {
  constructor(
    message: string,
    readonly caller: Caller,
  ) {
    super(403, 'FORBIDDEN', message);
  }
}

const UNKNOWN_KEY = '<unknown>';

export function createIdentityVerifier(options: IdentityVerifierOptions): IdentityVerifier {
  if (options.audience === '') throw new TypeError('IdentityVerifierOptions.audience is empty');
  const getKey = options.getKey ?? createRemoteJWKSet(options.jwks);
  // Compare digests so that the comparison takes the same time whatever the key's length.
  const keyDigests = new Map(
    [...(options.keys ?? new Map<string, string>())].map(([tenant, key]) => [tenant, sha256(key)]),
  );

  const identify = (presented: string): string => {
    const digest = sha256(presented);
    let match = UNKNOWN_KEY;
    for (const [tenant, expected] of keyDigests) {
      if (timingSafeEqual(digest, expected)) match = tenant;
    }
    return match;
  };

  return async (headers) => {
    const authorization = headers.authorization;
    const bearer = /^Bearer +([^\s]+) *$/i.exec(authorization ?? '');
    if (bearer === null) {
      throw new TicketsError(
        401,
        'UNAUTHENTICATED',
        authorization === undefined
          ? 'missing Authorization header; send "Bearer <token signed by the gateway>"'
          : 'Authorization header is not "Bearer <token>"',
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
    const { exp, iat, sub, tenant } = payload as typeof payload & { tenant?: unknown };
    if (exp! - iat! > MAX_TOKEN_LIFETIME_S) {
      throw new TicketsError(
        401,
        'UNAUTHENTICATED',
        `token lifetime exp - iat = ${exp! - iat!} s exceeds ${MAX_TOKEN_LIFETIME_S} s; ` +
          'the gateway must send short-lived tokens',
      );
    }
    if (typeof tenant !== 'string' || tenant === '') {
      throw new TicketsError(401, 'UNAUTHENTICATED', 'token has no "tenant" claim (a string)');
    }
    if (typeof sub !== 'string' || sub === '') {
      throw new TicketsError(401, 'UNAUTHENTICATED', 'token has no "sub" claim (a string)');
    }
    const caller: Caller = { tenant, subject: sub };
    const header = headers['x-api-key'];
    const presented = Array.isArray(header) ? header[0] : header;
    if (presented !== undefined) {
      caller.apiKey = keyDigests.size === 0 ? UNKNOWN_KEY : identify(presented);
    }
    if (keyDigests.size > 0) {
      if (!keyDigests.has(tenant)) {
        throw new ForbiddenKeyError(`no API key is configured for tenant "${tenant}"`, caller);
      }
      if (presented === undefined) {
        throw new ForbiddenKeyError(`missing x-api-key header (tenant "${tenant}")`, caller);
      }
      if (caller.apiKey !== tenant) {
        throw new ForbiddenKeyError(`x-api-key is not the key of tenant "${tenant}"`, caller);
      }
    }
    return caller;
  };
}

/**
 * jose's errors about the token are the caller's (401); failing to get the gateway's keys is
 * this service's trouble (503), so a JWKS outage does not read as "your token is bad".
 */
function translateVerifyError(err: unknown): TicketsError {
  const unavailable = (message: string): TicketsError =>
    new TicketsError(503, 'JWKS_UNAVAILABLE', `cannot load the gateway's keys: ${message}`);
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
    return unavailable(err.message);
  }
  if (err instanceof joseErrors.JOSEError) {
    // jose's untyped errors are the JWKS answer's (not 200, not JSON); the typed ones the token's.
    if (err.code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set/.test(err.message)) {
      return unavailable(err.message);
    }
    return new TicketsError(401, 'UNAUTHENTICATED', `token refused (${err.code}): ${err.message}`);
  }
  // A failed fetch of the JWKS (connection refused, DNS) reaches us as a plain TypeError.
  return unavailable(err instanceof Error ? err.message : String(err));
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
