import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { spawnGateway, type SpawnedGateway } from '../support/spawn-gateway.js';

const run = promisify(execFile);
const QUERY = `{ viewer { tenant { id } } customers(first: 5) { edges { node { id name churnRisk { version label } orders(first: 3) { id amount } } } } }`;

let home: string;
let gateway: SpawnedGateway;

/** `npm run token`, as a user would run it, against the same dev key directory. */
async function token(tenant: string): Promise<string> {
  const { stdout } = await run(
    'npm',
    ['run', '-s', 'token', '--', '--tenant', tenant, '--sub', 'e2e'],
    {
      env: { ...process.env, ATRIUM_HOME: home },
    },
  );
  return stdout.trim();
}

async function ask(tokenValue: string) {
  const res = await fetch(`${gateway.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenValue}` },
    body: JSON.stringify({ query: QUERY }),
  });
  return {
    status: res.status,
    body: (await res.json()) as { data: Record<string, unknown>; errors?: unknown[] },
  };
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'atrium-demo-'));
  gateway = await spawnGateway({ env: { ATRIUM_HOME: home } });
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  rmSync(home, { recursive: true, force: true });
});

describe('npm start (demo mode)', () => {
  it('serves acme and globex their own data, with predictions, to tokens from npm run token', async () => {
    const [acme, globex] = await Promise.all([
      ask(await token('acme')),
      ask(await token('globex')),
    ]);
    for (const answer of [acme, globex]) {
      expect(answer.status).toBe(200);
      expect(answer.body.errors).toBeUndefined();
    }
    expect(acme.body.data.viewer).toEqual({ tenant: { id: 'acme' } });
    expect(globex.body.data.viewer).toEqual({ tenant: { id: 'globex' } });
    const ids = (answer: typeof acme) =>
      new Set(JSON.stringify(answer.body.data).match(/(cus|ord)_[0-9a-z]+/g));
    const [a, g] = [ids(acme), ids(globex)];
    expect(a.size).toBeGreaterThan(5);
    expect([...a].filter((id) => g.has(id))).toEqual([]);
    // The demo tenants run different churn versions (acme 2, globex 1).
    expect(JSON.stringify(acme.body.data)).toContain('"version":"2"');
    expect(JSON.stringify(globex.body.data)).toContain('"version":"1"');
  });

  it('is ready, refuses anonymous requests, and drains on SIGTERM with exit code 0', async () => {
    // Readiness covers acme's realm, which demo mode starts once the gateway listens.
    const ready = await eventually(async () => {
      const answer = await fetch(`${gateway.url}/readyz`);
      expect(answer.status).toBe(200);
      return answer;
    }, 15_000);
    expect(await ready.json()).toMatchObject({
      status: 'ok',
      checks: { 'realm:acme': 'ok', 'service:tickets': 'ok' },
    });
    const anonymous = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ viewer { subject } }' }),
    });
    expect(anonymous.status).toBe(401);
    expect(gateway.output()).toContain('Dev tokens');
    expect(await gateway.stop()).toBe(0);
  });
});
