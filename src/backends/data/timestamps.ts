import pg from 'pg';

/** PostgreSQL's type id of `timestamptz`. */
export const TIMESTAMPTZ_OID = 1184;

const defaultTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (
  text: string,
) => unknown;

const ZERO = 48;

/** The number the digits of `text` from `start` to `end` (exclusive) spell, or -1. */
function digits(text: string, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i += 1) {
    const d = text.charCodeAt(i) - ZERO;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

/**
 * A `timestamptz` as PostgreSQL writes it under `DateStyle` ISO — `2026-01-31 12:00:00.123456+00`,
 * `+05:30` or `-08` — read without regular expressions: node-postgres's parser (postgres-date)
 * runs three per value, a few percent of an aggregation query's CPU. Anything else (years before
 * 1000 or after 9999, BC, `infinity`, offsets with seconds, other date styles) goes to that
 * parser, and what this one returns is the same Date (test/integration/data/timestamps.test.ts
 * compares both).
 */
export function parseTimestamptz(text: string): unknown {
  const n = text.length;
  if (
    n >= 22 &&
    text.charCodeAt(4) === 45 && // -
    text.charCodeAt(7) === 45 &&
    text.charCodeAt(10) === 32 && // space
    text.charCodeAt(13) === 58 && // :
    text.charCodeAt(16) === 58
  ) {
    const year = digits(text, 0, 4);
    const month = digits(text, 5, 7);
    const day = digits(text, 8, 10);
    const hour = digits(text, 11, 13);
    const minute = digits(text, 14, 16);
    const second = digits(text, 17, 19);
    let i = 19;
    let ms = 0;
    if (text.charCodeAt(i) === 46) {
      // .fraction: as postgres-date reads it (1000 × its value, Date.UTC truncating).
      let end = i + 1;
      while (end < n && digits(text, end, end + 1) >= 0) end += 1;
      if (end === i + 1) return defaultTimestamptz(text);
      ms = 1000 * Number.parseFloat(text.slice(i, end));
      i = end;
    }
    const sign = text.charCodeAt(i);
    const rest = n - i;
    if (
      year >= 1000 &&
      month >= 0 &&
      day >= 0 &&
      hour >= 0 &&
      minute >= 0 &&
      second >= 0 &&
      (sign === 43 || sign === 45) && // + or -
      (rest === 3 || (rest === 6 && text.charCodeAt(i + 3) === 58))
    ) {
      const offsetHours = digits(text, i + 1, i + 3);
      const offsetMinutes = rest === 6 ? digits(text, i + 4, i + 6) : 0;
      if (offsetHours >= 0 && offsetMinutes >= 0) {
        const offset = (sign === 43 ? 1 : -1) * (offsetHours * 60 + offsetMinutes) * 60_000;
        return new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms) - offset);
      }
    }
  }
  return defaultTimestamptz(text);
}

/**
 * node-postgres's type parsers for the gateway's pools: its own for every type but
 * `timestamptz` in text format, which {@link parseTimestamptz} reads.
 */
export const gatewayPgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === TIMESTAMPTZ_OID && format !== 'binary'
      ? parseTimestamptz
      : pg.types.getTypeParser(oid, format ?? 'text')) as pg.CustomTypesConfig['getTypeParser'],
};
