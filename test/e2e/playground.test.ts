import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPlayground } from '../../playground/build.js';
import { loadOrCreateDevKeys, mintDevToken } from '../../src/auth/dev-keys.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCREENSHOT = join(ROOT, 'test-artifacts', 'playground.png');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const WITH_FRAUD = `{
  viewer {
    tenant { id displayName features }
  }
  customers(first: 2) {
    edges {
      node {
        name
        orders(first: 1) { amount fraudRisk { label } }
      }
    }
  }
}`;
const WITHOUT_FRAUD = `{
  viewer {
    tenant { id displayName features }
  }
  customers(first: 2) {
    edges { node { name churnRisk { label } } }
  }
}`;

interface Spawned {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/** `node --import tsx src/main.ts` in demo mode on a free port, as `npm start` runs it. */
function startDemoGateway(home: string): Promise<Spawned> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: '0',
    HOST: '127.0.0.1',
    ATRIUM_HOME: home,
  };
  // Demo mode: no config file, embedded data, memory store, whatever the caller's shell says.
  for (const name of [
    'ATRIUM_CONFIG',
    'DATABASE_URL',
    'REDIS_URL',
    'REDIS_CLUSTER_NODES',
    'MODEL_SERVER_PORT',
  ]) {
    delete env[name];
  }
  env['LOG_LEVEL'] = 'info';
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the gateway did not start within 90 s:\n${output}`));
    }, 90_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      for (const line of output.split('\n')) {
        if (!line.includes('"Atrium is listening"')) continue;
        const { url } = JSON.parse(line) as { url: string };
        clearTimeout(timer);
        resolve({ child, url, output: () => output });
        return;
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited with ${code} before listening:\n${output}`));
    });
  });
}

async function stopGateway(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

/** Waits until the element's text contains `expected`, then returns that text. */
async function textContaining(page: Page, selector: string, expected: string): Promise<string> {
  // Locators rather than waitForFunction: the page's CSP (rightly) forbids evaluating strings.
  const element = page.locator(selector).filter({ hasText: expected });
  await element.waitFor({ timeout: 20_000 });
  return (await element.textContent()) ?? '';
}

/** The text GraphiQL shows in its result pane, once it contains `expected`. */
const responseContaining = (page: Page, expected: string) =>
  textContaining(page, '.graphiql-response', expected);

let home: string;
let gateway: Spawned | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  // The test drives the front-end as it is in the tree now, not whatever was built earlier.
  await buildPlayground();
  home = await mkdtemp(join(tmpdir(), 'atrium-e2e-playground-'));
  [gateway, browser] = await Promise.all([
    startDemoGateway(home),
    chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }),
  ]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (gateway) await stopGateway(gateway.child);
  await rm(home, { recursive: true, force: true });
}, 60_000);

describe('the playground of a spawned demo gateway', () => {
  it('serves the page to browsers and the API to API clients', async () => {
    const url = gateway?.url ?? '';
    const page = await fetch(`${url}/graphql`, {
      headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
    });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).toContain('id="atrium-playground"');

    const api = await fetch(`${url}/graphql`, { headers: { accept: 'application/json' } });
    expect(api.status).toBe(401);

    const devTokens = await fetch(`${url}/playground/dev-tokens`);
    const { tokens } = (await devTokens.json()) as { tokens: { tenant: string }[] };
    expect(tokens.map((t) => t.tenant).sort()).toEqual(['acme', 'globex']);
  });

  it('runs queries with a picked tenant and a pasted token, offline, and shows each tenant its data', async () => {
    const url = gateway?.url ?? '';
    const origin = new URL(url).origin;
    const context = await browser!.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    const requests: { url: string; method: string; authorization?: string; body?: string }[] = [];
    const problems: string[] = [];
    page.on('request', (request) => {
      requests.push({
        url: request.url(),
        method: request.method(),
        authorization: request.headers()['authorization'],
        body: request.postData() ?? undefined,
      });
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      const text = message.text();
      // The browser logs the refused query's HTTP 400, which step 2 provokes on purpose.
      if (/Failed to load resource: .* status of 400/.test(text)) return;
      if (message.type() === 'error' || /Content Security Policy/i.test(text)) {
        problems.push(`console ${message.type()}: ${text}`);
      }
    });

    try {
      // 1. Pick a demo tenant and run a query that uses its `fraud` feature.
      await page.goto(`${url}/graphql?query=${encodeURIComponent(WITH_FRAUD)}`);
      await page.waitForSelector('#atrium-tenant option[value="acme"]', { state: 'attached' });
      await page.selectOption('#atrium-tenant', 'acme');
      await textContaining(page, '#atrium-token-status', 'tenant acme');
      await page.click('.graphiql-execute-button');
      const acme = await responseContaining(page, 'Acme Corporation');
      expect(acme).toContain('"id": "acme"');
      expect(acme).toContain('"fraudRisk"');
      expect(acme).not.toContain('"errors"');
      await mkdir(join(ROOT, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT });

      // The token lives in sessionStorage and went out as a bearer token, introspection included.
      const stored = await page.evaluate(() =>
        (
          globalThis as unknown as { sessionStorage: { getItem(key: string): string | null } }
        ).sessionStorage.getItem('atrium.playground.token'),
      );
      const acmeToken = typeof stored === 'string' ? stored : '';
      expect(acmeToken.split('.')).toHaveLength(3);
      const posts = requests.filter((r) => r.method === 'POST' && r.url === `${origin}/graphql`);
      expect(posts.some((r) => r.body?.includes('IntrospectionQuery'))).toBe(true);
      expect(posts.every((r) => r.authorization === `Bearer ${acmeToken}`)).toBe(true);

      // 2. Paste another tenant's token: the same query meets globex's variant, without fraudRisk.
      const globexToken = await mintDevToken(await loadOrCreateDevKeys(home), {
        tenant: 'globex',
        sub: 'e2e',
        scope: 'read predict',
      });
      await page.fill('#atrium-token', globexToken);
      await textContaining(page, '#atrium-token-status', 'tenant globex');
      await page.click('.graphiql-execute-button');
      const refused = await responseContaining(page, 'Cannot query field');
      expect(refused).toContain('fraudRisk');
      expect(refused).toContain('BAD_USER_INPUT');
      expect(refused).not.toContain('Acme Corporation');

      // 3. A reload keeps the pasted token (sessionStorage); a query within globex's schema works.
      await page.goto(`${url}/graphql?query=${encodeURIComponent(WITHOUT_FRAUD)}`);
      expect(await page.inputValue('#atrium-token')).toBe(globexToken);
      await page.click('.graphiql-execute-button');
      const globex = await responseContaining(page, 'Globex Inc.');
      expect(globex).toContain('"id": "globex"');
      expect(globex).toContain('"churnRisk"');
      expect(globex).not.toContain('acme');
    } finally {
      await context.close();
    }

    // Nothing left the gateway's origin: no CDN, fonts, telemetry or update checks.
    expect(requests.length).toBeGreaterThan(5);
    const elsewhere = requests
      .map((r) => r.url)
      .filter((u) => !u.startsWith('data:') && new URL(u).origin !== origin);
    expect(elsewhere).toEqual([]);
    expect(problems).toEqual([]);
  }, 90_000);
});
