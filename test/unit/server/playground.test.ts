import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlayground, PLAYGROUND_CSP, prefersHtml } from '../../../src/server/playground.js';

const BROWSER_ACCEPT =
  'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';

describe('prefersHtml', () => {
  it.each([
    [BROWSER_ACCEPT, true],
    ['text/html', true],
    ['text/html;q=0.9, application/json;q=0.5', true],
    ['*/*', false],
    [undefined, false],
    ['', false],
    ['application/json', false],
    ['application/graphql-response+json, application/json;q=0.9', false],
    ['text/html, application/json', false],
    ['text/html;q=0, */*', false],
    ['text/*;q=0.5, application/json;q=0.9', false],
    ['text/*, application/json;q=0.9', true],
  ])('%s → %s', (accept, expected) => {
    expect(prefersHtml(accept)).toBe(expected);
  });
});

async function serve(handlers: ReturnType<typeof createPlayground>) {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const route = /\/graphql$/.test(path) ? handlers.page : handlers.routes[path];
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    Promise.resolve(route(req, res)).catch((error: unknown) => {
      const status = (error as { status?: number }).status ?? 500;
      res.writeHead(status, { 'x-error': (error as Error).message }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

let dir: string;
let demo: { server: Server; url: string };
let production: { server: Server; url: string };
let minted = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'atrium-playground-'));
  await writeFile(join(dir, 'playground.js'), 'console.log("playground");'.repeat(100));
  await writeFile(join(dir, 'playground.css'), 'body { margin: 0 }');
  demo = await serve(
    createPlayground({
      assetsDir: dir,
      devTokens: () => {
        minted += 1;
        return Promise.resolve([{ tenant: 'acme', displayName: 'Acme', token: `t${minted}` }]);
      },
    }),
  );
  production = await serve(createPlayground({ assetsDir: join(dir, 'missing') }));
});

afterAll(async () => {
  await Promise.all(
    [demo, production].map(
      ({ server }) => new Promise<void>((resolve) => server.close(() => resolve())),
    ),
  );
  await rm(dir, { recursive: true, force: true });
});

describe('createPlayground', () => {
  it('serves the page with a strict CSP and no inline script or style', async () => {
    const response = await fetch(`${demo.url}/playground`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('content-security-policy')).toBe(PLAYGROUND_CSP);
    expect(PLAYGROUND_CSP).toContain("script-src 'self'");
    expect(PLAYGROUND_CSP).toContain("frame-ancestors 'none'");
    expect(PLAYGROUND_CSP).not.toContain('unsafe');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    const html = await response.text();
    expect(html).toMatch(/<script defer src="\/playground\/playground\.js\?v=[\w-]+"><\/script>/);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|style="/);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).toContain('data-dev-tokens="/playground/dev-tokens"');
    expect(html).toContain('data-endpoint="/graphql"');
  });

  it('points the page at the GraphQL path it was served from', async () => {
    const html = await (await fetch(`${demo.url}/graphql`)).text();
    expect(html).toContain('data-endpoint="/graphql"');
    const hinted = await (await fetch(`${demo.url}/t/acme/graphql`)).text();
    expect(hinted).toContain('data-endpoint="/t/acme/graphql"');
  });

  it('serves assets with an ETag, gzip when asked, and 304 when unchanged', async () => {
    const plain = await fetch(`${demo.url}/playground/playground.js`, {
      headers: { 'accept-encoding': 'identity' },
    });
    expect(plain.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(plain.headers.get('content-encoding')).toBeNull();
    const body = await plain.text();
    expect(body).toContain('console.log("playground")');
    const etag = plain.headers.get('etag') ?? '';
    expect(etag).toMatch(/^"[\w-]+"$/);

    // node:http rather than fetch, which would decompress and hide the encoding.
    const zipped = await new Promise<{ encoding: string | undefined; body: Buffer }>(
      (resolve, reject) => {
        get(
          `${demo.url}/playground/playground.js`,
          { headers: { 'accept-encoding': 'gzip, deflate' } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({ encoding: res.headers['content-encoding'], body: Buffer.concat(chunks) }),
            );
          },
        ).on('error', reject);
      },
    );
    expect(zipped.encoding).toBe('gzip');
    expect(gunzipSync(zipped.body).toString()).toBe(body);

    const again = await fetch(`${demo.url}/playground/playground.js`, {
      headers: { 'if-none-match': etag },
    });
    expect(again.status).toBe(304);
    const css = await fetch(`${demo.url}/playground/playground.css`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
  });

  it('mints dev tokens per request for the page, and refuses cross-site reads', async () => {
    const first = await fetch(`${demo.url}/playground/dev-tokens`);
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toBe('no-store');
    expect(await first.json()).toEqual({
      tokens: [{ tenant: 'acme', displayName: 'Acme', token: expect.stringMatching(/^t\d+$/) }],
    });
    const crossSite = await fetch(`${demo.url}/playground/dev-tokens`, {
      headers: { 'sec-fetch-site': 'cross-site' },
    });
    expect(crossSite.status).toBe(403);
    const post = await fetch(`${demo.url}/playground/dev-tokens`, { method: 'POST' });
    expect(post.status).toBe(405);
    // Relayed by a proxy on this host: the client is somewhere else.
    for (const header of ['x-forwarded-for', 'forwarded', 'x-real-ip']) {
      const relayed = await fetch(`${demo.url}/playground/dev-tokens`, {
        headers: { [header]: '203.0.113.9' },
      });
      expect(relayed.status).toBe(403);
    }
  });

  it('has no dev-token route without dev tokens, and answers 503 until the assets are built', async () => {
    expect(
      Object.keys(createPlayground({ assetsDir: dir }).routes).filter((p) => p.includes('dev')),
    ).toEqual([]);
    expect((await fetch(`${production.url}/playground/dev-tokens`)).status).toBe(404);
    const page = await fetch(`${production.url}/playground`);
    expect(page.status).toBe(503);
    expect(await page.text()).toContain('npm run build:playground');
    expect((await fetch(`${production.url}/playground/playground.js`)).status).toBe(503);
  });

  it('serves nothing but GET and HEAD', async () => {
    const head = await fetch(`${demo.url}/playground`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const post = await fetch(`${demo.url}/playground`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
  });
});
