import { graphql } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlDataSource } from '../../../src/backends/data/tenant-data-source.js';
import type { TenantDataRef } from '../../../src/backends/data/types.js';
import type { GatewayContext } from '../../../src/graphql/context.js';
import { createLoaderRegistry } from '../../../src/loaders/registry.js';
import { readCatalog, type TenantCatalog } from '../../../src/sources/sql/catalog.js';
import { createTenantData } from '../../../src/sources/sql/tenant-data.js';
import { createDemoData, demoSchema } from '../../support/demo.js';
import { DEMO_BINDINGS as B, orderInput, requestData } from '../data/behaviour.js';
import { expectCode } from '../data/support.js';

// Insert errors the engine must name the field of (`@insert`: "constraint violations answer
// BAD_USER_INPUT naming the field"), on the embedded engine with a schema and a row tenant: a
// value its numeric column cannot hold (1e10 into `amount numeric(12,2)`). PostgreSQL names no
// column for that (SQLSTATE 22003), so the engine checks the catalog's precision itself, as it
// does a char(n)'s length. Written as a failing case while rewriting the battery; fixed in src.

const tenants: TenantDataRef[] = [
  { id: 'acme', data: { strategy: 'schema' } },
  { id: 'globex', data: { strategy: 'row' } },
];
const catalogs = new Map<string, TenantCatalog>();
let source: SqlDataSource;

beforeAll(async () => {
  source = await createDemoData({ tenants, seed: { size: 3 } });
  for (const tenant of tenants) catalogs.set(tenant.id, await readCatalog(source, tenant));
});

afterAll(async () => {
  await source?.close();
});

async function someCustomer(tenant: TenantDataRef): Promise<string> {
  const page = await requestData(source, tenant).page(B.customers, { first: 1 });
  return page.rows[0]!['id'] as string;
}

describe('insert errors name the input field', () => {
  it('names amount when it is too large for its numeric(12,2) column (engine)', async () => {
    for (const tenant of tenants) {
      const customerId = await someCustomer(tenant);
      // The largest value the column holds is accepted.
      const largest = await requestData(source, tenant, catalogs.get(tenant.id)).insert(
        B.createOrder,
        orderInput(customerId, { amount: 9_999_999_999.99 }),
      );
      expect(largest['amount']).toBe(9_999_999_999.99);
      const error = await expectCode(
        requestData(source, tenant, catalogs.get(tenant.id)).insert(
          B.createOrder,
          orderInput(customerId, { amount: 1e10 }),
        ),
        'BAD_USER_INPUT',
      );
      expect(error.extensions).toMatchObject({ field: 'amount', argument: 'input' });
      expect(error.message).toContain('amount');
    }
  });

  it('names amount when it is too large for its numeric(12,2) column (GraphQL)', async () => {
    for (const tenant of tenants) {
      const customerId = await someCustomer(tenant);
      const loaders = createLoaderRegistry(tenant.id);
      const contextValue = {
        requestId: 'engine-test',
        principal: {
          tenantId: tenant.id,
          subject: 'engine-test',
          scopes: ['write'],
          claims: {},
          expiresAt: Number.MAX_SAFE_INTEGER,
        },
        tenant,
        loaders,
        data: createTenantData({
          tenant,
          dataSource: source,
          loaders,
          bindings: demoSchema().bindings,
          catalog: () => Promise.resolve(catalogs.get(tenant.id)),
          maxPageSize: 100,
        }),
      } as unknown as GatewayContext;
      const answer = await graphql({
        schema: demoSchema().schema,
        source: `mutation ($c: ID!) { createOrder(input: { customerId: $c, amount: 1e10, currency: "USD", channel: WEB }) { id } }`,
        variableValues: { c: customerId },
        contextValue,
      });
      expect(answer.data).toBeNull();
      expect(answer.errors?.[0]?.extensions).toMatchObject({
        code: 'BAD_USER_INPUT',
        field: 'amount',
      });
    }
  });
});
