import { describe, expect, it } from 'vitest';
import {
  checkCreateOrderInput,
  checkFirst,
  checkIds,
  checkListCustomersArgs,
} from '../../../../src/backends/data/validate.js';
import type { CreateOrderInput } from '../../../../src/backends/data/types.js';
import { GatewayError } from '../../../../src/errors.js';

const valid: CreateOrderInput = {
  customerId: 'cus_1',
  amount: 12.5,
  currency: 'USD',
  channel: 'MOBILE',
  itemCount: 3,
  isInternational: false,
  paymentAttempts: 1,
  hourOfDay: 23,
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error instanceof GatewayError ? error.code : 'not a GatewayError';
  }
}

describe('checkCreateOrderInput', () => {
  it('accepts the documented ranges, boundaries included', () => {
    expect(checkCreateOrderInput(valid)).toBe(valid);
    for (const edge of [
      { amount: 0.01 },
      { amount: 1e9 },
      { itemCount: 1 },
      { itemCount: 1000 },
      { hourOfDay: 0 },
      { paymentAttempts: 100 },
    ]) {
      expect(codeOf(() => checkCreateOrderInput({ ...valid, ...edge }))).toBeUndefined();
    }
  });

  it('rejects everything outside them as BAD_USER_INPUT naming the field', () => {
    const cases: [Partial<Record<keyof CreateOrderInput, unknown>>, string][] = [
      [{ amount: 0 }, 'amount'],
      [{ amount: 1e9 + 0.01 }, 'amount'],
      [{ amount: Infinity }, 'amount'],
      [{ amount: '5' }, 'amount'],
      [{ currency: 'usd' }, 'currency'],
      [{ currency: 'US' }, 'currency'],
      [{ channel: 'EMAIL' }, 'channel'],
      [{ itemCount: 0 }, 'itemCount'],
      [{ itemCount: 2.5 }, 'itemCount'],
      [{ paymentAttempts: 101 }, 'paymentAttempts'],
      [{ hourOfDay: 24 }, 'hourOfDay'],
      [{ isInternational: 'yes' }, 'isInternational'],
      [{ customerId: 'x'.repeat(129) }, 'customerId'],
    ];
    for (const [overrides, field] of cases) {
      const input = { ...valid, ...overrides } as CreateOrderInput;
      let error: unknown;
      try {
        checkCreateOrderInput(input);
      } catch (e) {
        error = e;
      }
      expect(error, field).toBeInstanceOf(GatewayError);
      expect((error as GatewayError).code).toBe('BAD_USER_INPUT');
      expect((error as GatewayError).extensions.field).toBe(field);
    }
  });
});

describe('batch and page arguments', () => {
  it('dedupes ids and rejects non-ids', () => {
    expect(checkIds('ids', ['a', 'b', 'a'])).toEqual(['a', 'b']);
    expect(codeOf(() => checkIds('ids', ['a', '']))).toBe('BAD_USER_INPUT');
    expect(codeOf(() => checkIds('ids', [null]))).toBe('BAD_USER_INPUT');
  });

  it('bounds first and checks the cursor and segment', () => {
    expect(checkFirst('first', 0)).toBe(0);
    expect(codeOf(() => checkFirst('first', 1001))).toBe('BAD_USER_INPUT');
    expect(codeOf(() => checkFirst('first', -1))).toBe('BAD_USER_INPUT');
    expect(codeOf(() => checkListCustomersArgs({ first: 5, afterId: '' }))).toBe('BAD_USER_INPUT');
    expect(codeOf(() => checkListCustomersArgs({ first: 5, segment: 'GIANT' as never }))).toBe(
      'BAD_USER_INPUT',
    );
    expect(checkListCustomersArgs({ first: 5, segment: 'SMB' })).toEqual({
      first: 5,
      afterId: undefined,
      segment: 'SMB',
    });
  });
});
