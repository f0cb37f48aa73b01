import { describe, expect, it } from 'vitest';
import { NEGOTIATED_MAX, negotiateMediaType } from '../../../src/server/media-type.js';

const JSON = 'application/json';
const GQL = 'application/graphql-response+json';

describe('negotiateMediaType', () => {
  it.each([
    // No preference stated: the legacy type, as the spec asks.
    [undefined, JSON],
    ['', JSON],
    ['*/*', JSON],
    ['application/*', JSON],
    [JSON, JSON],
    ['application/json; charset=utf-8', JSON],
    [GQL, GQL],
    ['application/graphql-response+json; charset=utf-8', GQL],
    // Apollo Client 4 and urql.
    ['application/graphql-response+json,application/json;q=0.9', GQL],
    [
      'application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed',
      GQL,
    ],
    ['application/json, application/graphql-response+json', JSON],
    ['application/json;q=0.5, application/graphql-response+json', GQL],
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', JSON],
    // Nothing acceptable: 406.
    ['text/html', undefined],
    ['application/xml', undefined],
    ['multipart/mixed', undefined],
    ['application/json; charset=latin1', undefined],
    ['application/json;q=0, application/graphql-response+json;q=0', undefined],
    ['x'.repeat(4_000), undefined],
  ])('%s → %s', (accept, expected) => {
    expect(negotiateMediaType(accept)).toBe(expected);
  });

  it('answers a header seen before the same way, also past the memo bound', () => {
    const headers = [GQL, 'text/html', JSON, `${GQL};q=0.5, ${JSON}`];
    const first = headers.map((accept) => negotiateMediaType(accept));
    expect(first).toEqual([GQL, undefined, JSON, JSON]);
    expect(headers.map((accept) => negotiateMediaType(accept))).toEqual(first);
    // More distinct headers than the memo keeps: each still negotiated, none confused.
    for (let i = 0; i < NEGOTIATED_MAX * 2; i += 1) {
      expect(negotiateMediaType(`${GQL};q=0.${(i % 9) + 1}, text/plain;v=${i}`)).toBe(GQL);
      expect(negotiateMediaType(`text/plain;v=${i}`)).toBeUndefined();
    }
    expect(headers.map((accept) => negotiateMediaType(accept))).toEqual(first);
  });
});
