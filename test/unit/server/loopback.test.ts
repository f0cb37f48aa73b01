import { describe, expect, it } from 'vitest';
import { isLoopbackAddress, isLoopbackRequest } from '../../../src/server/loopback.js';

describe('isLoopbackAddress', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.12.0.9', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['10.0.0.5', false],
    ['192.168.1.2', false],
    ['::ffff:10.0.0.5', false],
    ['fe80::1', false],
    ['0.0.0.0', false],
    ['localhost', false],
    [undefined, false],
  ])('%s → %s', (address, expected) => {
    expect(isLoopbackAddress(address)).toBe(expected);
  });
});

describe('isLoopbackRequest', () => {
  const from = (remoteAddress: string, headers: Record<string, string> = {}) =>
    isLoopbackRequest({ socket: { remoteAddress }, headers } as never);

  it('is local only from a loopback peer that relays nobody', () => {
    expect(from('127.0.0.1')).toBe(true);
    expect(from('10.1.2.3')).toBe(false);
    expect(from('127.0.0.1', { 'x-forwarded-for': '203.0.113.1' })).toBe(false);
    expect(from('127.0.0.1', { forwarded: 'for=203.0.113.1' })).toBe(false);
    expect(from('::1', { 'x-real-ip': '203.0.113.1' })).toBe(false);
  });
});
