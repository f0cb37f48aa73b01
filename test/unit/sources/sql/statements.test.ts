import { describe, expect, it } from 'vitest';
import type { StatementTarget } from '../../../../src/backends/data/types.js';
import type {
  ConnectionBinding,
  InsertBinding,
  LookupBinding,
  RelationBinding,
} from '../../../../src/sources/bindings.js';
import {
  byColumnStatement,
  insertStatement,
  pageStatement,
  relationStatement,
} from '../../../../src/sources/sql/statements.js';
import { demoSchema } from '../../../support/demo.js';

const { bindings } = demoSchema();
const field = <B>(name: string) =>
  bindings.fields.find((f) => `${f.parent}.${f.field}` === name) as B;
const schemaTarget: StatementTarget = { schema: 'tenant_acme', tenantId: 'acme', row: false };
const rowTarget: StatementTarget = { schema: 'atrium_rows', tenantId: 'globex', row: true };
const HOSTILE = "x'); DROP TABLE customers; --";

describe('generated statements', () => {
  it('qualifies every table with the tenant schema and binds every value', () => {
    const lookup = field<LookupBinding>('Query.customer');
    const s = byColumnStatement(
      'Customer.by(id)',
      lookup.table,
      'id',
      [HOSTILE, 'c2'],
      schemaTarget,
    );
    expect(s.text).toContain('FROM "tenant_acme"."customers" t');
    expect(s.text).toContain('t."id" = ANY($1)');
    expect(s.text).toContain('t."lifetime_value"::float8 AS "lifetime_value"');
    expect(s.text).not.toContain('DROP');
    expect(s.params).toEqual([[HOSTILE, 'c2']]);
    expect(s.readOnly).toBe(true);
  });

  it('filters on tenant_id under the row strategy, as a parameter', () => {
    const lookup = field<LookupBinding>('Query.customer');
    const s = byColumnStatement('Customer.by(id)', lookup.table, 'id', ['c1'], rowTarget);
    expect(s.text).toContain('"atrium_rows"."customers"');
    expect(s.text).toContain('t."tenant_id" = $2');
    expect(s.params).toEqual([['c1'], 'globex']);
  });

  it('ranks children per parent in one statement, in the relation order, with the limit bound', () => {
    const orders = field<RelationBinding>('Customer.orders');
    const s = relationStatement(orders, ['c1', 'c2'], 5, {}, rowTarget);
    expect(s.text).toContain(
      'row_number() OVER (PARTITION BY t."customer_id" ORDER BY t."created_at" DESC, t."id")',
    );
    expect(s.text).toContain('WHERE atrium_rank <= $3');
    expect(s.params).toEqual([['c1', 'c2'], 'globex', 5]);
  });

  it('pages by the key after the cursor, asking one row more, with filters bound', () => {
    const customers = field<ConnectionBinding>('Query.customers');
    const s = pageStatement(customers, 20, 'c9', { segment: 'SMB' }, schemaTarget);
    expect(s.text).toMatch(
      /WHERE t\."id" > \$1 AND t\."segment" = \$2\s+ORDER BY t\."id" LIMIT \$3/,
    );
    expect(s.params).toEqual(['c9', 'SMB', 21]);
  });

  it('inserts only the given input columns, plus tenant_id where the table has one', () => {
    const create = field<InsertBinding>('Mutation.createOrder');
    const input = { customerId: 'c1', amount: 5, currency: 'USD', channel: 'WEB', hourOfDay: null };
    const s = insertStatement(create, input, schemaTarget, () => true);
    expect(s.text).toMatch(
      /^INSERT INTO "tenant_acme"\."orders" AS t \("customer_id", "amount", "currency", "channel", "tenant_id"\) VALUES \(\$1, \$2, \$3, \$4, \$5\) RETURNING /,
    );
    expect(s.params).toEqual(['c1', 5, 'USD', 'WEB', 'acme']);
    expect(s.readOnly).toBe(false);
    expect(insertStatement(create, input, schemaTarget, () => false).params).toEqual([
      'c1',
      5,
      'USD',
      'WEB',
    ]);
  });
});
