import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

export const GATEWAY_ISSUER = 'https://gateway.test';
export const AUDIENCE = 'tickets';

/** A key pair of "the gateway": its public half is served by a {@link JwksServer}. */
export interface GatewayKey {
  kid: string;
  publicJwk: JWK;
  privateKey: CryptoKey;
}

export async function createGatewayKey(kid: string): Promise<GatewayKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  return {
    kid,
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' },
    privateKey,
  };
}

/** Claims and header of a test token; the defaults are what the gateway would send. */
export interface TokenSpec {
  tenant?: string | null;
  sub?: string | null;
  aud?: string;
  iss?: string;
  /** Seconds since the epoch (default: now). */
  iat?: number | null;
  /** Seconds since the epoch (default: iat + 30). */
  exp?: number;
}

/** A really signed ES256 token, as the gateway signs for a service. */
export function signToken(key: GatewayKey, spec: TokenSpec = {}): Promise<string> {
  const iat = spec.iat === undefined ? Math.floor(Date.now() / 1000) : spec.iat;
  const claims: Record<string, unknown> = {};
  if (spec.tenant !== null) claims.tenant = spec.tenant ?? 'acme';
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(spec.iss ?? GATEWAY_ISSUER)
    .setAudience(spec.aud ?? AUDIENCE)
    .setExpirationTime(spec.exp ?? (iat ?? Math.floor(Date.now() / 1000)) + 30);
  if (spec.sub !== null) jwt.setSubject(spec.sub ?? 'alice');
  if (iat !== null) jwt.setIssuedAt(iat);
  return jwt.sign(key.privateKey);
}

/** A tiny JWKS endpoint, as the gateway's `/.well-known/jwks.json`. */
export interface JwksServer {
  url: string;
  close(): Promise<void>;
}

export async function startJwksServer(keys: JWK[]): Promise<JwksServer> {
  const server: Server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** An HTTP answer with its body as text and, when it parses, as JSON. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  body: unknown;
}

export async function call(
  url: string,
  options: {
    token?: string;
    apiKey?: string;
    headers?: Record<string, string>;
    method?: string;
    body?: unknown;
    signal?: AbortSignal;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.apiKey !== undefined) headers['x-api-key'] = options.apiKey;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, {
    method: options.method ?? 'GET',
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, body };
}

/** The `items` of a tickets answer. */
export function items(answer: Answer): Array<Record<string, unknown>> {
  const body = answer.body as { items?: Array<Record<string, unknown>> } | undefined;
  if (answer.status !== 200 || !Array.isArray(body?.items)) {
    throw new Error(`expected 200 { items }, got ${answer.status} ${answer.text.slice(0, 300)}`);
  }
  return body.items;
}
