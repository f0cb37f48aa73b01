import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

describe("the gateway's production install (the gateway image's node_modules)", () => {
  let app: string;

  beforeAll(async () => {
    // What the Dockerfile's gateway-deps stage does: the manifests, then the root package's
    // production dependencies alone; the compiled code beside them.
    app = mkdtempSync(join(tmpdir(), 'atrium-gateway-install-'));
    for (const file of ['package.json', 'package-lock.json', '.npmrc']) {
      cpSync(join(ROOT, file), join(app, file));
    }
    const { workspaces } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      workspaces: string[];
    };
    for (const dir of workspaces) {
      mkdirSync(join(app, dir), { recursive: true });
      cpSync(join(ROOT, dir, 'package.json'), join(app, dir, 'package.json'));
    }
    await run(
      'npm',
      ['ci', '--omit=dev', '--workspaces=false', '--ignore-scripts', '--prefer-offline'],
      { cwd: app, timeout: 150_000 },
    );
    cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true });
  }, 180_000);

  afterAll(() => {
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it('holds no onnxruntime-node, and the compiled gateway runs on it (atrium check)', async () => {
    expect(existsSync(join(app, 'node_modules', 'onnxruntime-node'))).toBe(false);
    expect(existsSync(join(app, 'node_modules', 'graphql'))).toBe(true);
    const { stdout } = await run(
      process.execPath,
      [join('dist', 'scripts', 'atrium.js'), 'check'],
      {
        cwd: app,
        env: { ...process.env, ATRIUM_HOME: home },
      },
    );
    expect(stdout).toMatch(/2 of 2 tenants match the schema/);
  });
});
