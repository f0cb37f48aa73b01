import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  SignJWT,
  type CryptoKey,
  type JWK,
} from 'jose';
import {
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  DEFAULT_TENANT_CLAIMS,
  DEFAULT_TOKEN_CACHE_MAX,
  TENANT_ID_PATTERN,
  type AuthConfig,
} from '../config/schema.js';

/** Issuer of demo-mode tokens. */
export const DEMO_ISSUER = 'https://atrium.local/demo';
/** Audience of demo-mode tokens. */
export const DEMO_AUDIENCE = 'atrium';
/** Lifetime of a demo token unless told otherwise. */
export const DEMO_TOKEN_TTL = '1h';
/** The private key file inside the dev key directory (a JWK; mode 0600). */
export const DEV_PRIVATE_KEY_FILE = 'dev-signing-key.private.jwk.json';
/** The public key file inside the dev key directory (a JWK). */
export const DEV_PUBLIC_KEY_FILE = 'dev-signing-key.public.jwk.json';

/** The demo signing key pair, shared by the gateway and `npm run token` through files. */
export interface DevKeys {
  readonly privateKey: CryptoKey;
  /** Public JWK with `kid`, `alg` and `use`, ready to be a static key or a JWKS member. */
  readonly publicJwk: JWK;
  /** RFC 7638 thumbprint of the public key. */
  readonly kid: string;
  readonly alg: 'ES256';
}

function isNodeError(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}

async function readPrivateJwk(path: string): Promise<JWK | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isNodeError(error, 'ENOENT')) return undefined;
    throw error;
  }
  let jwk: unknown;
  try {
    jwk = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not a JSON Web Key; delete it to generate a new dev key pair`);
  }
  const candidate = jwk as Partial<JWK> | null;
  if (
    candidate?.kty !== 'EC' ||
    candidate.crv !== 'P-256' ||
    typeof candidate.d !== 'string' ||
    typeof candidate.x !== 'string' ||
    typeof candidate.y !== 'string'
  ) {
    throw new Error(`${path} is not a P-256 private JWK; delete it to generate a new dev key pair`);
  }
  return candidate as JWK;
}

/**
 * Writes `content` to `path` only if nothing is there, atomically: readers never see a partial
 * file, and of two processes racing to create the key, exactly one wins (the loser reads the
 * winner's key).
 */
async function createExclusive(path: string, content: string): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, content, { mode: 0o600, flag: 'wx' });
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    if (isNodeError(error, 'EEXIST')) return false;
    throw error;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

async function writeReplacing(path: string, content: string): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, content, { mode: 0o600, flag: 'wx' });
  await rename(temp, path);
  await chmod(path, 0o600);
}

/**
 * Loads the demo ES256 key pair from `dir`, generating it on first use. `dir` is created (0700)
 * if missing; the key files are written with mode 0600. Safe when the gateway and
 * `npm run token` start at the same moment: both end up with the same key.
 */
export async function loadOrCreateDevKeys(dir: string): Promise<DevKeys> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const privatePath = join(dir, DEV_PRIVATE_KEY_FILE);
  let privateJwk = await readPrivateJwk(privatePath);
  if (privateJwk === undefined) {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const generated = await exportJWK(pair.privateKey);
    const created = await createExclusive(privatePath, `${JSON.stringify(generated, null, 2)}\n`);
    privateJwk = created ? generated : await readPrivateJwk(privatePath);
    if (privateJwk === undefined) throw new Error(`${privatePath} vanished while being created`);
  }
  const { kty, crv, x, y } = privateJwk;
  const publicBase: JWK = { kty, crv, x, y };
  const kid = await calculateJwkThumbprint(publicBase);
  const publicJwk: JWK = { ...publicBase, kid, alg: 'ES256', use: 'sig' };
  await writeReplacing(join(dir, DEV_PUBLIC_KEY_FILE), `${JSON.stringify(publicJwk, null, 2)}\n`);
  const privateKey = (await importJWK(privateJwk, 'ES256')) as CryptoKey;
  return { privateKey, publicJwk, kid, alg: 'ES256' };
}

export interface DevTokenClaims {
  /** Tenant id, put in the `tenant` claim. */
  tenant: string;
  /** Default `demo-user`. */
  sub?: string | undefined;
  /** Space-separated scopes; default `read predict`. */
  scope?: string | undefined;
  /** Default {@link DEMO_ISSUER}. */
  issuer?: string | undefined;
  /** Default {@link DEMO_AUDIENCE}. */
  audience?: string | undefined;
  /** Seconds, or a jose duration such as `15m` or `1h`. Default {@link DEMO_TOKEN_TTL}. */
  expiresIn?: number | string | undefined;
}

/** Signs a demo token with the dev key (ES256, `typ: JWT`, `kid` set). */
export async function mintDevToken(
  keys: Pick<DevKeys, 'privateKey' | 'kid'>,
  claims: DevTokenClaims,
): Promise<string> {
  if (!TENANT_ID_PATTERN.test(claims.tenant)) {
    throw new TypeError(
      `tenant must be a lowercase DNS label such as "acme"; got ${JSON.stringify(claims.tenant)}`,
    );
  }
  const expiresIn = claims.expiresIn ?? DEMO_TOKEN_TTL;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ tenant: claims.tenant, scope: claims.scope ?? 'read predict' })
    .setProtectedHeader({ alg: 'ES256', kid: keys.kid, typ: 'JWT' })
    .setSubject(claims.sub ?? 'demo-user')
    .setIssuer(claims.issuer ?? DEMO_ISSUER)
    .setAudience(claims.audience ?? DEMO_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(typeof expiresIn === 'number' ? now + expiresIn : expiresIn)
    .sign(keys.privateKey);
}

/** The auth settings demo mode runs with: the dev public key, demo issuer and audience. */
export function devAuthConfig(keys: Pick<DevKeys, 'publicJwk' | 'kid'>): AuthConfig {
  return {
    issuer: DEMO_ISSUER,
    audience: DEMO_AUDIENCE,
    algorithms: ['ES256'],
    tenantClaims: [...DEFAULT_TENANT_CLAIMS],
    clockToleranceSeconds: DEFAULT_CLOCK_TOLERANCE_SECONDS,
    keys: [{ kid: keys.kid, alg: 'ES256', jwk: { ...keys.publicJwk } }],
    tokenCacheMax: DEFAULT_TOKEN_CACHE_MAX,
  };
}
