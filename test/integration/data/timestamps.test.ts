import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { parseTimestamptz, TIMESTAMPTZ_OID } from '../../../src/backends/data/timestamps.js';
import { TEST_DATABASE_URL } from '../../support/control-schema.js';

// node-postgres's own parser (postgres-date), which parseTimestamptz must agree with.
const reference = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => unknown;

function same(text: string) {
  const ours = parseTimestamptz(text);
  const theirs = reference(text);
  const comparable = (v: unknown) => (v instanceof Date ? `date:${v.getTime()}` : v);
  return { text, ours: comparable(ours), theirs: comparable(theirs) };
}

/** A deterministic pseudo-random sequence (mulberry32), so a failure can be replayed. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('timestamptz parsing without regular expressions', () => {
  it('reads the values PostgreSQL writes as node-postgres does, whatever the session time zone', async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      const zones = [
        'UTC',
        'Asia/Kolkata',
        'America/Los_Angeles',
        'Asia/Kathmandu',
        'Europe/Paris',
      ];
      let compared = 0;
      for (const zone of zones) {
        await client.query(`SET TimeZone = '${zone}'`);
        // Text as PostgreSQL sends it: fractions of 0–6 digits, every offset the zone has had,
        // plus the values the fast path leaves to postgres-date (BC, year 10000, infinity,
        // local mean time with seconds).
        const { rows } = await client.query<{ t: string }>({
          text: `SELECT t::text AS t FROM (
              SELECT timestamptz '1850-01-01 00:00:00+00' + (random() * interval '250 years') AS t
                FROM generate_series(1, 400)
              UNION ALL SELECT date_trunc('second', now()) + (g || ' microseconds')::interval
                FROM generate_series(0, 999999, 9973) g
              UNION ALL SELECT v FROM unnest(ARRAY['infinity', '-infinity', '0044-03-15 12:00:00+00 BC',
                '10000-01-01 00:00:00+00', '1066-10-14 09:00:00+00', '1000-01-01 00:00:00+00']::timestamptz[]) v
            ) s`,
        });
        for (const { t } of rows) {
          const r = same(t);
          expect(r.ours, t).toEqual(r.theirs);
          compared += 1;
        }
      }
      expect(compared).toBeGreaterThan(2_500);
    } finally {
      await client.end();
    }
  });

  it('agrees with node-postgres on generated ISO text, and on text that is not', () => {
    const next = random(13);
    const pad = (v: number, width: number) => String(v).padStart(width, '0');
    for (let i = 0; i < 20_000; i += 1) {
      const year = 900 + Math.floor(next() * 9200);
      const fraction = Math.floor(next() * 7);
      const text =
        `${pad(year, 4)}-${pad(1 + Math.floor(next() * 12), 2)}-${pad(1 + Math.floor(next() * 28), 2)} ` +
        `${pad(Math.floor(next() * 24), 2)}:${pad(Math.floor(next() * 60), 2)}:${pad(Math.floor(next() * 60), 2)}` +
        (fraction > 0 ? `.${pad(Math.floor(next() * 10 ** fraction), fraction)}` : '') +
        (next() < 0.5 ? '+' : '-') +
        pad(Math.floor(next() * 15), 2) +
        (next() < 0.3 ? `:${pad(Math.floor(next() * 60), 2)}` : '');
      const r = same(text);
      expect(r.ours, text).toEqual(r.theirs);
    }
    for (const text of [
      '2026-01-31 12:00:00.+00',
      '2026-01-31 12:00:00',
      '2026-01-31T12:00:00Z',
      '2026-01-31 12:00:00+5',
      '2026-01-31 12:00:00+05:3',
      '2026-01-31 12:00:00+05:30:15',
      '2026-1-31 12:00:00+00',
      '20x6-01-31 12:00:00+00',
      'Sat Jan 31 12:00:00 2026 UTC',
      '',
    ]) {
      const r = same(text);
      expect(r.ours, text).toEqual(r.theirs);
    }
  });
});
