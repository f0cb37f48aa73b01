import { createHash } from 'node:crypto';
import { jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { LRUCache } from 'lru-cache';
import {
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  DEFAULT_TENANT_CLAIMS,
  DEFAULT_TOKEN_CACHE_MAX,
  TENANT_ID_PATTERN,
} from '../config/schema.js';
import type { GatewayError } from '../errors.js';
import {
  invalidTokenError,
  missingTokenError,
  reasonForJoseError,
  type InvalidTokenReason,
} from './auth-error.js';
import {
  createStaticKeySource,
  isAsymmetricAlgorithm,
  KeysUnavailableError,
  type KeySelector,
  type KeySource,
  type StaticKeyConfig,
} from './key-sources.js';
import type { Principal } from './principal.js';
import {
  createRemoteJwks,
  type JwksFetch,
  type RemoteJwks,
  type RemoteJwksStatus,
} from './remote-jwks.js';

/** Tokens longer than this are refused before any parsing (8 KiB). */
export const DEFAULT_MAX_TOKEN_LENGTH = 8 * 1024;
/** Authorization headers remembered by their text in front of the token cache. */
const RECENT_HEADERS = 256;
/** `kid` values longer than this are refused; real ones are short ids or thumbprints. */
const MAX_KID_LENGTH = 256;
/** Three non-empty base64url segments: the only shape a JWS compact JWT can have. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const HS256 = 'HS256';

/**
 * How tokens are verified. `AuthConfig` (src/config/schema.ts) is assignable to it, so the
 * composition root passes `{ ...config.auth, fetch, now }`.
 */
export interface TokenVerifierOptions {
  /** Accepted `iss` value(s); the claim is required. */
  issuer: string | readonly string[];
  /** Accepted `aud` value(s); the claim is required. */
  audience: string | readonly string[];
  /** Accepted `alg` values, case-sensitive. `none` is never accepted; HS256 needs `hs256Secret`. */
  algorithms: readonly string[];
  /** Claims that may carry the tenant id, in order of preference. */
  tenantClaims?: readonly string[] | undefined;
  /** Allowed clock skew for `exp`, `nbf` and `iat`. Default 30. */
  clockToleranceSeconds?: number | undefined;
  /** Required `typ` header (compared as jose does: `at+jwt` ≡ `application/at+jwt`). */
  typ?: string | undefined;
  /** Static public keys. */
  keys?: readonly StaticKeyConfig[] | undefined;
  /** HS256 shared secret (≥ 32 characters); used only if HS256 is in `algorithms`. */
  hs256Secret?: string | undefined;
  /** Remote JWKS; see {@link createRemoteJwks} for the meaning of each bound. */
  jwks?:
    | {
        url: string;
        timeoutMs?: number | undefined;
        cooldownMs?: number | undefined;
        maxAgeMs?: number | undefined;
        maxStaleMs?: number | undefined;
      }
    | undefined;
  /** Verified tokens remembered (by SHA-256 of the token) until they expire; 0 disables. */
  tokenCacheMax?: number | undefined;
  /** Fetch used for the JWKS (e.g. undici's, bound to a dispatcher). Default global fetch. */
  fetch?: JwksFetch | undefined;
  /** Milliseconds since the epoch; drives claim checks, the token cache and JWKS ages. */
  now?: (() => number) | undefined;
  /** Default {@link DEFAULT_MAX_TOKEN_LENGTH}. */
  maxTokenLength?: number | undefined;
  /** Told about each failed JWKS fetch (for logs); must not throw. */
  onJwksError?: ((error: Error) => void) | undefined;
}

export interface TokenVerifierStats {
  /** Tokens answered from the verified-token cache, without a signature check. */
  readonly cacheHits: number;
  /** Tokens that went through full verification (successful or not). */
  readonly verifications: number;
  readonly cacheSize: number;
  /** Present when a JWKS is configured. */
  readonly jwks?: RemoteJwksStatus;
}

/** Verifies bearer tokens into Principals. Every failure is a `GatewayError('UNAUTHENTICATED')`. */
export interface TokenVerifier {
  /** Verifies a compact JWT. Rejects with UNAUTHENTICATED + a `WWW-Authenticate` header. */
  verify(token: string): Promise<Principal>;
  /**
   * Verifies an `Authorization` header value. Missing, empty or non-Bearer → UNAUTHENTICATED
   * with `WWW-Authenticate: Bearer realm="atrium"` (no error code, RFC 6750 §3.1).
   */
  verifyAuthorizationHeader(header: string | undefined): Promise<Principal>;
  /**
   * Loads the remote JWKS if one is configured (never rejects). Resolves whether tokens can be
   * verified now: true without a JWKS; with one, whether a usable key set is held.
   */
  ready(): Promise<boolean>;
  stats(): TokenVerifierStats;
}

interface CacheEntry {
  readonly principal: Principal;
  readonly expiresAtMs: number;
}

class InvalidToken extends Error {
  constructor(
    readonly reason: InvalidTokenReason,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
  }
}

function fail(reason: InvalidTokenReason, cause?: unknown): never {
  throw new InvalidToken(reason, { cause });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/**
 * Reads `alg` and `kid` from the (still unverified) protected header and refuses what no valid
 * token can contain, before any key lookup or signature work.
 */
function parseHeader(token: string, algorithms: ReadonlySet<string>): KeySelector {
  const encoded = token.slice(0, token.indexOf('.'));
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch (error) {
    fail('malformed token', error);
  }
  if (!isRecord(header)) fail('malformed token');
  const { alg, kid } = header;
  // Exact, case-sensitive match: "none", "None", "NONE" and friends are never listed.
  if (typeof alg !== 'string' || !algorithms.has(alg)) fail('algorithm not allowed');
  // No extension is understood here, so any critical one must be refused (RFC 7515 §4.1.11).
  if (header.crit !== undefined) fail('unsupported critical header');
  if (kid !== undefined && (typeof kid !== 'string' || kid === '' || kid.length > MAX_KID_LENGTH)) {
    fail('invalid kid');
  }
  return { alg, kid };
}

function tenantFrom(payload: JWTPayload, tenantClaims: readonly string[]): string {
  let tenant: string | undefined;
  for (const claim of tenantClaims) {
    if (!Object.hasOwn(payload, claim)) continue;
    const value = payload[claim];
    if (typeof value !== 'string') fail('invalid tenant');
    if (tenant === undefined) tenant = value;
    else if (value !== tenant) fail('conflicting tenant claims');
  }
  if (tenant === undefined) fail('missing tenant claim');
  if (!TENANT_ID_PATTERN.test(tenant)) fail('invalid tenant');
  return tenant;
}

function scopeList(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/\s+/).filter((s) => s !== '');
  if (Array.isArray(value) && value.every((s): s is string => typeof s === 'string')) {
    return value.filter((s) => s !== '');
  }
  fail('invalid scope claim');
}

/** Scopes from `scope` (space-separated), `scp` and `roles` (arrays or strings), de-duplicated. */
function scopesFrom(payload: JWTPayload): string[] {
  const scopes = new Set<string>();
  for (const claim of ['scope', 'scp', 'roles'] as const) {
    if (payload[claim] === undefined) continue;
    for (const scope of scopeList(payload[claim])) scopes.add(scope);
  }
  return [...scopes];
}

function validateOptions(options: TokenVerifierOptions): void {
  const { algorithms, hs256Secret } = options;
  if (algorithms.length === 0) throw new TypeError('auth.algorithms must not be empty');
  for (const alg of algorithms) {
    if (alg !== HS256 && !isAsymmetricAlgorithm(alg)) {
      throw new TypeError(`auth.algorithms contains unsupported algorithm ${JSON.stringify(alg)}`);
    }
  }
  if (algorithms.includes(HS256) && (hs256Secret === undefined || hs256Secret.length < 32)) {
    throw new TypeError('auth.algorithms lists HS256 but no hs256Secret of 32+ characters is set');
  }
  const hasAsymmetricSource = (options.keys?.length ?? 0) > 0 || options.jwks !== undefined;
  if (!hasAsymmetricSource && !algorithms.includes(HS256)) {
    throw new TypeError('auth needs a key source: keys, jwks, or HS256 with hs256Secret');
  }
  const listed = (v: string | readonly string[]) => (typeof v === 'string' ? [v] : v);
  if (listed(options.issuer).length === 0 || listed(options.issuer).some((i) => i === '')) {
    throw new TypeError('auth.issuer must be a non-empty string or list');
  }
  if (listed(options.audience).length === 0 || listed(options.audience).some((a) => a === '')) {
    throw new TypeError('auth.audience must be a non-empty string or list');
  }
  if (options.tenantClaims !== undefined && options.tenantClaims.length === 0) {
    throw new TypeError('auth.tenantClaims must not be empty');
  }
  const tolerance = options.clockToleranceSeconds;
  if (tolerance !== undefined && !(Number.isFinite(tolerance) && tolerance >= 0)) {
    throw new TypeError(
      `auth.clockToleranceSeconds must be a non-negative number; got ${tolerance}`,
    );
  }
}

/**
 * Builds the bearer-token verifier. Caller mistakes (no key source, HS256 without a secret, a bad
 * static key) throw `TypeError` here, at start; bad tokens reject later with UNAUTHENTICATED.
 *
 * Verification: length and shape checks; `alg` pinned to `algorithms`; no `crit`; the key found
 * by `alg`/`kid` alone (static keys first, then the JWKS; HS256 only ever uses the shared secret,
 * asymmetric algorithms only public keys); signature; `iss`, `aud`, `exp` (required), `nbf`,
 * `iat`, `typ`; then `sub`, the tenant and the scopes. Results are cached until `exp`.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  validateOptions(options);
  const algorithms = new Set(options.algorithms);
  const now = options.now ?? Date.now;
  const tolerance = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  const tenantClaims = options.tenantClaims ?? DEFAULT_TENANT_CLAIMS;
  const maxTokenLength = options.maxTokenLength ?? DEFAULT_MAX_TOKEN_LENGTH;
  const asymmetric = [...algorithms].filter((a) => a !== HS256);
  const staticKeys: KeySource | undefined =
    options.keys && options.keys.length > 0
      ? createStaticKeySource(options.keys, { algorithms: asymmetric })
      : undefined;
  const remote: RemoteJwks | undefined = options.jwks
    ? createRemoteJwks({
        ...options.jwks,
        fetch: options.fetch,
        now,
        onFetchError: options.onJwksError,
      })
    : undefined;
  const secret =
    algorithms.has(HS256) && options.hs256Secret !== undefined
      ? new TextEncoder().encode(options.hs256Secret)
      : undefined;
  const baseVerifyOptions: JWTVerifyOptions = {
    algorithms: [...algorithms],
    issuer: typeof options.issuer === 'string' ? options.issuer : [...options.issuer],
    audience: typeof options.audience === 'string' ? options.audience : [...options.audience],
    clockTolerance: tolerance,
    requiredClaims: ['exp', 'sub'],
    ...(options.typ !== undefined && { typ: options.typ }),
  };

  const maxEntries = options.tokenCacheMax ?? DEFAULT_TOKEN_CACHE_MAX;
  const cache =
    maxEntries > 0
      ? new LRUCache<string, CacheEntry>({ max: maxEntries, perf: { now } })
      : undefined;
  const inflight = new Map<string, Promise<Principal>>();
  // In front of the cache: the last few Authorization headers verified, by their own text, so
  // a client that sends the same token again costs a map lookup instead of a SHA-256. Bounded
  // by count (and each header by maxTokenLength): at most RECENT_HEADERS raw tokens are kept.
  const recent = maxEntries > 0 ? new Map<string, CacheEntry>() : undefined;
  const recentMax = Math.min(RECENT_HEADERS, maxEntries);
  let cacheHits = 0;
  let verifications = 0;

  async function candidateKeys(
    selector: KeySelector,
  ): Promise<readonly (CryptoKey | Uint8Array)[]> {
    // The secret is reachable only through HS256, and HS256 reaches nothing else: a token "signed"
    // with a public key's bytes as an HMAC secret can never be checked against that public key.
    if (selector.alg === HS256) return secret ? [secret] : [];
    const fromStatic = staticKeys ? await staticKeys.keysFor(selector) : [];
    if (fromStatic.length > 0 || remote === undefined) return fromStatic;
    return remote.keysFor(selector);
  }

  function toPrincipal(payload: JWTPayload): Principal {
    const { sub, exp, iat } = payload;
    if (typeof sub !== 'string' || sub === '') fail('invalid sub claim');
    if (typeof exp !== 'number') fail('invalid exp claim');
    // jose checks iat only with maxTokenAge; a token from the future is refused here.
    if (typeof iat === 'number' && iat > now() / 1000 + tolerance)
      fail('token issued in the future');
    return deepFreeze({
      tenantId: tenantFrom(payload, tenantClaims),
      subject: sub,
      scopes: scopesFrom(payload),
      claims: payload,
      expiresAt: exp,
    });
  }

  async function verifyUncached(token: string): Promise<Principal> {
    const selector = parseHeader(token, algorithms);
    let keys: readonly (CryptoKey | Uint8Array)[];
    try {
      keys = await candidateKeys(selector);
    } catch (error) {
      fail(
        error instanceof KeysUnavailableError
          ? 'signing keys unavailable'
          : reasonForJoseError(error),
        error,
      );
    }
    if (keys.length === 0) fail('no matching key');
    const verifyOptions = { ...baseVerifyOptions, currentDate: new Date(now()) };
    let lastError: unknown;
    for (const key of keys) {
      try {
        const { payload } = await jwtVerify(token, key, verifyOptions);
        return toPrincipal(payload);
      } catch (error) {
        if (error instanceof InvalidToken) throw error;
        const code = (error as { code?: unknown }).code;
        // Only a key that did not fit is worth trying the next candidate for; a claim failure
        // would repeat with every key.
        if (code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' && !(error instanceof TypeError)) {
          fail(reasonForJoseError(error), error);
        }
        lastError = error;
      }
    }
    fail(reasonForJoseError(lastError), lastError);
  }

  async function verifyAndCache(token: string, key: string): Promise<Principal> {
    verifications += 1;
    const principal = await verifyUncached(token);
    const expiresAtMs = principal.expiresAt * 1000;
    // Cached only until exp, never into the clock-tolerance window: past exp the token is
    // verified again, and refused once the tolerance is spent too.
    const ttl = Math.floor(expiresAtMs - now());
    if (cache && ttl > 0) cache.set(key, { principal, expiresAtMs }, { ttl });
    return principal;
  }

  function toGatewayError(error: unknown): GatewayError {
    if (error instanceof InvalidToken) return invalidTokenError(error.reason, error.cause);
    return invalidTokenError('invalid token', error);
  }

  async function verify(token: string): Promise<Principal> {
    try {
      if (typeof token !== 'string' || token === '') fail('malformed token');
      if (token.length > maxTokenLength) fail('token too large');
      if (!COMPACT_JWS.test(token)) fail('malformed token');
      const key = tokenHash(token);
      const entry = cache?.get(key);
      if (entry !== undefined) {
        if (entry.expiresAtMs > now()) {
          cacheHits += 1;
          return entry.principal;
        }
        cache?.delete(key);
      }
      let pending = inflight.get(key);
      if (pending === undefined) {
        pending = verifyAndCache(token, key).finally(() => inflight.delete(key));
        inflight.set(key, pending);
      }
      return await pending;
    } catch (error) {
      throw toGatewayError(error);
    }
  }

  return {
    verify,

    async verifyAuthorizationHeader(header) {
      const known = header === undefined ? undefined : recent?.get(header);
      if (known !== undefined) {
        if (known.expiresAtMs > now()) {
          cacheHits += 1;
          return known.principal;
        }
        recent?.delete(header as string);
      }
      if (header === undefined || header.trim() === '') throw missingTokenError();
      if (header.length > maxTokenLength + 64) throw invalidTokenError('token too large');
      const [scheme = '', ...rest] = header.trim().split(/\s+/);
      // Another scheme (Basic, …) carries no bearer credentials: challenge without an error code.
      if (scheme.toLowerCase() !== 'bearer') throw missingTokenError();
      const [token] = rest;
      if (token === undefined || rest.length !== 1) throw invalidTokenError('malformed token');
      const principal = await verify(token);
      if (recent !== undefined) {
        if (recent.size >= recentMax) recent.delete(recent.keys().next().value as string);
        recent.set(header, { principal, expiresAtMs: principal.expiresAt * 1000 });
      }
      return principal;
    },

    async ready() {
      return remote === undefined ? true : remote.refresh();
    },

    stats() {
      return {
        cacheHits,
        verifications,
        cacheSize: cache?.size ?? 0,
        ...(remote !== undefined && { jwks: remote.status() }),
      };
    },
  };
}
