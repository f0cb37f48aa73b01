import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../src/errors.js';
import { decodeCursor, encodeCursor, pageSize } from '../../../../src/sources/sql/tenant-data.js';

describe('arguments', () => {
  it('round-trips cursors and refuses forged ones', () => {
    expect(decodeCursor(encodeCursor('cus_123'))).toBe('cus_123');
    expect(decodeCursor(undefined)).toBeUndefined();
    for (const bad of [
      '',
      'not-a-cursor',
      Buffer.from('c1:').toString('base64url'),
      'x'.repeat(500),
    ]) {
      expect(() => decodeCursor(bad)).toThrow(GatewayError);
    }
  });

  it('bounds page sizes', () => {
    expect(pageSize(undefined, 20, 100)).toBe(20);
    expect(pageSize(100, 20, 100)).toBe(100);
    for (const bad of [0, -1, 101, 2.5])
      expect(() => pageSize(bad, 20, 100)).toThrow(/between 1 and 100/);
  });
});
