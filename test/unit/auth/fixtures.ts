import { createHmac, generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { expect } from 'vitest';
import { GatewayError } from '../../../src/errors.js';

export const ISSUER = 'https://issuer.test/';
export const AUDIENCE = 'atrium-api';

export type TestAlg = 'RS256' | 'ES256' | 'EdDSA';

export interface TestKey {
  readonly alg: TestAlg;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  /** Public JWK with kid and alg. */
  readonly publicJwk: JWK;
  readonly publicPem: string;
}

/** A real, freshly generated key pair. */
export async function makeKey(alg: TestAlg, kid: string): Promise<TestKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg };
  const publicPem = await exportSPKI(pair.publicKey);
  return { alg, kid, privateKey: pair.privateKey, publicJwk, publicPem };
}

export function nowSeconds(ms = Date.now()): number {
  return Math.floor(ms / 1000);
}

export interface SignOptions {
  /** Protected header members added to (or, when undefined, removed from) `{ alg, kid }`. */
  header?: Record<string, unknown>;
  /** The time the token is made at (seconds); default now. */
  at?: number;
}

function defined(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined));
}

/** Default claims for a valid token at `at`; override or (with undefined) remove any. */
export function claimsAt(
  at: number,
  claims: Record<string, unknown> = {},
): Record<string, unknown> {
  return defined({
    iss: ISSUER,
    aud: AUDIENCE,
    sub: 'alice',
    tenant: 'acme',
    scope: 'read predict',
    iat: at,
    exp: at + 3600,
    ...claims,
  });
}

/** A really signed token (jose SignJWT) with valid defaults. */
export async function signToken(
  key: TestKey,
  claims: Record<string, unknown> = {},
  options: SignOptions = {},
): Promise<string> {
  const header = defined({ alg: key.alg, kid: key.kid, ...options.header });
  return new SignJWT(claimsAt(options.at ?? nowSeconds(), claims))
    .setProtectedHeader(header as { alg: string })
    .sign(key.privateKey);
}

export function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString(
    'base64url',
  );
}

/** A compact token assembled by hand, with any signature segment. */
export function rawToken(header: unknown, payload: unknown, signature: string): string {
  return `${b64url(header)}.${b64url(payload)}.${signature}`;
}

/** A token signed outside jose (for keys and algorithms jose refuses to sign with). */
export function signRaw(
  header: unknown,
  payload: unknown,
  signer: (signingInput: Buffer) => Buffer,
): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${signer(Buffer.from(input)).toString('base64url')}`;
}

/** HS256 "signature" using arbitrary bytes as the HMAC secret (the key-confusion attack). */
export function hmacSigner(secret: string | Buffer): (input: Buffer) => Buffer {
  return (input) => createHmac('sha256', secret).update(input).digest();
}

/** An RSA-1024 pair (jose refuses to generate or sign with one, so node:crypto does). */
export function rsa1024(kid: string): { privateKey: KeyObject; publicJwk: JWK; kid: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const publicJwk = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg: 'RS256' };
  return { privateKey, publicJwk, kid };
}

export function rs256Signer(privateKey: KeyObject): (input: Buffer) => Buffer {
  return (input) => nodeSign('sha256', input, privateKey);
}

export function invalidTokenHeader(reason: string): string {
  return `Bearer realm="atrium", error="invalid_token", error_description="${reason}"`;
}

/** The promise rejects with UNAUTHENTICATED, this exact reason, and leaks nothing. */
export async function expectInvalidToken(promise: Promise<unknown>, reason: string): Promise<void> {
  const error = await promise.then(
    (value) => {
      throw new Error(`expected UNAUTHENTICATED (${reason}), got ${JSON.stringify(value)}`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GatewayError);
  const gatewayError = error as GatewayError;
  expect(gatewayError.code).toBe('UNAUTHENTICATED');
  expect(gatewayError.status).toBe(401);
  expect(gatewayError.headers['WWW-Authenticate']).toBe(invalidTokenHeader(reason));
  // It ends the request: Apollo / the HTTP adapter answer 401 with the challenge header.
  const http = gatewayError.extensions.http as { status: number; headers: Map<string, string> };
  expect(http.status).toBe(401);
  expect(http.headers.get('WWW-Authenticate')).toBe(invalidTokenHeader(reason));
  // The message is the fixed reason and nothing else: no token, claim or key material.
  expect(gatewayError.message).toBe(`Invalid token: ${reason}.`);
}

/** A controllable clock (ms). */
export function fakeClock(start = Date.now()): {
  now: () => number;
  advance: (ms: number) => void;
} {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

export type JwksMode = 'ok' | 'hang' | 'error' | 'garbage' | 'redirect';

export interface JwksServer {
  readonly url: string;
  /** Requests received so far. */
  readonly requests: number;
  setKeys(keys: readonly JWK[]): void;
  setMode(mode: JwksMode, redirectTo?: string): void;
  /** Stops listening and drops every connection (also ones left hanging). */
  stop(): Promise<void>;
}

/** A real JWKS endpoint on 127.0.0.1 (port chosen by the OS) that counts requests. */
export async function startJwksServer(keys: readonly JWK[] = []): Promise<JwksServer> {
  let current = [...keys];
  let mode: JwksMode = 'ok';
  let redirectTarget = '';
  let requests = 0;
  const hanging = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    requests += 1;
    switch (mode) {
      case 'hang':
        hanging.add(res);
        return;
      case 'error':
        res.writeHead(500).end('boom');
        return;
      case 'garbage':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": [nope');
        return;
      case 'redirect':
        res.writeHead(302, { location: redirectTarget }).end();
        return;
      case 'ok':
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ keys: current }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let stopped = false;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get requests() {
      return requests;
    },
    setKeys(next) {
      current = [...next];
    },
    setMode(next, redirectTo = '') {
      mode = next;
      redirectTarget = redirectTo;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const res of hanging) res.destroy();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
