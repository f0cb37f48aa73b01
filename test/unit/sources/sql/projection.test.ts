import { describe, expect, it } from 'vitest';
import {
  covers,
  fullProjection,
  projectionOf,
  withColumn,
} from '../../../../src/sources/sql/projection.js';
import { selectList } from '../../../../src/sources/sql/statements.js';
import { demoSchema } from '../../../support/demo.js';

const customers = demoSchema().bindings.tables.get('Customer')!;
const orders = demoSchema().bindings.tables.get('Order')!;

describe('projections', () => {
  it('always hold the key, and only columns of the table', () => {
    const p = projectionOf(customers, ['name', 'no_such_column', 'tenant_id']);
    expect([...p.columns]).toEqual(['id', 'name']);
    expect(p.key).toBe('id,name');
    expect(p.fields).toEqual([
      { field: 'id', column: 'id' },
      { field: 'name', column: 'name' },
    ]);
    expect(p.full).toBe(false);
  });

  it('equal column sets have equal keys, whatever the order asked', () => {
    expect(projectionOf(orders, ['amount', 'customer_id']).key).toBe(
      projectionOf(orders, ['customer_id', 'amount', 'amount']).key,
    );
  });

  it('asking every column is the full projection', () => {
    const every = [...customers.columns.map((c) => c.column), ...customers.joinColumns];
    expect(projectionOf(customers, every)).toBe(fullProjection(customers));
    expect(fullProjection(customers).key).toBe('*');
  });

  it('withColumn adds a column once and returns the same projection for the same addition', () => {
    const p = projectionOf(orders, ['amount']);
    const q = withColumn(p, 'customer_id');
    expect([...q.columns].sort()).toEqual(['amount', 'customer_id', 'id']);
    expect(withColumn(p, 'customer_id')).toBe(q);
    expect(withColumn(q, 'amount')).toBe(q);
  });

  it('covers: a superset covers, a subset or a different set does not', () => {
    const wide = projectionOf(customers, ['name', 'email']);
    const narrow = projectionOf(customers, ['email']);
    const other = projectionOf(customers, ['country']);
    expect(covers(wide, narrow)).toBe(true);
    expect(covers(narrow, wide)).toBe(false);
    expect(covers(wide, other)).toBe(false);
    expect(covers(fullProjection(customers), wide)).toBe(true);
    expect(covers(wide, fullProjection(customers))).toBe(false);
  });
});

describe('selectList', () => {
  it("selects the projection's columns, Float ones as float8", () => {
    expect(selectList(orders, projectionOf(orders, ['amount', 'customer_id']))).toBe(
      't."id", t."amount"::float8 AS "amount", t."customer_id"',
    );
  });

  it('selects every column by default', () => {
    const list = selectList(customers);
    for (const column of customers.columns) expect(list).toContain(`t."${column.column}"`);
  });
});

describe('records in place', () => {
  const column = (field: string, name: string) => ({
    field,
    column: name,
    kind: 'String' as const,
    typeName: 'String',
    nonNull: true,
  });
  // Two fields whose names are each other's columns.
  const swapped = {
    type: 'Swapped',
    table: 'swapped',
    key: column('id', 'id'),
    columns: [column('id', 'id'), column('code', 'ref'), column('ref', 'code')],
    joinColumns: [],
  };

  it('a row becomes its record in place unless a field is named as another column it holds', () => {
    expect(projectionOf(swapped, ['ref']).inPlace).toBe(true);
    expect(projectionOf(swapped, ['ref']).renamed).toEqual([{ field: 'code', column: 'ref' }]);
    expect(projectionOf(swapped, ['ref', 'code']).inPlace).toBe(false);
    expect(fullProjection(customers).inPlace).toBe(true);
    expect(fullProjection(customers).renamed.map((f) => f.field)).toContain('tenureMonths');
  });
});
