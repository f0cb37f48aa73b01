import { describe, expect, it } from 'vitest';
import {
  databaseIdentity,
  defaultTenantSchema,
  findIsolationConflicts,
} from '../../../src/config/isolation-targets.js';
import { ConfigError, parseConfigFile } from '../../../src/config/load.js';
import type { TenantConfig } from '../../../src/config/schema.js';

const auth = { issuer: 'https://i', audience: 'a', hs256Secret: 'x'.repeat(32) };
const schema = (id: string, name?: string): Pick<TenantConfig, 'id' | 'data'> => ({
  id,
  data: { strategy: 'schema', ...(name === undefined ? {} : { schema: name }) },
});
const database = (id: string, url: string): Pick<TenantConfig, 'id' | 'data'> => ({
  id,
  data: { strategy: 'database', url },
});

describe('databaseIdentity', () => {
  it('names one database however its URL is spelt', () => {
    const one = databaseIdentity('postgres://atrium@db.internal:5432/initech');
    for (const spelling of [
      'postgresql://intruder:secret@DB.internal/initech',
      'postgres://db.internal:5432/initech?sslmode=require&application_name=x',
    ]) {
      expect(databaseIdentity(spelling)).toBe(one);
    }
    expect(databaseIdentity('postgres://u@localhost/x')).toBe(
      databaseIdentity('postgres://v@127.0.0.1:5432/x'),
    );
    // Without a database name libpq connects to the user's namesake.
    expect(databaseIdentity('postgres://initech@db.internal')).toBe(one);
    expect(databaseIdentity('postgres://db.internal:5433/initech')).not.toBe(one);
    expect(databaseIdentity('postgres://db.internal/other')).not.toBe(one);
  });
});

describe('findIsolationConflicts', () => {
  it('reports a second claim on a schema, naming its owner', () => {
    expect(
      findIsolationConflicts([
        schema('acme'),
        schema('evil2', 'acme_data'),
        schema('evil3', 'acme_data'),
      ]),
    ).toEqual([
      {
        index: 2,
        field: 'data.schema',
        message: 'schema acme_data already belongs to tenant evil2',
      },
    ]);
    expect(
      findIsolationConflicts([schema('acme', 'shared'), schema('bob', 'shared')]),
    ).toHaveLength(1);
  });

  it("reserves every tenant's default schema for that tenant, served or not", () => {
    expect(findIsolationConflicts([schema('evil2', defaultTenantSchema('acme'))])).toEqual([
      {
        index: 0,
        field: 'data.schema',
        message: 'schema tenant_acme is the default schema of another tenant id',
      },
    ]);
    expect(findIsolationConflicts([schema('acme', 'tenant_acme'), schema('acme')])).toEqual([]);
  });

  it('refuses shared, control, system and configured reserved schemas', () => {
    for (const name of [
      'atrium_shared',
      'atrium_control',
      'public',
      'pg_catalog',
      'information_schema',
    ]) {
      expect(findIsolationConflicts([schema('evil', name)])).toMatchObject([
        { field: 'data.schema', message: expect.stringContaining('reserved') },
      ]);
    }
    expect(
      findIsolationConflicts([schema('evil', 'ops_state')], { reservedSchemas: ['ops_state'] }),
    ).toHaveLength(1);
  });

  it('reports a second claim on a database, and URLs that are not PostgreSQL ones', () => {
    expect(
      findIsolationConflicts([
        database('initech', 'postgres://a@db/initech'),
        database('evil', 'postgresql://b:c@DB:5432/initech'),
      ]),
    ).toMatchObject([{ index: 1, field: 'data.url', message: expect.stringContaining('initech') }]);
    expect(findIsolationConflicts([database('x', 'mysql://db/x')])).toMatchObject([
      { field: 'data.url' },
    ]);
  });

  it('lets one id claim several targets (a file entry and its run-time record)', () => {
    expect(findIsolationConflicts([schema('acme', 'old'), schema('acme', 'new')])).toEqual([]);
  });
});

describe('the config file', () => {
  const file = (tenants: unknown[]) => ({ auth, tenants });

  it('stops the gateway when two tenants share a schema, a database or an id', () => {
    const cases: [unknown[], RegExp][] = [
      [
        [
          { id: 'acme', displayName: 'A', data: { strategy: 'schema' } },
          { id: 'evil2', displayName: 'E', data: { strategy: 'schema', schema: 'tenant_acme' } },
        ],
        /tenants\.1\.data\.schema: schema tenant_acme/,
      ],
      [
        [
          { id: 'a', displayName: 'A', data: { strategy: 'database', url: 'postgres://h/db' } },
          {
            id: 'b',
            displayName: 'B',
            data: { strategy: 'database', url: 'postgres://x@H:5432/db' },
          },
        ],
        /tenants\.1\.data\.url: database h:5432\/db already belongs to tenant a/,
      ],
      [
        [
          { id: 'a', displayName: 'A', data: { strategy: 'row' } },
          { id: 'a', displayName: 'A again', data: { strategy: 'row' } },
        ],
        /tenants\.1\.id: tenant a is declared twice/,
      ],
      [
        [{ id: 'a', displayName: 'A', data: { strategy: 'schema', schema: 'fleet_ctl' } }],
        /tenants\.0\.data\.schema: schema fleet_ctl is reserved/,
      ],
    ];
    for (const [tenants, message] of cases) {
      const raw = { ...file(tenants), liveConfig: { controlSchema: 'fleet_ctl' } };
      expect(() => parseConfigFile(raw, 'atrium.yaml')).toThrow(ConfigError);
      expect(() => parseConfigFile(raw, 'atrium.yaml')).toThrow(message);
    }
  });
});
