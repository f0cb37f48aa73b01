import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../../../src/errors.js';
import {
  createMicroBatcher,
  type MicroBatcherOptions,
} from '../../../../src/backends/inference/micro-batcher.js';

const f = (row: readonly number[]) => row[0]! * 10 + 1;

/** A batcher whose execute scores rows as f(row) and records every batch it was given. */
function recording(
  options: Partial<MicroBatcherOptions> & { fail?: (rows: number[][]) => unknown } = {},
) {
  const batches: number[][][] = [];
  const batcher = createMicroBatcher({
    windowMs: 5,
    maxBatchSize: 1_000,
    ...options,
    execute: async (rows) => {
      batches.push(rows);
      await new Promise((resolve) => setImmediate(resolve));
      const failure = options.fail?.(rows);
      if (failure !== undefined) throw failure;
      return rows.map(f);
    },
  });
  return { batcher, batches };
}

describe('createMicroBatcher', () => {
  it('joins 64 concurrent single-row submits into few execute calls, each caller getting its own score', async () => {
    const { batcher, batches } = recording({ windowMs: 10 });
    const results = await Promise.all(Array.from({ length: 64 }, (_, i) => batcher.submit([[i]])));
    expect(batches.length).toBeLessThanOrEqual(4);
    expect(batches.flat()).toHaveLength(64);
    results.forEach((scores, i) => expect(scores).toEqual([f([i])]));
  });

  it('returns multi-row slices in order', async () => {
    const { batcher, batches } = recording();
    const [a, b, c] = await Promise.all([
      batcher.submit([[1], [2], [3]]),
      batcher.submit([[4]]),
      batcher.submit([[5], [6]]),
    ]);
    expect(batches).toHaveLength(1);
    expect(a).toEqual([11, 21, 31]);
    expect(b).toEqual([41]);
    expect(c).toEqual([51, 61]);
  });

  it('with windowMs 0 still joins submits made in the same turn', async () => {
    const { batcher, batches } = recording({ windowMs: 0 });
    const results = await Promise.all([batcher.submit([[1]]), batcher.submit([[2]])]);
    expect(batches).toHaveLength(1);
    expect(results).toEqual([[11], [21]]);
    await batcher.submit([[3]]);
    expect(batches).toHaveLength(2);
  });

  it('splits at maxBatchSize, sending a full batch without waiting for the window', async () => {
    const { batcher, batches } = recording({ windowMs: 60_000, maxBatchSize: 4 });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => batcher.submit([[i]])));
    expect(batches.map((b) => b.length)).toEqual([4, 4]);
    results.forEach((scores, i) => expect(scores).toEqual([f([i])]));
  });

  it('splits one large submit over several batches and reassembles its scores', async () => {
    const { batcher, batches } = recording({ maxBatchSize: 4 });
    const rows = Array.from({ length: 10 }, (_, i) => [i]);
    const [big, small] = await Promise.all([batcher.submit(rows), batcher.submit([[99]])]);
    expect(batches.map((b) => b.length)).toEqual([4, 4, 3]);
    expect(big).toEqual(rows.map(f));
    expect(small).toEqual([f([99])]);
  });

  it('rejects every caller of a failed batch with the same coded error, and only them', async () => {
    const failure = new GatewayError('BACKEND_TIMEOUT', 'Inference backend timed out');
    const { batcher, batches } = recording({
      maxBatchSize: 2,
      fail: (rows) => (rows.some((r) => r[0] === 2) ? failure : undefined),
    });
    const outcomes = await Promise.allSettled([
      batcher.submit([[0]]),
      batcher.submit([[1]]),
      batcher.submit([[2]]),
      batcher.submit([[3]]),
      batcher.submit([[4]]),
    ]);
    expect(batches.map((b) => b.map((r) => r[0]))).toEqual([[0, 1], [2, 3], [4]]);
    expect(outcomes.map((o) => o.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'rejected',
      'fulfilled',
    ]);
    expect((outcomes[2] as PromiseRejectedResult).reason).toBe(failure);
    expect((outcomes[3] as PromiseRejectedResult).reason).toBe(failure);
  });

  it('rejects a caller split over batches if any of its batches fails', async () => {
    const failure = new GatewayError('BACKEND_UNAVAILABLE', 'down');
    const { batcher } = recording({
      maxBatchSize: 2,
      fail: (rows) => (rows.some((r) => r[0] === 3) ? failure : undefined),
    });
    await expect(batcher.submit([[0], [1], [2], [3]])).rejects.toBe(failure);
  });

  it('codes uncoded failures, synchronous throws and wrong-length answers as BACKEND_UNAVAILABLE', async () => {
    const plain = createMicroBatcher({
      windowMs: 0,
      maxBatchSize: 10,
      execute: () => Promise.reject(new Error('socket hang up')),
    });
    const sync = createMicroBatcher({
      windowMs: 0,
      maxBatchSize: 10,
      execute: () => {
        throw new Error('boom');
      },
    });
    const short = createMicroBatcher({
      windowMs: 0,
      maxBatchSize: 10,
      execute: async () => [1],
    });
    for (const batcher of [plain, sync, short]) {
      const outcome = await Promise.allSettled([batcher.submit([[1]]), batcher.submit([[2]])]);
      for (const o of outcome) {
        expect(o.status).toBe('rejected');
        const reason = (o as PromiseRejectedResult).reason as GatewayError;
        expect(reason).toBeInstanceOf(GatewayError);
        expect(reason.code).toBe('BACKEND_UNAVAILABLE');
      }
    }
  });

  it('when disabled, makes one execute call per submit', async () => {
    const { batcher, batches } = recording({ enabled: false });
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => batcher.submit([[i]])));
    expect(batches).toHaveLength(5);
    results.forEach((scores, i) => expect(scores).toEqual([f([i])]));
  });

  it('passes batch metadata to every caller of the batch', async () => {
    const batcher = createMicroBatcher<string>({
      windowMs: 1,
      maxBatchSize: 10,
      execute: async (rows) => ({ scores: rows.map(f), meta: 'v2' }),
    });
    const [a, b] = await Promise.all([
      batcher.submitWithMeta([[1]]),
      batcher.submitWithMeta([[2]]),
    ]);
    expect(a).toEqual({ scores: [11], meta: 'v2' });
    expect(b).toEqual({ scores: [21], meta: 'v2' });
  });

  it('hands execute the origins of the submits whose rows are in the batch, in row order', async () => {
    const seen: { rows: number[][]; origins: readonly unknown[] }[] = [];
    const batcher = createMicroBatcher({
      windowMs: 5,
      maxBatchSize: 4,
      execute: async (rows, origins) => {
        seen.push({ rows, origins });
        return rows.map(f);
      },
    });
    const a = { requestId: 'a', traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` };
    const b = { requestId: 'b' };
    const results = await Promise.all([
      batcher.submit([[1], [2], [3]], a),
      batcher.submit([[4], [5]], b),
      batcher.submit([[6]]),
    ]);
    expect(results).toEqual([[11, 21, 31], [41, 51], [61]]);
    // b's rows are split over both batches: its origin goes with each.
    expect(seen).toEqual([
      { rows: [[1], [2], [3], [4]], origins: [a, b] },
      { rows: [[5], [6]], origins: [b] },
    ]);
  });

  it('answers an empty submit without calling execute, and flush() sends early', async () => {
    const { batcher, batches } = recording({ windowMs: 60_000 });
    expect(await batcher.submit([])).toEqual([]);
    const pending = batcher.submit([[1]]);
    expect(batcher.pendingRows()).toBe(1);
    batcher.flush();
    expect(await pending).toEqual([11]);
    expect(batches).toHaveLength(1);
  });

  it('rejects invalid options with a TypeError', () => {
    const execute = async () => [];
    expect(() => createMicroBatcher({ windowMs: -1, maxBatchSize: 1, execute })).toThrow(
      /windowMs/,
    );
    expect(() => createMicroBatcher({ windowMs: 0, maxBatchSize: 0, execute })).toThrow(
      /maxBatchSize/,
    );
  });
});
