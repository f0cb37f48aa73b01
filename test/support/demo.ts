/**
 * The demo example (examples/demo) as tests use it: its schema and bindings, its migrations
 * and seed on a real or embedded database. One place, so every suite serves the same SDL.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { globSync } from 'tinyglobby';
import { migrateTenant } from '../../src/backends/data/migrations.js';
import {
  createEmbeddedData,
  type PgliteDataSourceOptions,
} from '../../src/backends/data/pglite.js';
import { seedTenant } from '../../src/backends/data/seeding.js';
import type { SqlExecutor } from '../../src/backends/data/sql-executor.js';
import type { SqlDataSource } from '../../src/backends/data/tenant-data-source.js';
import type { TenantDataRef } from '../../src/backends/data/types.js';
import { buildGatewaySchema, type GatewaySchema } from '../../src/graphql/schema.js';

export const EXAMPLES_DIR = fileURLToPath(new URL('../../examples/', import.meta.url));
export const DEMO_DIR = `${EXAMPLES_DIR}demo/`;
export const DEMO_MIGRATIONS = `${DEMO_DIR}migrations`;
export const DEMO_SEED = `${DEMO_DIR}seed.ts`;

/** An example's SDL documents, in file order. */
export function exampleTypeDefs(name: string): string[] {
  return globSync(`${EXAMPLES_DIR}${name}/schema/*.graphql`, { absolute: true })
    .sort()
    .map((path) => readFileSync(path, 'utf8'));
}

export const demoTypeDefs = (): string[] => exampleTypeDefs('demo');

let demo: GatewaySchema | undefined;

/** The demo's executable schema (built once per test file). */
export function demoSchema(): GatewaySchema {
  demo ??= buildGatewaySchema({ typeDefs: demoTypeDefs() });
  return demo;
}

/** Applies the demo's migrations for `tenant` on `session` (a session of its database). */
export function migrateDemoTenant(
  session: SqlExecutor,
  tenant: TenantDataRef,
  names: { rowRole?: string; rowSchema?: string } = {},
) {
  return migrateTenant(session, tenant, { ...names, dir: DEMO_MIGRATIONS });
}

/** Seeds the demo's rows (`size` customers) for `tenant`, in its isolation. */
export function seedDemoTenant(
  session: SqlExecutor,
  tenant: TenantDataRef,
  options: { size?: number; rowRole?: string; rowSchema?: string } = {},
) {
  return seedTenant(session, tenant, { ...options, module: DEMO_SEED });
}

/** Embedded PGlite with the demo's tables (and, unless `seed: false`, its rows) per tenant. */
export function createDemoData(
  options: PgliteDataSourceOptions & {
    tenants: readonly TenantDataRef[];
    seed?: false | { size?: number };
  },
): Promise<SqlDataSource> {
  const { seed, ...rest } = options;
  return createEmbeddedData({
    ...rest,
    migrations: DEMO_MIGRATIONS,
    seed: seed === false ? undefined : DEMO_SEED,
    seedSize: seed === false ? undefined : seed?.size,
  });
}
