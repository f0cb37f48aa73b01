import { GatewayError } from '../errors.js';

/** The protection-space name sent in every `WWW-Authenticate` challenge. */
export const AUTH_REALM = 'atrium';

/**
 * Short, client-safe reasons a token is refused. They go into `error_description`, so they are
 * fixed strings (no token, claim or key content) made only of characters RFC 6750 §3 allows.
 */
export type InvalidTokenReason =
  | 'token too large'
  | 'malformed token'
  | 'algorithm not allowed'
  | 'unsupported critical header'
  | 'invalid kid'
  | 'invalid signature'
  | 'no matching key'
  | 'signing keys unavailable'
  | 'unusable key'
  | 'token expired'
  | 'token not yet valid'
  | 'token issued in the future'
  | 'unexpected issuer'
  | 'unexpected audience'
  | 'unexpected token type'
  | 'missing exp claim'
  | 'missing iss claim'
  | 'missing aud claim'
  | 'missing sub claim'
  | 'invalid exp claim'
  | 'invalid nbf claim'
  | 'invalid iat claim'
  | 'invalid sub claim'
  | 'missing tenant claim'
  | 'conflicting tenant claims'
  | 'invalid tenant'
  | 'invalid scope claim'
  | 'invalid token';

/** `Bearer realm="atrium", error="invalid_token", error_description="…"` (RFC 6750 §3). */
export function invalidTokenChallenge(reason: InvalidTokenReason): string {
  return `Bearer realm="${AUTH_REALM}", error="invalid_token", error_description="${reason}"`;
}

/** `Bearer realm="atrium"`: no error code when the request carried no bearer credentials. */
export function missingTokenChallenge(): string {
  return `Bearer realm="${AUTH_REALM}"`;
}

/**
 * A 401 for a token that was sent but refused; it ends the request. `cause` is kept for server
 * logs only; the message and header carry nothing but the fixed reason.
 */
export function invalidTokenError(reason: InvalidTokenReason, cause?: unknown): GatewayError {
  return new GatewayError('UNAUTHENTICATED', `Invalid token: ${reason}.`, {
    cause,
    headers: { 'WWW-Authenticate': invalidTokenChallenge(reason) },
    request: true,
  });
}

/** A 401 for a request without bearer credentials (RFC 6750 §3.1: no error code). */
export function missingTokenError(): GatewayError {
  return new GatewayError(
    'UNAUTHENTICATED',
    'Authentication required: send a bearer token in the Authorization header.',
    { headers: { 'WWW-Authenticate': missingTokenChallenge() }, request: true },
  );
}

const CLAIM_REASONS: Readonly<Record<string, InvalidTokenReason>> = {
  'iss:check_failed': 'unexpected issuer',
  'iss:missing': 'missing iss claim',
  'aud:check_failed': 'unexpected audience',
  'aud:missing': 'missing aud claim',
  'typ:check_failed': 'unexpected token type',
  'nbf:check_failed': 'token not yet valid',
  'nbf:invalid': 'invalid nbf claim',
  'exp:missing': 'missing exp claim',
  'exp:invalid': 'invalid exp claim',
  'iat:invalid': 'invalid iat claim',
  'iat:check_failed': 'token issued in the future',
  'sub:missing': 'missing sub claim',
};

/** Reads a string property of an unknown thrown value without trusting its shape. */
function stringProp(error: unknown, name: string): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const value = (error as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * Maps an error thrown by jose (by its stable `code`, plus `claim`/`reason` for claim failures)
 * to the reason a client is told. Unknown errors become the generic 'invalid token'.
 */
export function reasonForJoseError(error: unknown): InvalidTokenReason {
  const code = stringProp(error, 'code');
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'token expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const key = `${stringProp(error, 'claim') ?? ''}:${stringProp(error, 'reason') ?? ''}`;
      return CLAIM_REASONS[key] ?? 'invalid token';
    }
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'algorithm not allowed';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'invalid signature';
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'malformed token';
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'no matching key';
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return 'signing keys unavailable';
    case 'ERR_JWK_INVALID':
      return 'unusable key';
    default:
      // jose throws TypeError when a key cannot be used with the token's alg (e.g. RSA < 2048).
      return error instanceof TypeError ? 'unusable key' : 'invalid token';
  }
}
