/**
 * The process entry: reads the configuration (through config/), adds what demo mode needs
 * (dev keys, the reference model server, the banner), forks `node:cluster` workers when asked
 * to, and turns signals into the gateway's ordered shutdown. Everything the gateway is made of
 * is built by the composition root, `createApp` (src/app.ts).
 */
import cluster from 'node:cluster';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { createApp, JWKS_PATH } from './app.js';
import { DEFAULT_EXAMPLE_QUERY } from './config/schema.js';
import {
  DEMO_AUDIENCE,
  DEMO_ISSUER,
  type DevKeys,
  loadOrCreateDevKeys,
  mintDevToken,
} from './auth/dev-keys.js';
import { onShutdownRequest, startWorkers } from './cluster.js';
import { buildDemoConfig } from './config/demo.js';
import {
  applyEnv,
  type AtriumConfig,
  type AtriumEnv,
  ConfigError,
  isDemoConfigFile,
  loadConfigFile,
  readConfigFile,
  readEnv,
  resolveHome,
} from './config/load.js';
import { createLogger, flushLogger, type Logger } from './telemetry/logger.js';
import type { TenantRegistry } from './tenancy/registry.js';
// The demo launcher starts the reference model server as a child process; the gateway still
// only talks to it over HTTP.
import { spawnModelServer, type SpawnedModelServer } from '../services/model-server/spawn.js';
import { spawnTicketsService } from '../services/tickets/spawn.js';
import { spawnRealmService } from '../services/realm/spawn.js';

/** A reference service demo mode started (services/<name>). */
interface StartedReference {
  name: string;
  url: string;
  stop(): Promise<void>;
}

interface Demo {
  /** Reference services to start once the gateway listens (they verify its JWKS). */
  references: { name: string; port: number }[];
  started: StartedReference[];
  /** The reference model server, when the example configures inference backends. */
  modelServer: SpawnedModelServer | undefined;
  devKeys: DevKeys;
}

/** Demo mode: the dev key pair, the reference model server, and the demo config around them. */
async function startDemo(
  env: AtriumEnv,
  logger: Logger,
  path: string | undefined,
): Promise<{ config: AtriumConfig; demo: Demo }> {
  const devKeys = await loadOrCreateDevKeys(resolveHome(env));
  const keys = {
    publicJwk: { ...devKeys.publicJwk },
    kid: devKeys.kid,
    alg: devKeys.alg,
    issuer: DEMO_ISSUER,
    audience: DEMO_AUDIENCE,
  };
  // Read (and validated) before anything starts, so a broken example fails fast.
  const probe = applyEnv(
    buildDemoConfig({ ...keys, path, modelServerUrl: 'http://127.0.0.1' }),
    env,
    'demo',
  );
  const { recipes, repository } = probe.dev?.modelServer ?? {};
  const inference = Object.keys(probe.inference.backends).length > 0;
  if (inference) logger.info('demo mode: starting the reference model server');
  const modelServer = !inference
    ? undefined
    : await spawnModelServer({
        port: probe.modelServerPort,
        host: '127.0.0.1',
        ...(recipes === undefined
          ? {}
          : { recipes, repo: repository ?? join(dirname(recipes), 'repository') }),
      });
  // Their ports are chosen now: the gateway's config names them before they can start.
  const references = await Promise.all(
    (probe.dev?.referenceServices ?? [])
      // `realm` serves the tenants that name a realm; the others the same-named service.
      .filter((name) =>
        name === 'realm'
          ? probe.tenants.some((tenant) => tenant.realm)
          : Object.hasOwn(probe.services, name),
      )
      .map(async (name) => ({ name, port: await freePort() })),
  );
  const file = buildDemoConfig({
    ...keys,
    path,
    modelServerUrl: modelServer?.url ?? 'http://127.0.0.1',
    serviceUrls: Object.fromEntries(references.map((r) => [r.name, `http://127.0.0.1:${r.port}`])),
  });
  // The demo's realm tenants are pointed at the one reference realm (it serves each tenant
  // its own data, by the tenant in the identity the gateway signs).
  const realm = references.find((r) => r.name === 'realm');
  const tenants = file.tenants.map((tenant) =>
    realm && tenant.realm
      ? { ...tenant, realm: { ...tenant.realm, url: `http://127.0.0.1:${realm.port}/graphql` } }
      : tenant,
  );
  return {
    config: applyEnv({ ...file, tenants }, env, 'demo'),
    demo: { modelServer, devKeys, references, started: [] },
  };
}

/** A loopback port free now (bound by the OS, then released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts the demo's reference services against the listening gateway's JWKS. */
async function startReferences(demo: Demo, url: string, config: AtriumConfig, logger: Logger) {
  for (const { name, port } of demo.references) {
    logger.info({ service: name }, 'demo mode: starting the reference service');
    const common = { jwks: `${url}${JWKS_PATH}`, issuer: config.identity.issuer, port };
    const started =
      name === 'realm'
        ? await spawnRealmService({ ...common, host: '127.0.0.1' })
        : await spawnTicketsService({
            ...common,
            audience: config.services[name]?.audience ?? name,
            host: '127.0.0.1',
          });
    demo.started.push({ name, url: started.url, stop: started.stop });
  }
}

/**
 * The demo banner: URLs and a ready-to-use token per tenant — none under NODE_ENV=production,
 * where stdout goes to log collectors, no place for tokens.
 */
async function banner(
  url: string,
  exampleQuery: string,
  demo: Demo,
  registry: Pick<TenantRegistry, 'list'>,
  production: boolean,
): Promise<string> {
  const first = registry.list()[0]?.id ?? '<tenant>';
  const lines = [
    '',
    `  Atrium demo — GraphQL at ${url}/graphql  (health ${url}/healthz, readiness ${url}/readyz)`,
    ...(demo.modelServer ? [`  Model server: ${demo.modelServer.url}`] : []),
    ...demo.started.map((s) =>
      s.name === 'realm'
        ? `  Tenant realm: ${s.url}/graphql (services/realm)`
        : `  Tenant service: ${s.url} (services/${s.name})`,
    ),
    `  Playground: ${url}/playground (or open ${url}/graphql in a browser)`,
    production
      ? `  Dev tokens: not printed under NODE_ENV=production (\`npm run token -- --tenant ${first}\`)`
      : `  Dev tokens (1 h; mint more with \`npm run token -- --tenant ${first}\`):`,
  ];
  for (const tenant of production ? [] : registry.list()) {
    const token = await mintDevToken(demo.devKeys, {
      tenant: tenant.id,
      sub: 'demo-user',
      scope: 'read write predict',
    });
    lines.push(`    ${tenant.id} (${tenant.data.strategy} isolation):`, `      ${token}`);
  }
  lines.push(
    '',
    `  curl -s ${url}/graphql -H "authorization: Bearer <token>" -H 'content-type: application/json' \\`,
    `    -d '${JSON.stringify({ query: exampleQuery }).replaceAll("'", "'\\''")}'`,
    '',
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const env = readEnv();
  const bootLogger = createLogger({ level: env.LOG_LEVEL ?? 'info' });
  const path = env.ATRIUM_CONFIG ? resolve(env.ATRIUM_CONFIG) : undefined;
  // An example's config (a `dev` section, no `auth`) runs as a demo, like the default one.
  const demoPath = path === undefined || isDemoConfigFile(readConfigFile(path)) ? path : undefined;
  const file = path !== undefined && demoPath === undefined ? loadConfigFile(env) : undefined;
  // With `server.workers` > 1 this process forks the gateway workers and only supervises them
  // (src/cluster.ts). Demo mode stays one process: its memory store and model server are per
  // process.
  if (file && startWorkers(workersOptions(file, bootLogger)) === 'primary') return;
  const { config, demo } = file
    ? { config: file, demo: undefined }
    : await startDemo(env, bootLogger, demoPath);
  const app = await createApp(config, { devKeys: demo?.devKeys, worker: cluster.isWorker });
  const { logger } = app;

  // The signal handlers go in before the gateway listens: a supervisor (or a test) may stop it
  // as soon as it answers, while the demo's reference services are still starting, and a
  // default SIGTERM then would orphan them.
  let references: Promise<void> = Promise.resolve();
  let signals = 0;
  const shutdown = (signal: string) => {
    signals += 1;
    // `npm start` (tsx) relays a terminal's Ctrl-C, so one press can arrive twice: a repeat
    // keeps draining; a third signal means the operator insists.
    if (signals > 2) process.exit(1);
    if (signals > 1) return;
    logger.info({ signal }, 'draining');
    // The demo's children go once the gateway has drained and closed what it built, and once
    // those still starting have started (so none is left behind).
    app
      .stop()
      .finally(() => references.catch(() => undefined))
      .finally(() =>
        Promise.allSettled([
          demo?.modelServer?.stop(),
          ...(demo?.started ?? []).map((s) => s.stop()),
        ]),
      )
      .then(
        () => flushLogger(logger).then(() => process.exit(0)),
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          void flushLogger(logger).then(() => process.exit(1));
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // A cluster worker drains when the primary asks (it may have had the signal itself already).
  onShutdownRequest(() => {
    if (signals === 0) shutdown('primary');
  });

  const url = await app.listen();
  if (demo) {
    references = startReferences(demo, url, config, logger);
    await references;
  }
  if (demo && signals === 0)
    console.log(
      await banner(
        url,
        config.dev?.exampleQuery ?? DEFAULT_EXAMPLE_QUERY,
        demo,
        app.registry,
        config.production,
      ),
    );
  process.on('unhandledRejection', (reason) =>
    logger.error({ err: reason }, 'unhandled rejection'),
  );
}

/** The supervisor's settings: worker count, drain budget, and the primary's metrics port. */
function workersOptions(config: AtriumConfig, logger: Logger) {
  const { server, telemetry } = config;
  return {
    workers: server.workers,
    logger,
    shutdownTimeoutMs: server.drainTimeoutMs + 5_000,
    // Nothing to supervise when the workers serve /metrics nowhere (no port, off the main one).
    metrics:
      telemetry.metrics.enabled &&
      (telemetry.metrics.port !== undefined || telemetry.metrics.onMainPort !== 'off')
        ? { port: telemetry.metrics.port, host: telemetry.metrics.host ?? server.host }
        : undefined,
  };
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message);
  else console.error('Atrium failed to start:', error);
  process.exit(1);
});
