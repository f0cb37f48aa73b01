/**
 * Run-time tenant administration, the CLI twin of `/admin/tenants`: the same validation (one
 * implementation, `src/tenancy/tenant-admin.ts`) against the same effective set (the config
 * file's tenants plus every run-time record), the same reserved ids, the same writes (the
 * durable copy in PostgreSQL first when a database is configured, then Redis). Every replica
 * applies a change within a second (pub/sub), or at its next revision poll after a disconnect.
 *
 *   npm run tenants -- list
 *   npm run tenants -- get <id>
 *   npm run tenants -- put <tenant.json|tenant.yaml>      (one tenant, or a list of tenants)
 *   npm run tenants -- suspend <id> | resume <id>
 *   npm run tenants -- delete <id>                        (stop serving it, whatever the file says)
 *   npm run tenants -- reset <id>                         (drop the run-time record)
 *   npm run tenants -- documents <id> <documents.json>    (register trusted documents)
 *   npm run tenants -- forget-documents <id> <sha256>…
 *
 * Needs ATRIUM_CONFIG (the gateway's config file: its tenants, plans and operator tenant are
 * what changes are checked against) with Redis (REDIS_URL / REDIS_CLUSTER_NODES or the file's
 * redis settings) and, when the gateways have one, the database (DATABASE_URL or `data.url`).
 * Prints JSON on stdout; exits 1 on a refused or failed action, 2 on bad usage.
 */
import type { Cluster, Redis } from 'ioredis';
import { ConfigError, loadConfigFile, readConfigFile, readEnv } from '../src/config/load.js';
import { isGatewayError } from '../src/errors.js';
import {
  parseTrustedDocuments,
  registerTrustedDocuments,
  removeTrustedDocuments,
} from '../src/server/persisted-queries.js';
import { createControlPool, createPostgresControlStore } from '../src/store/control-store.js';
import { createRedisClient, waitForRedis } from '../src/store/redis-client.js';
import { createRedisStore } from '../src/store/redis-store.js';
import { adminRulesFromConfig, createTenantConfigAdmin } from '../src/tenancy/tenant-admin.js';

const USAGE = `Usage: npm run tenants -- <command>

  list                          tenants with a run-time record
  get <id>                      one tenant's record
  put <file.json|file.yaml>     create or replace tenants (an object, or a list of objects)
  suspend <id>                  refuse the tenant's requests on every replica
  resume <id>                   serve it again
  delete <id>                   stop serving it, whatever the config file says
  reset <id>                    drop its run-time record (the config file applies again)
  documents <id> <file.json>    register trusted documents (array, { documents }, or an
                                Apollo persisted query manifest)
  forget-documents <id> <sha256>…

Environment: ATRIUM_CONFIG (the gateway's config file), with REDIS_URL or REDIS_CLUSTER_NODES
(or the file's redis settings) and DATABASE_URL (or the file's data.url) when the gateways use one.
`;

function usageError(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  if (command === undefined || command === '-h' || command === '--help') {
    process.stdout.write(USAGE);
    return;
  }
  const arity: Record<string, number> = {
    list: 0,
    get: 1,
    put: 1,
    suspend: 1,
    resume: 1,
    delete: 1,
    reset: 1,
    documents: 2,
  };
  if (command === 'forget-documents') {
    if (args.length < 2) usageError('forget-documents needs a tenant id and at least one hash');
  } else if (arity[command] === undefined) {
    usageError(`Unknown command ${JSON.stringify(command)}`);
  } else if (args.length !== arity[command]) {
    usageError(`${command} takes ${arity[command]} argument(s)`);
  }

  const env = readEnv();
  if (!env.ATRIUM_CONFIG) {
    usageError(
      "Set ATRIUM_CONFIG to the gateways' config file: changes are checked against its tenants.",
    );
  }
  const config = loadConfigFile(env);
  const { redis } = config;
  const cluster = redis.cluster ?? [];
  if (!redis.url && cluster.length === 0) {
    usageError("Set REDIS_URL or REDIS_CLUSTER_NODES (or the config file's redis settings).");
  }
  // An operator command may wait a little longer than a request would.
  const timeoutMs = Math.max(redis.commandTimeoutMs, 2_000);
  const client: Redis | Cluster = createRedisClient(
    cluster.length > 0 ? { clusterNodes: cluster } : { url: redis.url ?? '' },
    { commandTimeoutMs: timeoutMs },
  );
  const store = createRedisStore({ client, timeoutMs });
  const pool = config.data.url ? createControlPool({ url: config.data.url }) : undefined;
  try {
    await waitForRedis(client, 5_000);
    const admin = createTenantConfigAdmin({
      ...adminRulesFromConfig(config),
      store,
      control:
        pool && createPostgresControlStore({ pool, schema: config.liveConfig.controlSchema }),
    });
    const id = args[0] as string;
    switch (command) {
      case 'list':
        return print(await admin.list());
      case 'get': {
        const record = await admin.get(id);
        if (record === undefined) {
          process.stderr.write(`No run-time record for tenant ${id}.\n`);
          process.exitCode = 1;
          return;
        }
        return print({ id, record });
      }
      case 'put': {
        const input = readConfigFile(id);
        const list = Array.isArray(input) ? input : [input];
        const written = [];
        for (const tenant of list) written.push(await admin.put(tenant));
        return print(written);
      }
      case 'suspend':
      case 'resume':
        return print({
          id,
          record: await admin.setStatus(id, command === 'suspend' ? 'suspended' : 'active'),
        });
      case 'delete':
        await admin.delete(id);
        return print({ deleted: id });
      case 'reset':
        return print({ id, reset: await admin.reset(id) });
      case 'documents': {
        const documents = parseTrustedDocuments(readConfigFile(args[1] as string));
        return print({ id, hashes: await registerTrustedDocuments(admin, id, documents) });
      }
      case 'forget-documents':
        return print({ id, removed: await removeTrustedDocuments(admin, id, args.slice(1)) });
      default:
        usageError(`Unknown command ${JSON.stringify(command)}`);
    }
  } finally {
    await store.close();
    await pool?.end();
  }
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  if (isGatewayError(error)) {
    process.stderr.write(`${error.message}\n`);
  } else {
    process.stderr.write(`tenants: ${(error as Error).message ?? String(error)}\n`);
  }
  process.exit(1);
});
