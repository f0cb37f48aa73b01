import { describe, expect, it } from 'vitest';
import {
  createRequestLog,
  REQUEST_LOG_CAPACITY,
} from '../../../services/tickets/src/request-log.js';

// The log behind /_requests keeps the last N data requests, oldest first; 10,000 real HTTP
// requests would only slow the suite, so the ring is checked in process with a small N.

const entry = (i: number) => ({
  tenant: i % 2 === 0 ? 'acme' : 'globex',
  subject: `user-${i}`,
  path: '/tickets',
  query: { customerId: `c${i}` },
  customerIds: [`c${i}`],
});

describe('request log', () => {
  it('keeps the last `capacity` entries, oldest first, while the counters keep counting', () => {
    expect(REQUEST_LOG_CAPACITY).toBe(10_000);
    const log = createRequestLog(5);
    for (let i = 0; i < 12; i++) log.record('/tickets', 200, entry(i));
    log.record('/tickets', 401);
    expect(log.requests().map((r) => r.subject)).toEqual([
      'user-7',
      'user-8',
      'user-9',
      'user-10',
      'user-11',
    ]);
    expect(log.stats()).toEqual({
      requests: 13,
      byTenant: { acme: 6, globex: 6 },
      byPath: { '/tickets': 13 },
      byStatus: { '200': 12, '401': 1 },
      customerIds: { acme: 6, globex: 6 },
    });
    log.reset();
    expect(log.requests()).toEqual([]);
    log.record('/tickets', 200, entry(1));
    expect(log.requests()).toHaveLength(1);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => createRequestLog(0)).toThrow(TypeError);
  });
});
