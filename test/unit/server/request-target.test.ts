import { describe, expect, it } from 'vitest';
import { requestTarget } from '../../../src/server/http-handler.js';

describe('requestTarget', () => {
  it.each([
    '/graphql',
    '/graphql/',
    '/t/acme/graphql',
    '/t/acme-eu_2/graphql/',
    '/healthz',
    '/',
    '/graphql?query=%7B__typename%7D',
    '/graphql?',
    '/t/acme.co/graphql',
    '/t/%61cme/graphql',
    '/t/../graphql',
    '/t/./acme/graphql',
    '/t//graphql',
    '//graphql',
    '/graphql#fragment',
    'http://other.example/t/acme/graphql?x=1',
    '*',
    '/t/ac me/graphql',
    '/t/\\acme/graphql',
    '/t/acmé/graphql',
  ])('%s reads as the URL parser reads it', (raw) => {
    const parsed = new URL(raw, 'http://gateway.invalid');
    const target = requestTarget(raw);
    expect({ pathname: target.pathname, search: target.search }).toEqual({
      pathname: parsed.pathname,
      search: parsed.search,
    });
  });

  it('reads no target as the root', () => {
    expect(requestTarget(undefined)).toMatchObject({ pathname: '/', search: '' });
  });
});
