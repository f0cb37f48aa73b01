import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfigFile } from '../../src/config/load.js';
import { arr, obj, readText, readYaml, ROOT } from './support.js';

const run = promisify(execFile);

/** `docker-compose` (the Debian package; .ci/run installs it). No Docker engine is needed. */
async function compose(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run('docker-compose', ['-f', 'docker-compose.yml', ...args], {
      cwd: ROOT,
      timeout: 60_000,
      env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: '' },
    });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new Error(
        'docker-compose is not installed (apt-get install docker-compose; see .ci/run)',
      );
    }
    throw new Error(`docker-compose ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

const LONG_RUNNING = ['lb', 'gateway-1', 'gateway-2', 'model-server', 'postgres', 'redis'];

describe('docker-compose.yml', () => {
  it('passes `docker-compose config -q`', async () => {
    const { stdout, stderr } = await compose('config', '-q');
    expect(stdout).toBe('');
    expect(stderr).not.toMatch(/error|invalid|unsupported/i);
  });

  it('runs two gateway replicas of one image behind the load balancer, gated on health', async () => {
    // The resolved file (anchors merged, paths absolute), as docker-compose will run it.
    const resolved = obj(parse((await compose('config')).stdout), 'compose config');
    const services = obj(resolved.services, 'services');
    expect(Object.keys(services).sort()).toEqual(
      ['gateway-1', 'gateway-2', 'lb', 'migrate', 'model-server', 'postgres', 'redis'].sort(),
    );
    const gateways = ['gateway-1', 'gateway-2'].map((name) => obj(services[name], name));
    for (const gateway of gateways) {
      expect(gateway.image).toBe('atrium:local');
      expect(obj(gateway.build, 'build').target).toBe('gateway');
      expect(gateway.read_only).toBe(true);
      expect(gateway.ports).toBeUndefined();
      const env = obj(gateway.environment, 'environment');
      expect(env.NODE_ENV).toBe('production');
      expect(env.ATRIUM_CONFIG).toBe('/etc/atrium/atrium.yaml');
      expect(env.REDIS_URL).toMatch(/^redis:\/\/redis:6379/);
      expect(env.DATABASE_URL).toMatch(/@postgres:5432\//);
      expect(obj(gateway.depends_on, 'depends_on')).toEqual({
        postgres: { condition: 'service_healthy' },
        redis: { condition: 'service_healthy' },
        'model-server': { condition: 'service_healthy' },
        migrate: { condition: 'service_completed_successfully' },
      });
      // Healthy means ready (data, store, keys, models), not just alive.
      expect(arr(obj(gateway.healthcheck, 'healthcheck').test, 'test').join(' ')).toContain(
        '/readyz',
      );
    }
    // Only the load balancer is published, and it waits for both replicas.
    const lb = obj(services.lb, 'lb');
    expect(arr(lb.ports, 'lb ports').length).toBe(1);
    for (const name of Object.keys(services).filter((n) => n !== 'lb')) {
      expect(obj(services[name], name).ports).toBeUndefined();
    }
    expect(obj(lb.depends_on, 'lb depends_on')).toEqual({
      'gateway-1': { condition: 'service_healthy' },
      'gateway-2': { condition: 'service_healthy' },
    });
    for (const name of LONG_RUNNING) {
      const check = obj(obj(services[name], name).healthcheck, `${name} healthcheck`);
      expect(arr(check.test, `${name} test`)[0]).toBe('CMD');
    }
    // The one-shot migration: after PostgreSQL is healthy, never restarted.
    const migrate = obj(services.migrate, 'migrate');
    expect(arr(migrate.command, 'command').join(' ')).toContain(
      'node dist/scripts/db-migrate.js && node dist/scripts/db-seed.js',
    );
    expect(obj(migrate.depends_on, 'migrate depends_on')).toEqual({
      postgres: { condition: 'service_healthy' },
    });
    expect(migrate.restart).toBe('no');
    expect(obj(services['model-server'], 'model-server').image).toBe('atrium-model-server:local');
    // Redis persists (append-only file on a named volume): a restart keeps what it held.
    const redis = obj(services.redis, 'redis');
    expect(arr(redis.command, 'redis command').join(' ')).toMatch(/--appendonly yes/);
    // docker-compose resolves the short form to `name:/data:rw`.
    expect(arr(redis.volumes, 'redis volumes')).toContainEqual(
      expect.stringMatching(/^redisdata:\/data\b/),
    );
    expect(Object.keys(obj(resolved.volumes, 'volumes'))).toContain('redisdata');
  });

  it('the load balancer proxies to both replicas and never forwards /metrics', () => {
    const nginx = readText('deploy/nginx/nginx.conf');
    const upstream = /upstream\s+(\w+)\s*\{([^}]*)\}/.exec(nginx);
    expect(upstream).not.toBeNull();
    const servers = [...upstream![2]!.matchAll(/^\s*server\s+([\w.-]+:\d+)/gm)].map((m) => m[1]);
    expect(servers).toEqual(['gateway-1:4000', 'gateway-2:4000']);
    expect(nginx).toContain(`proxy_pass http://${upstream![1]};`);
    expect(nginx).toMatch(/location = \/metrics \{\s*return 404;/);
    expect(nginx).toMatch(/listen 8080;/);
    // Logged fields only: no Authorization, no query string, no body.
    expect(nginx).not.toMatch(/\$http_authorization|\$request_body|\$args|\$request_uri/);
  });

  it('mounts a config that validates and points at the compose services', () => {
    const config = parseConfigFile(readYaml('deploy/compose/atrium.yaml'), 'deploy/compose');
    expect(config.inference.backends.models?.url).toBe('http://model-server:8001');
    expect(config.server.host).toBe('0.0.0.0');
    expect(config.server.port).toBe(4000);
    expect(config.telemetry.metrics.port).toBe(9464);
    expect(config.tenants.map((t) => t.id)).toEqual(['acme', 'globex']);
    const file = obj(readYaml('docker-compose.yml'), 'docker-compose.yml');
    const gateway = obj(file['x-gateway'], 'x-gateway');
    expect(arr(gateway.volumes, 'volumes')).toContain(
      './deploy/compose/atrium.yaml:/etc/atrium/atrium.yaml:ro',
    );
  });
});

describe('Dockerfile', () => {
  const dockerfile = readText('Dockerfile');
  const stages = [...dockerfile.matchAll(/^FROM\s+(\S+)\s+AS\s+(\S+)/gim)].map((m) => ({
    from: m[1]!,
    name: m[2]!,
  }));

  it('is multi-stage: npm ci with dev deps and build; one production install per image', () => {
    expect(stages.map((s) => s.name)).toEqual([
      'base',
      'manifests',
      'deps',
      'build',
      'gateway-deps',
      'model-server-deps',
      'runtime',
      'model-server',
      'gateway',
    ]);
    expect(dockerfile).toMatch(/ARG NODE_IMAGE=node:20-/);
    expect(dockerfile).toMatch(/npm ci --ignore-scripts/);
    expect(dockerfile).toMatch(/npm run -s build:playground/);
    expect(dockerfile).toMatch(/npm run -s models:build/);
    // Every workspace's manifest is in place before any `npm ci` (else the lockfile mismatches).
    const workspaces = (JSON.parse(readText('package.json')) as { workspaces: string[] })
      .workspaces;
    for (const dir of workspaces) {
      expect(dockerfile).toContain(`COPY ${dir}/package.json ${dir}/`);
    }
    // The gateway's install is the root package alone (no onnxruntime-node); the model
    // server's is its workspace's; each image copies its own, never the build stage's tree.
    const section = (name: string) => {
      const start = dockerfile.search(new RegExp(`^FROM \\S+ AS ${name}$`, 'm'));
      const next = dockerfile.slice(start + 1).search(/^FROM /m);
      return next === -1 ? dockerfile.slice(start) : dockerfile.slice(start, start + 1 + next);
    };
    expect(section('gateway-deps')).toMatch(/npm ci --omit=dev --workspaces=false/);
    expect(section('model-server-deps')).toMatch(
      /npm ci --omit=dev --workspace=@atrium\/model-server/,
    );
    expect(section('gateway')).toMatch(/^COPY --from=gateway-deps \/app\/node_modules/m);
    expect(section('model-server')).toMatch(/^COPY --from=model-server-deps \/app\/node_modules/m);
    expect(dockerfile).not.toMatch(/COPY --from=build \/app\/node_modules/);
  });

  it('runs only scripts the package has and copies only paths the build stage has', () => {
    const scripts = (JSON.parse(readText('package.json')) as { scripts: Record<string, string> })
      .scripts;
    const run = [...dockerfile.matchAll(/npm run -s ([\w:-]+)/g)].map((m) => m[1]!);
    expect(run.length).toBeGreaterThan(0);
    for (const name of run) expect(Object.keys(scripts), name).toContain(name);
    // What the build stage makes (not in the repository): the compiled code, the trained
    // models and the playground bundle.
    const built = new Set(['dist', 'services/model-server/models', 'playground/dist']);
    const copied = [...dockerfile.matchAll(/^COPY --from=build \/app\/(\S+)/gm)].map((m) => m[1]!);
    expect(copied).toContain('dist');
    for (const path of copied) {
      if (!built.has(path)) expect(existsSync(join(ROOT, path)), path).toBe(true);
    }
  });

  it('runs the compiled code as the unprivileged node user, with node (not npm or tsx) as PID 1', () => {
    const runtime = dockerfile.slice(dockerfile.indexOf('AS runtime'));
    expect(runtime).toMatch(/^USER node$/m);
    expect(runtime).not.toMatch(/^USER root/m);
    const commands = [...dockerfile.matchAll(/^CMD (\[.*\])$/gm)].map(
      (m) => JSON.parse(m[1]!) as string[],
    );
    // The compiled code on plain node: tsx is a development tool, not in the image.
    expect(commands).toEqual([
      ['node', 'dist/services/model-server/src/main.js', '--host', '0.0.0.0', '--port', '8001'],
      ['node', 'dist/src/main.js'],
    ]);
    expect(dockerfile).not.toMatch(/tsx/);
  });

  it('keeps secrets, local installs and generated files out of the build context', () => {
    const ignored = readText('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of [
      'node_modules',
      '.git',
      '.atrium',
      '.env',
      'services/model-server/models',
    ]) {
      expect(ignored).toContain(entry);
    }
  });
});
