import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The machine's PostgreSQL test database. */
export const TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

/**
 * A control schema (`liveConfig.controlSchema`) of one test file's own: gateways of a file
 * that share the test database keep their durable copy apart from every other file's (and
 * from earlier runs'). Drop it with {@link dropSchema} when done.
 */
export function uniqueControlSchema(label: string): string {
  return `ctl_${label.replaceAll('-', '_')}_${randomBytes(4).toString('hex')}`;
}

/** Drops a schema (and what is in it) from the test database; a missing one is fine. */
export async function dropSchema(schema: string, url = TEST_DATABASE_URL): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  } finally {
    await client.end();
  }
}
