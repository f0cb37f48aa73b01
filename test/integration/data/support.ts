import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { expect } from 'vitest';
import {
  createPostgresDataSource,
  type PostgresDataSourceOptions,
} from '../../../src/backends/data/postgres.js';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import { GatewayError } from '../../../src/errors.js';
import { eventually as retryUntil } from '../../support/eventually.js';

/** The test PostgreSQL (trust auth). Each test file creates its own schemas, roles, databases. */
export const PG_HOST = '127.0.0.1';
export const PG_PORT = 5432;
export const TEST_DB_URL = `postgres://postgres@${PG_HOST}:${PG_PORT}/test`;

/**
 * A data source on the test database with small pools (4 shared connections, 2 tenant pools of
 * 2) for suites that run a gateway over a few tenants; `options` overrides any setting.
 */
export function testDataSource(
  options: Pick<PostgresDataSourceOptions, 'rowRole' | 'rowSchema'> &
    Partial<PostgresDataSourceOptions>,
): SqlDataSource {
  return createPostgresDataSource({
    url: TEST_DB_URL,
    poolMax: 4,
    tenantPoolMax: 2,
    maxTenantPools: 2,
    tenantPoolIdleMs: 5_000,
    statementTimeoutMs: 10_000,
    ...options,
  });
}

export function dbUrl(database: string): string {
  return `postgres://postgres@${PG_HOST}:${PG_PORT}/${database}`;
}

/** A lowercase suffix unique to this run, safe in identifiers and tenant ids. */
export function uniqueSuffix(): string {
  return `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

export async function withAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createDatabase(name: string): Promise<void> {
  await withAdmin(TEST_DB_URL, (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
}

export async function dropDatabase(name: string): Promise<void> {
  await withAdmin(TEST_DB_URL, (c) =>
    c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
  );
}

/** Drops schemas (CASCADE) and a role with everything it was granted in the test database. */
export async function dropSchemasAndRole(schemas: string[], role?: string): Promise<void> {
  await withAdmin(TEST_DB_URL, async (c) => {
    for (const schema of schemas) {
      await c.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
    }
    if (role !== undefined) {
      const exists = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
      if (exists.rowCount) {
        await c.query(`DROP OWNED BY ${pg.escapeIdentifier(role)}`);
        await c.query(`DROP ROLE ${pg.escapeIdentifier(role)}`);
      }
    }
  });
}

/** A loopback port nothing listens on (bound by the OS, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A loopback server that accepts connections and never answers: a hung database. */
export async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Asserts that `promise` rejects with a GatewayError carrying `code`. */
export async function expectCode(promise: Promise<unknown>, code: string): Promise<GatewayError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GatewayError);
  expect((error as GatewayError).code).toBe(code);
  return error as GatewayError;
}

/** Polls `check` until it returns true or `timeoutMs` passes (for asynchronous closes). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5_000) {
  await retryUntil(check, timeoutMs, 25);
}
