import { describe, expect, it } from 'vitest';
import {
  createOrderStatement,
  customersByIdsStatement,
  listCustomersStatement,
  ordersByCustomerIdsStatement,
  ordersByIdsStatement,
  type Statement,
} from '../../../../src/backends/data/statements.js';

const input = {
  customerId: 'cus_1',
  amount: 10,
  currency: 'EUR',
  channel: 'WEB' as const,
  itemCount: 1,
  isInternational: false,
  paymentAttempts: 1,
  hourOfDay: 3,
};

function all(tenantId?: string): Statement[] {
  return [
    customersByIdsStatement(['cus_1'], tenantId),
    ordersByIdsStatement(['ord_1'], tenantId),
    ordersByCustomerIdsStatement(['cus_1'], 3, tenantId),
    listCustomersStatement({ first: 10 }, tenantId),
    listCustomersStatement({ first: 10, afterId: 'cus_0', segment: 'SMB' }, tenantId),
    createOrderStatement('ord_new', input, tenantId),
  ];
}

describe('data statements', () => {
  it('carry the tenant as a bound tenant_id predicate for the row strategy (defence in depth)', () => {
    for (const statement of all('globex')) {
      const placeholder = `$${statement.params.indexOf('globex') + 1}`;
      expect(placeholder).not.toBe('$0');
      if (statement.readOnly) {
        expect(statement.text).toContain(`tenant_id = ${placeholder}`);
      } else {
        expect(statement.text).toMatch(/, tenant_id\) VALUES \(/);
        expect(statement.text).toContain(`, ${placeholder})`);
      }
      // The tenant id is never spliced into the text.
      expect(statement.text).not.toContain('globex');
    }
  });

  it('have no tenant column for schema and database strategies', () => {
    for (const statement of all()) expect(statement.text).not.toContain('tenant_id');
  });

  it('batch keys through one array parameter', () => {
    expect(customersByIdsStatement(['a', 'b', 'c']).params).toEqual([['a', 'b', 'c']]);
    expect(customersByIdsStatement(['a']).text).toContain('= ANY($1::text[])');
    const perCustomer = ordersByCustomerIdsStatement(['a', 'b'], 3);
    expect(perCustomer.text).toMatch(/row_number\(\) OVER \(\s*PARTITION BY o\.customer_id/);
    expect(perCustomer.params).toEqual([['a', 'b'], 3]);
  });

  it('ask for one more row than a page holds', () => {
    expect(listCustomersStatement({ first: 10 }).params[0]).toBe(11);
  });

  it('mark only createOrder as a write', () => {
    expect(all().map((s) => s.readOnly)).toEqual([true, true, true, true, true, false]);
  });
});
