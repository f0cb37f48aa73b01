import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { GatewayError } from '../errors.js';
import { isLoopbackRequest } from './loopback.js';

/** The files `npm run build:playground` writes into the assets folder. */
export const PLAYGROUND_ASSETS = ['playground.js', 'playground.css'] as const;

/** One entry of the demo tenant picker. */
export interface DevTokenEntry {
  tenant: string;
  displayName: string;
  token: string;
}

export interface PlaygroundOptions {
  /** The folder holding the built front-end ({@link PLAYGROUND_ASSETS}). */
  assetsDir: string;
  /**
   * Demo mode only (never under NODE_ENV=production): mints a token per tenant for the tenant
   * picker, answered to clients on this host only (see `isLoopbackRequest`). Omitted → no
   * picker, and GET /playground/dev-tokens is not routed (404).
   */
  devTokens?: (() => Promise<readonly DevTokenEntry[]>) | undefined;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

export interface Playground {
  /** The HTML page; the gateway also answers browsers on its GraphQL paths with it. */
  page: Handler;
  /** GET /playground, its assets and (demo mode) /playground/dev-tokens. */
  routes: Readonly<Record<string, Handler>>;
}

/**
 * Everything the page may load comes from this origin; no inline script or style at all, so
 * neither needs a hash. GraphiQL ships its fonts as data: URLs inside its CSS.
 */
export const PLAYGROUND_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': PLAYGROUND_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
};

const CONTENT_TYPES: Readonly<Record<(typeof PLAYGROUND_ASSETS)[number], string>> = {
  'playground.js': 'text/javascript; charset=utf-8',
  'playground.css': 'text/css; charset=utf-8',
};

interface Asset {
  body: Buffer;
  gzipped: Buffer;
  etag: string;
  contentType: string;
}

const GRAPHQL_PATH = /^(?:\/t\/[^/]+)?\/graphql\/?$/;

/** The q value the Accept header gives a media type (most specific matching range wins). */
function quality(accept: string, type: string): number {
  const [major] = type.split('/');
  let best = -1;
  let q = 0;
  for (const part of accept.split(',')) {
    const [range = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const specificity =
      range === type ? 2 : range === `${major}/*` ? 1 : range === '*/*' ? 0 : undefined;
    if (specificity === undefined || specificity < best) continue;
    const qParam = params.find((p) => p.startsWith('q='));
    const value = qParam === undefined ? 1 : Number(qParam.slice(2));
    best = specificity;
    q = Number.isFinite(value) ? Math.min(Math.max(value, 0), 1) : 0;
  }
  return q;
}

/**
 * True when the client would rather have HTML than a GraphQL JSON answer: a browser navigating
 * to the endpoint. `*\/*` alone (curl, fetch) is not a preference, so API clients keep getting
 * the API.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  const html = quality(accept, 'text/html');
  return (
    html > 0 &&
    html > quality(accept, 'application/json') &&
    html > quality(accept, 'application/graphql-response+json')
  );
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function acceptsGzip(req: IncomingMessage): boolean {
  const header = req.headers['accept-encoding'];
  if (typeof header !== 'string') return false;
  return header.split(',').some((part) => {
    const [coding, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    return coding === 'gzip' && (q === undefined || Number(q.slice(2)) > 0);
  });
}

function allowGet(req: IncomingMessage): void {
  if (req.method === 'GET' || req.method === 'HEAD') return;
  throw new GatewayError('BAD_USER_INPUT', `${req.method ?? 'This method'} is not allowed here.`, {
    status: 405,
    headers: { allow: 'GET, HEAD' },
    extensions: { reason: 'METHOD_NOT_ALLOWED' },
  });
}

function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: Buffer | string,
  headers: Record<string, string>,
): void {
  const buffer = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    ...headers,
    'content-length': String(buffer.length),
  });
  res.end(req.method === 'HEAD' ? undefined : buffer);
}

/**
 * The GraphiQL playground: an HTML page that loads the bundle built by
 * `npm run build:playground` from this origin only (it works offline), plus the assets and,
 * in demo mode, dev tokens for its tenant picker. The page itself is public; every GraphQL
 * request it sends carries the bearer token typed (or picked) into it.
 */
export function createPlayground(options: PlaygroundOptions): Playground {
  let loading: Promise<Map<string, Asset>> | undefined;

  async function loadAssets(): Promise<Map<string, Asset>> {
    const entries = await Promise.all(
      PLAYGROUND_ASSETS.map(async (name) => {
        const body = await readFile(join(options.assetsDir, name));
        const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
        return [
          name,
          { body, gzipped: gzipSync(body), etag, contentType: CONTENT_TYPES[name] },
        ] as const;
      }),
    );
    return new Map(entries);
  }

  /** Read once; a failed read (not built yet) is retried on the next request. */
  function assets(): Promise<Map<string, Asset>> {
    loading ??= loadAssets();
    loading.catch(() => {
      loading = undefined;
    });
    return loading;
  }

  async function notBuilt(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    try {
      await assets();
      return false;
    } catch {
      send(
        req,
        res,
        503,
        'The playground is not built. Run `npm run build:playground` and reload.\n',
        { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
      );
      return true;
    }
  }

  const page: Handler = async (req, res) => {
    allowGet(req);
    if (await notBuilt(req, res)) return;
    const loaded = await assets();
    const version = (name: string) => encodeURIComponent(loaded.get(name)?.etag.slice(1, 13) ?? '');
    const path = new URL(req.url ?? '/', 'http://gateway.invalid').pathname;
    // The page talks to the endpoint it was served from (/t/{tenant}/graphql keeps its hint).
    const endpoint = GRAPHQL_PATH.test(path) ? path : '/graphql';
    const html = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="referrer" content="no-referrer">
    <title>Atrium playground</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="/playground/playground.css?v=${version('playground.css')}">
    <script defer src="/playground/playground.js?v=${version('playground.js')}"></script>
  </head>
  <body>
    <div id="atrium-playground" data-endpoint="${escapeHtml(endpoint)}" data-dev-tokens="${options.devTokens ? '/playground/dev-tokens' : ''}"></div>
    <noscript>The Atrium playground needs JavaScript.</noscript>
  </body>
</html>
`;
    send(req, res, 200, html, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      vary: 'accept',
    });
  };

  function asset(name: (typeof PLAYGROUND_ASSETS)[number]): Handler {
    return async (req, res) => {
      allowGet(req);
      if (await notBuilt(req, res)) return;
      const found = (await assets()).get(name);
      if (!found) throw new GatewayError('INTERNAL_SERVER_ERROR', 'Internal server error');
      const headers: Record<string, string> = {
        'content-type': found.contentType,
        etag: found.etag,
        // Revalidated on each load: cheap (304) and never stale after a rebuild.
        'cache-control': 'no-cache',
        vary: 'accept-encoding',
      };
      if (req.headers['if-none-match'] === found.etag) {
        res.writeHead(304, { ...SECURITY_HEADERS, ...headers });
        res.end();
        return;
      }
      if (acceptsGzip(req)) {
        send(req, res, 200, found.gzipped, { ...headers, 'content-encoding': 'gzip' });
      } else {
        send(req, res, 200, found.body, headers);
      }
    };
  }

  const routes: Record<string, Handler> = {
    '/playground': page,
    '/playground/': page,
    '/playground/playground.js': asset('playground.js'),
    '/playground/playground.css': asset('playground.css'),
  };
  const { devTokens } = options;
  if (devTokens) {
    routes['/playground/dev-tokens'] = async (req, res) => {
      allowGet(req);
      // A token for any tenant, to anyone who can reach the port, would be a master key.
      if (!isLoopbackRequest(req)) {
        throw new GatewayError('FORBIDDEN', 'Dev tokens are for clients on this host only.', {
          extensions: { reason: 'DEV_TOKENS_LOCAL_ONLY' },
        });
      }
      // Browsers say where a request comes from: only the playground page itself gets tokens.
      const site = req.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin') {
        throw new GatewayError('FORBIDDEN', 'Dev tokens are for the playground page only.', {
          status: 403,
        });
      }
      const tokens = await devTokens();
      send(req, res, 200, JSON.stringify({ tokens }), {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
      });
    };
  }
  return { page, routes };
}
