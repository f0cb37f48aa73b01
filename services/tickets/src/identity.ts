/**
 * Who is calling: the short-lived token the gateway signs for this service (tenant, subject;
 * audience = this service), verified against the gateway's JWKS, plus, where the service is
 * configured with per-tenant API keys, the key of that tenant.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import { IdentityRefusal, verifyGatewayToken } from '../../gateway-identity.js';
import { TicketsError } from './errors.js';

export { ALLOWED_ALGORITHMS, MAX_TOKEN_LIFETIME_S } from '../../gateway-identity.js';

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
    let verified;
    try {
      verified = await verifyGatewayToken(headers, getKey, options);
    } catch (error) {
      if (error instanceof IdentityRefusal) {
        throw new TicketsError(error.status, error.code, error.message);
      }
      throw error;
    }
    const { tenant, subject: sub } = verified;
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

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
