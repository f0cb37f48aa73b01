/**
 * Who is calling: the short-lived token the gateway signs for its realm (tenant, subject;
 * audience = this service), verified with jose against the gateway's JWKS — as
 * services/tickets does; the realm serves only the tenant the token names.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import { IdentityRefusal, verifyGatewayToken } from '../../gateway-identity.js';

export { ALLOWED_ALGORITHMS, MAX_TOKEN_LIFETIME_S } from '../../gateway-identity.js';

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
    try {
      const { tenant, subject, issuer } = await verifyGatewayToken(headers, getKey, options);
      return { tenant, subject, issuer, audience: options.audience };
    } catch (error) {
      if (error instanceof IdentityRefusal) {
        throw new RealmError(error.status, error.code, error.message);
      }
      throw error;
    }
  };
}
