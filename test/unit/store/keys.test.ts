import { describe, expect, it } from 'vitest';
import {
  concurrencyKey,
  escapeKeyPart,
  hashTagOf,
  persistedQueryKey,
  predictionKey,
  rateLimitKey,
  tenantConfigChannel,
  tenantConfigKey,
  tenantKey,
} from '../../../src/store/keys.js';

describe('store keys', () => {
  it('builds atrium:{tenant}:kind:… keys', () => {
    expect(rateLimitKey('acme')).toBe('atrium:{acme}:rl');
    expect(rateLimitKey('acme', 'alice')).toBe('atrium:{acme}:rl-sub:alice');
    expect(concurrencyKey('acme')).toBe('atrium:{acme}:conc');
    expect(predictionKey('acme', 'churn', '2', 'ab12')).toBe('atrium:{acme}:pred:churn:2:ab12');
    expect(persistedQueryKey('acme', 'f00d')).toBe('atrium:{acme}:pq:f00d');
    expect(tenantConfigKey('acme')).toBe('atrium:{acme}:config');
    expect(tenantConfigChannel()).toBe('atrium:tenant-config');
  });

  it('gives two tenants different keys for the same parts', () => {
    const builders = [
      (t: string) => rateLimitKey(t),
      (t: string) => rateLimitKey(t, 'alice'),
      (t: string) => concurrencyKey(t),
      (t: string) => predictionKey(t, 'churn', '2', 'ab12'),
      (t: string) => persistedQueryKey(t, 'f00d'),
      (t: string) => tenantConfigKey(t),
    ];
    for (const build of builders) {
      expect(build('acme')).not.toBe(build('globex'));
      expect(hashTagOf(build('acme'))).toBe('acme');
      expect(hashTagOf(build('globex'))).toBe('globex');
    }
  });

  it('puts every key of a tenant under its hash tag, whatever the parts hold', () => {
    const hostile = ['}', '{globex}', 'x}:{globex', ':', '%7D', '', 'ünï', 'a\r\nb'];
    for (const part of hostile) {
      for (const key of [
        rateLimitKey('acme', part),
        predictionKey('acme', part, part, part),
        persistedQueryKey('acme', part),
        tenantKey('acme', 'custom', part, part),
      ]) {
        expect(key.startsWith('atrium:{acme}:')).toBe(true);
        expect(hashTagOf(key)).toBe('acme');
        expect(key.slice('atrium:{acme}:'.length)).not.toMatch(/[{}]/);
      }
    }
  });

  it('cannot forge another tenant key, nor collide within a tenant, through parts', () => {
    // Naive joining would make these pairs equal; escaping keeps them apart.
    expect(predictionKey('acme', 'a:b', 'c', 'd')).not.toBe(predictionKey('acme', 'a', 'b:c', 'd'));
    expect(persistedQueryKey('acme', '%3A')).not.toBe(persistedQueryKey('acme', ':'));
    expect(rateLimitKey('acme', '}:rl')).not.toBe(rateLimitKey('acme'));
    const forged = rateLimitKey('acme', '{globex}');
    expect(forged).not.toContain('{globex}');
    expect(forged).not.toBe(rateLimitKey('globex'));
    expect(escapeKeyPart('%:{}')).toBe('%25%3A%7B%7D');
  });

  it('rejects tenant ids that are not DNS labels, and bad kinds, with TypeError', () => {
    const bad = [
      '',
      'Acme',
      'acme}',
      '{acme',
      'ac:me',
      'globex}:{acme',
      '-acme',
      'a',
      'x'.repeat(64),
      'acme ',
      'acme\n',
    ];
    for (const tenant of bad) {
      expect(() => rateLimitKey(tenant)).toThrow(TypeError);
      expect(() => predictionKey(tenant, 'm', '1', 'h')).toThrow(TypeError);
      expect(() => tenantKey(tenant, 'pq')).toThrow(TypeError);
    }
    expect(() => rateLimitKey(undefined as unknown as string)).toThrow(TypeError);
    expect(() => tenantKey('acme', 'Bad:Kind')).toThrow(TypeError);
    expect(() => tenantKey('acme', '')).toThrow(TypeError);
    expect(() => tenantKey('acme', 'pq', 7 as unknown as string)).toThrow(TypeError);
  });

  it('finds the hash tag as Redis Cluster does', () => {
    expect(hashTagOf('atrium:{acme}:rl')).toBe('acme');
    expect(hashTagOf('no-tag')).toBe('no-tag');
    expect(hashTagOf('empty{}tag')).toBe('empty{}tag');
    expect(hashTagOf('{a}{b}')).toBe('a');
  });
});
