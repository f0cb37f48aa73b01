/**
 * `npm run check` — checks the configuration, the schema's source bindings and every tenant's
 * real catalog without starting the gateway, and prints the same report the gateway logs:
 * each mismatch with tenant, type, field, table and column; the migrations a tenant has not
 * applied; and every field whose resolution the engine does not batch (a static N+1 check).
 * Config from ATRIUM_CONFIG (default: the demo example); exit 0 when everything fits, 1 when a
 * tenant does not, 2 when the config or the schema cannot be used.
 */
import { createConfiguredData } from '../src/app.js';
import { pendingMigrations } from '../src/backends/data/migrations.js';
import { DEMO_CONFIG_PATH } from '../src/config/demo.js';
import { applyEnv, parseConfigFile, readConfigFile, readEnv } from '../src/config/load.js';
import { fieldResolutions } from '../src/graphql/batching-report.js';
import { loadGatewaySchema, SchemaBindingError } from '../src/graphql/schema.js';
import { describeMismatch } from '../src/sources/sql/check.js';
import { createTenantChecks } from '../src/sources/sql/tenant-checks.js';
import { createLogger } from '../src/telemetry/logger.js';
import { dirname, resolve } from 'node:path';
import { runScript } from './tenant-task.js';

async function main(): Promise<number> {
  const env = readEnv();
  const path = resolve(env.ATRIUM_CONFIG ?? DEMO_CONFIG_PATH);
  const raw = readConfigFile(path) as Record<string, unknown>;
  // An example's demo config has no `auth`: the check needs none.
  const withAuth =
    'auth' in raw
      ? raw
      : { ...raw, auth: { issuer: 'check', audience: 'check', hs256Secret: 'x'.repeat(32) } };
  const config = applyEnv(parseConfigFile(withAuth, path, dirname(path)), env, 'production');
  console.log(`config: ${path} (${config.tenants.length} tenants)`);

  let schema;
  try {
    schema = await loadGatewaySchema(config.schema);
  } catch (error) {
    if (error instanceof SchemaBindingError) {
      console.error(`FAIL schema: ${error.message}`);
      return 2;
    }
    throw error;
  }
  const tables = [...schema.bindings.tables.values()];
  console.log(
    `schema: ${config.schema.files.join(', ')}: ${tables.length} tables (${tables.map((t) => `${t.type} → ${t.table}`).join(', ')}), ${schema.bindings.fields.length} bound fields`,
  );

  const unbatched = fieldResolutions(schema).filter((r) => !r.batched);
  if (unbatched.length === 0) console.log('batching: every bound field resolves batched');
  else {
    console.log(`batching: ${unbatched.length} field(s) not batched by the engine:`);
    for (const r of unbatched) console.log(`  ${r.field}: ${r.how}`);
  }

  const logger = createLogger({ level: 'silent' });
  const data = await createConfiguredData(config, logger);
  let failed = 0;
  try {
    const checks = createTenantChecks({ dataSource: data, bindings: schema.bindings });
    for (const tenant of config.tenants) {
      const label = `${tenant.id} (${tenant.data.strategy})`;
      try {
        const pending = await data.withSession(tenant, (session) =>
          pendingMigrations(session, tenant, {
            dir: config.data.migrations,
            rowRole: config.data.rowRole,
          }),
        );
        const outcome = await checks.check(tenant);
        const note = pending.length > 0 ? `; pending migrations: ${pending.join(', ')}` : '';
        if (outcome.ok) {
          console.log(`ok   ${label}: ${tables.length} tables fit${note}`);
        } else {
          failed += 1;
          console.error(`FAIL ${label}: ${outcome.mismatches.length} mismatch(es)${note}`);
          for (const m of outcome.mismatches) console.error(`       ${describeMismatch(m)}`);
        }
      } catch (error) {
        failed += 1;
        console.error(`FAIL ${label}: cannot read the catalog: ${(error as Error).message}`);
      }
    }
  } finally {
    await data.close();
  }
  console.log(
    `${config.tenants.length - failed} of ${config.tenants.length} tenants match the schema`,
  );
  return failed === 0 ? 0 : 1;
}

runScript(main);
