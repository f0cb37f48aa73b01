import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  createLocalJWKSet,
  importJWK,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
  type LocalJWKSet,
} from 'jose';
import type { ASYMMETRIC_ALGORITHMS } from '../config/schema.js';

/** An asymmetric JWS algorithm Atrium verifies with public keys. */
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

/**
 * What a key is looked up by: the token's `alg` and `kid` and nothing else. Other header
 * parameters (`jwk`, `jku`, `x5u`, `x5c`) are attacker-controlled and never reach a key source.
 */
export interface KeySelector {
  readonly alg: string;
  readonly kid?: string | undefined;
}

/** A place verification keys come from (static configuration, a remote JWKS). */
export interface KeySource {
  /**
   * Candidate public keys for a token, best match first; empty when this source has no key for
   * it. Rejects with {@link KeysUnavailableError} when the source cannot answer at all.
   */
  keysFor(selector: KeySelector): Promise<readonly CryptoKey[]>;
}

/** A key source has no usable key set (e.g. a JWKS endpoint down past the staleness bound). */
export class KeysUnavailableError extends Error {
  override name = 'KeysUnavailableError';
}

/** A configured public key (the `auth.keys[]` entries of the config file). */
export interface StaticKeyConfig {
  /** Matched against the token's `kid`; a key without one matches any `kid`. */
  kid?: string | undefined;
  /** Restricts the key to one algorithm; otherwise every configured algorithm its type fits. */
  alg?: string | undefined;
  /** SPKI PEM public key (or an X.509 certificate PEM). */
  pem?: string | undefined;
  /** Public JWK. */
  jwk?: Record<string, unknown> | undefined;
}

/** Upper bound on keys tried for one token, so a crafted header cannot cost N verifications. */
export const MAX_KEY_CANDIDATES = 4;

const KEY_TYPES: Readonly<Record<AsymmetricAlgorithm, { kty: string; crv?: string }>> = {
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
};

export function isAsymmetricAlgorithm(alg: string): alg is AsymmetricAlgorithm {
  return Object.hasOwn(KEY_TYPES, alg);
}

/** Whether a public JWK can verify signatures made with `alg` (key type and curve). */
export function keyFitsAlgorithm(jwk: JWK, alg: string): boolean {
  if (!isAsymmetricAlgorithm(alg)) return false;
  const expected = KEY_TYPES[alg];
  return jwk.kty === expected.kty && (expected.crv === undefined || jwk.crv === expected.crv);
}

interface StaticKey {
  readonly kid: string | undefined;
  readonly alg: string | undefined;
  readonly jwk: JWK;
  /** Imported CryptoKeys by algorithm, created on first use. */
  readonly imported: Map<string, Promise<CryptoKey>>;
}

function toPublicJwk(config: StaticKeyConfig, where: string): JWK {
  let keyObject: KeyObject;
  try {
    if (config.pem !== undefined) {
      keyObject = createPublicKey(config.pem);
    } else if (config.jwk !== undefined) {
      if ('d' in config.jwk || 'k' in config.jwk) {
        throw new TypeError('it holds private or secret key material; configure the public key');
      }
      keyObject = createPublicKey({ key: config.jwk as never, format: 'jwk' });
    } else {
      throw new TypeError('exactly one of pem or jwk is required');
    }
  } catch (error) {
    throw new TypeError(`${where} is not a usable public key: ${(error as Error).message}`);
  }
  const details = keyObject.asymmetricKeyDetails;
  if (keyObject.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) < 2048) {
    throw new TypeError(
      `${where} is an RSA key of ${details?.modulusLength ?? '?'} bits; 2048 or more is required`,
    );
  }
  try {
    return keyObject.export({ format: 'jwk' }) as JWK;
  } catch (error) {
    throw new TypeError(`${where} cannot be used as a JWK: ${(error as Error).message}`);
  }
}

/**
 * Public keys from configuration. Keys are parsed and checked when the source is created (a bad
 * key fails the start, naming its index), and imported per algorithm on first use.
 *
 * Selection: a token with `kid` uses the keys with that kid, else the keys configured without
 * one; a token without `kid` may use any key. Keys must fit the token's `alg` (type, curve, and
 * the key's own `alg` when set).
 */
export function createStaticKeySource(
  configs: readonly StaticKeyConfig[],
  options: { algorithms: readonly string[] },
): KeySource {
  const keys: StaticKey[] = configs.map((config, index) => {
    const where = `auth.keys[${index}]`;
    const jwk = toPublicJwk(config, where);
    const jwkAlg = config.jwk?.['alg'];
    const jwkKid = config.jwk?.['kid'];
    const alg = config.alg ?? (typeof jwkAlg === 'string' ? jwkAlg : undefined);
    const kid = config.kid ?? (typeof jwkKid === 'string' ? jwkKid : undefined);
    if (alg !== undefined) {
      if (!options.algorithms.includes(alg) || !isAsymmetricAlgorithm(alg)) {
        throw new TypeError(
          `${where}.alg is ${JSON.stringify(alg)}, which is not an allowed asymmetric algorithm (${options.algorithms.join(', ')})`,
        );
      }
      if (!keyFitsAlgorithm(jwk, alg)) {
        throw new TypeError(`${where} is a ${jwk.kty} key and cannot verify ${alg}`);
      }
    } else if (!options.algorithms.some((a) => keyFitsAlgorithm(jwk, a))) {
      throw new TypeError(
        `${where} is a ${jwk.kty} key that fits none of the allowed algorithms (${options.algorithms.join(', ')})`,
      );
    }
    return { kid, alg, jwk, imported: new Map() };
  });

  function importFor(key: StaticKey, alg: string): Promise<CryptoKey> {
    let pending = key.imported.get(alg);
    if (pending === undefined) {
      pending = importJWK(key.jwk, alg) as Promise<CryptoKey>;
      // A failed import is not cached, so it is not remembered forever (it should not happen:
      // the key was parsed at start).
      pending.catch(() => key.imported.delete(alg));
      key.imported.set(alg, pending);
    }
    return pending;
  }

  return {
    async keysFor({ alg, kid }) {
      const fitting = keys.filter(
        (k) => (k.alg === undefined || k.alg === alg) && keyFitsAlgorithm(k.jwk, alg),
      );
      let chosen = fitting;
      if (kid !== undefined) {
        const exact = fitting.filter((k) => k.kid === kid);
        chosen = exact.length > 0 ? exact : fitting.filter((k) => k.kid === undefined);
      }
      return Promise.all(chosen.slice(0, MAX_KEY_CANDIDATES).map((k) => importFor(k, alg)));
    },
  };
}

/**
 * Selects keys from a JSON Web Key Set with jose's rules (`kid`, `alg`, `use`, `key_ops`).
 * Returns at most {@link MAX_KEY_CANDIDATES} keys; keys that fail to import are skipped.
 */
export async function selectFromKeySet(
  set: LocalJWKSet,
  selector: KeySelector,
): Promise<readonly CryptoKey[]> {
  if (!isAsymmetricAlgorithm(selector.alg)) return [];
  try {
    // Only alg and kid are passed on: jose never sees the token's other header parameters.
    return [await set({ alg: selector.alg, kid: selector.kid })];
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_JWKS_NO_MATCHING_KEY') return [];
    if (code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') {
      const keys: CryptoKey[] = [];
      for await (const key of error as AsyncIterable<CryptoKey>) {
        keys.push(key);
        if (keys.length >= MAX_KEY_CANDIDATES) break;
      }
      return keys;
    }
    throw error;
  }
}

/** Builds a local key set, rejecting anything that is not a JWKS. */
export function localKeySet(jwks: unknown): LocalJWKSet {
  return createLocalJWKSet(jwks as JSONWebKeySet);
}
