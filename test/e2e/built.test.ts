import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway, type SpawnedGateway } from '../support/spawn-gateway.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILT_MAIN = join(ROOT, 'dist', 'src', 'main.js');
const QUERY = `{ viewer { tenant { id } } customers(first: 2) { edges { node { id churnRisk { label } tickets(status: OPEN) { subject } } } } }`;

let home: string;
let gateway: SpawnedGateway;

beforeAll(async () => {
  await run('npm', ['run', '-s', 'build'], { cwd: ROOT });
  home = mkdtempSync(join(tmpdir(), 'atrium-built-'));
  gateway = await spawnGateway({ main: BUILT_MAIN, env: { ATRIUM_HOME: home } });
}, 180_000);

afterAll(async () => {
  await gateway?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('npm run build && node dist/src/main.js (demo mode)', () => {
  it('emits the entry point and the engine SDL next to the compiled schema loader', () => {
    expect(existsSync(BUILT_MAIN)).toBe(true);
    expect(existsSync(join(ROOT, 'dist', 'src', 'graphql', 'engine', 'cost.graphql'))).toBe(true);
  });

  it('answers GraphQL with data, a prediction and a tenant service field, without tsx', async () => {
    const { stdout } = await run(
      process.execPath,
      [join(ROOT, 'dist', 'scripts', 'token.js'), '--tenant', 'acme', '--sub', 'e2e'],
      { cwd: ROOT, env: { ...process.env, ATRIUM_HOME: home } },
    );
    const res = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${stdout.trim()}` },
      body: JSON.stringify({ query: QUERY }),
    });
    const body = (await res.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
    expect(res.status).toBe(200);
    expect(body.errors).toBeUndefined();
    expect(body.data?.viewer).toEqual({ tenant: { id: 'acme' } });
    expect(JSON.stringify(body.data)).toMatch(/"label":"\w+"/);
    // The process tree ran compiled code only: no tsx loader in the gateway's arguments.
    expect(gateway.process.spawnargs.join(' ')).not.toContain('tsx');
  });
});
