import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEMO_AUDIENCE,
  DEMO_ISSUER,
  DEV_PRIVATE_KEY_FILE,
  DEV_PUBLIC_KEY_FILE,
  devAuthConfig,
  loadOrCreateDevKeys,
  mintDevToken,
} from '../../../src/auth/dev-keys.js';
import { createTokenVerifier } from '../../../src/auth/verify-token.js';
import { expectInvalidToken } from './fixtures.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'atrium-dev-keys-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadOrCreateDevKeys', () => {
  it('creates the directory and 0600 JWK files, and loads the same key afterwards', async () => {
    const home = join(dir, 'nested', '.atrium');
    const first = await loadOrCreateDevKeys(home);
    expect(first.alg).toBe('ES256');
    expect(first.publicJwk).toMatchObject({
      kty: 'EC',
      crv: 'P-256',
      kid: first.kid,
      alg: 'ES256',
    });
    expect(first.publicJwk).not.toHaveProperty('d');
    for (const file of [DEV_PRIVATE_KEY_FILE, DEV_PUBLIC_KEY_FILE]) {
      expect((await stat(join(home, file))).mode & 0o777).toBe(0o600);
    }
    expect(JSON.parse(await readFile(join(home, DEV_PRIVATE_KEY_FILE), 'utf8'))).toHaveProperty(
      'd',
    );

    const second = await loadOrCreateDevKeys(home);
    expect(second.kid).toBe(first.kid);
    expect(second.publicJwk).toEqual(first.publicJwk);
  });

  it('concurrent first uses agree on one key', async () => {
    const all = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateDevKeys(dir)));
    expect(new Set(all.map((k) => k.kid)).size).toBe(1);
  });

  it('refuses a corrupted key file instead of replacing it', async () => {
    await writeFile(join(dir, DEV_PRIVATE_KEY_FILE), '{"kty":"RSA"}');
    await expect(loadOrCreateDevKeys(dir)).rejects.toThrow(/not a P-256 private JWK/);
  });
});

describe('mintDevToken', () => {
  it('mints a token the demo verifier accepts', async () => {
    const keys = await loadOrCreateDevKeys(dir);
    const token = await mintDevToken(keys, {
      tenant: 'acme',
      sub: 'alice',
      scope: 'read predict',
      expiresIn: '15m',
    });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', kid: keys.kid, typ: 'JWT' });
    const verifier = createTokenVerifier(devAuthConfig(keys));
    const principal = await verifier.verify(token);
    expect(principal).toMatchObject({
      tenantId: 'acme',
      subject: 'alice',
      scopes: ['read', 'predict'],
    });
    expect(principal.claims).toMatchObject({ iss: DEMO_ISSUER, aud: DEMO_AUDIENCE });
    expect(principal.expiresAt - (principal.claims.iat as number)).toBe(900);
  });

  it('a token of another dev key directory is refused', async () => {
    const mine = await loadOrCreateDevKeys(join(dir, 'a'));
    const theirs = await loadOrCreateDevKeys(join(dir, 'b'));
    const token = await mintDevToken(theirs, { tenant: 'acme' });
    await expectInvalidToken(
      createTokenVerifier(devAuthConfig(mine)).verify(token),
      'no matching key',
    );
  });

  it('rejects an invalid tenant id', async () => {
    const keys = await loadOrCreateDevKeys(dir);
    await expect(mintDevToken(keys, { tenant: 'Not_A_Tenant' })).rejects.toThrow(TypeError);
  });
});

describe('npm run token (scripts/token.ts)', () => {
  const script = (args: string[]) =>
    run(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/token.ts'), ...args], {
      cwd: ROOT,
      env: { ...process.env, ATRIUM_HOME: dir },
      timeout: 30_000,
    });

  it('prints a token signed with the key in ATRIUM_HOME', async () => {
    const { stdout } = await script([
      '--tenant',
      'globex',
      '--sub',
      'bob',
      '--scope',
      'read',
      '--ttl',
      '2h',
    ]);
    const token = stdout.trim();
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ tenant: 'globex', sub: 'bob', scope: 'read', iss: DEMO_ISSUER });
    expect(claims.exp! - claims.iat!).toBe(7200);
    // The gateway side loads the same directory and accepts it.
    const keys = await loadOrCreateDevKeys(dir);
    await expect(createTokenVerifier(devAuthConfig(keys)).verify(token)).resolves.toMatchObject({
      tenantId: 'globex',
    });
  });

  it.each([
    [['--tenant', 'ACME']],
    [['--sub', 'x']],
    [['--tenant', 'acme', '--ttl', 'forever']],
    [['--tenant', 'acme', '--bogus']],
  ])('exits 2 with usage on bad arguments %j', async (args) => {
    const error = (await script(args).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(error.code).toBe(2);
    expect(error.stderr).toMatch(/Usage: npm run token/);
  });
});
