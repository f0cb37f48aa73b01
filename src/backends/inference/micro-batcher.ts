import { GatewayError, isGatewayError } from '../../errors.js';
import type { RequestOrigin } from '../../telemetry/tracing.js';

/** What one `execute` call returns: a score per row, optionally with batch-wide metadata. */
export type MicroBatchOutput<TMeta> =
  readonly number[] | { scores: readonly number[]; meta: TMeta };

export interface MicroBatcherOptions<TMeta = undefined> {
  /**
   * `false`: no joining; each `submit` goes straight to `execute` (still split into chunks of
   * at most `maxBatchSize` rows). Default `true`.
   */
  enabled?: boolean;
  /**
   * How long the first submit of a batch waits for others. `0` flushes on the next turn of
   * the event loop (`setImmediate`), which still joins every submit made in the current turn
   * and the promise jobs it spawned.
   */
  windowMs: number;
  /**
   * Rows per `execute` call at most. A full batch is sent at once, without waiting; what is
   * left of a larger submit waits for the window with the others.
   */
  maxBatchSize: number;
  /**
   * Batches of this batcher being scored at once, at most (default: no limit). When the window
   * closes while that many are out, the rows keep waiting and go as one batch as soon as one
   * returns ("natural batching", as inference servers' dynamic batchers do): under load,
   * batches grow instead of calls multiplying; when idle, nothing waits longer than the window.
   * Full batches (`maxBatchSize` rows) are sent at once regardless.
   */
  maxInFlight?: number;
  /**
   * Scores the rows of one batch, one score per row in order. A rejection rejects every
   * caller with a row in that batch, with the same error (coded as `BACKEND_UNAVAILABLE` if it
   * was not a `GatewayError` already). `origins` are those of the submits with rows in the
   * batch, in the order of their rows (submits made without one are left out).
   */
  execute: (
    rows: number[][],
    origins: readonly RequestOrigin[],
  ) => Promise<MicroBatchOutput<TMeta>>;
}

export interface MicroBatchResult<TMeta> {
  /** Exactly the caller's scores, in the order of its rows. */
  scores: number[];
  /**
   * The batch's metadata; if the caller's rows were split over several batches, that of the
   * batch holding its first row.
   */
  meta: TMeta | undefined;
}

export interface MicroBatcher<TMeta = undefined> {
  /**
   * Scores `rows`, possibly in one `execute` call together with concurrent submits; `origin`,
   * the request the rows are for, goes to `execute` with them.
   */
  submit(rows: number[][], origin?: RequestOrigin): Promise<number[]>;
  /** `submit`, also returning the metadata of the batch. */
  submitWithMeta(rows: number[][], origin?: RequestOrigin): Promise<MicroBatchResult<TMeta>>;
  /** Rows waiting for the window to close. */
  pendingRows(): number;
  /** Sends what is waiting now instead of at the end of the window. */
  flush(): void;
}

interface Entry<TMeta> {
  rows: number[][];
  origin: RequestOrigin | undefined;
  scores: number[];
  remaining: number;
  meta: TMeta | undefined;
  settled: boolean;
  resolve: (result: MicroBatchResult<TMeta>) => void;
  reject: (error: unknown) => void;
}

/** The rows of `entry` from `offset` on, still waiting for a batch. */
interface Slice<TMeta> {
  entry: Entry<TMeta>;
  offset: number;
}

interface Part<TMeta> {
  entry: Entry<TMeta>;
  /** Index of the part's first row in the entry, and in the batch. */
  entryOffset: number;
  batchOffset: number;
  length: number;
}

function asCoded(error: unknown): GatewayError {
  if (isGatewayError(error)) return error;
  return new GatewayError('BACKEND_UNAVAILABLE', 'Inference backend unavailable', {
    cause: error,
  });
}

/**
 * Joins concurrent `submit` calls into few `execute` calls: all submits within `windowMs` of
 * the first (or until `maxBatchSize` rows) form one batch, and each caller gets back exactly
 * the slice of scores for its own rows. Isolation is the caller's job: one batcher must serve
 * one tenant and one model version (the predictor keys them so).
 */
export function createMicroBatcher<TMeta = undefined>(
  options: MicroBatcherOptions<TMeta>,
): MicroBatcher<TMeta> {
  const { windowMs, maxBatchSize, execute } = options;
  const enabled = options.enabled ?? true;
  const maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
  if (!(maxInFlight >= 1)) {
    throw new TypeError(`createMicroBatcher: maxInFlight must be ≥ 1, got ${maxInFlight}`);
  }
  if (!Number.isFinite(windowMs) || windowMs < 0) {
    throw new TypeError(`createMicroBatcher: windowMs must be a number ≥ 0, got ${windowMs}`);
  }
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
    throw new TypeError(
      `createMicroBatcher: maxBatchSize must be a positive integer, got ${maxBatchSize}`,
    );
  }
  if (typeof execute !== 'function') {
    throw new TypeError('createMicroBatcher: execute must be a function');
  }

  const pending: Slice<TMeta>[] = [];
  let pendingCount = 0;
  let timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  let inFlight = 0;

  function cancelTimer(): void {
    if (timer === undefined) return;
    if (windowMs === 0) clearImmediate(timer as NodeJS.Immediate);
    else clearTimeout(timer as NodeJS.Timeout);
    timer = undefined;
  }

  function fail(entry: Entry<TMeta>, error: GatewayError): void {
    if (entry.settled) return;
    entry.settled = true;
    entry.reject(error);
  }

  function runBatch(rows: number[][], parts: Part<TMeta>[]): void {
    inFlight += 1;
    // One part per submit in a batch: a submit's rows are contiguous there.
    const origins = parts.flatMap((part) => (part.entry.origin ? [part.entry.origin] : []));
    Promise.resolve()
      .then(() => execute(rows, origins))
      .finally(() => {
        inFlight -= 1;
        // Rows that waited for capacity go now: their window has already closed.
        if (timer === undefined && pending.length > 0) sendWaiting();
      })
      .then(
        (output) => {
          const scores = Array.isArray(output)
            ? (output as readonly number[])
            : (output as { scores: readonly number[] }).scores;
          const meta = Array.isArray(output) ? undefined : (output as { meta: TMeta }).meta;
          if (!Array.isArray(scores) || scores.length !== rows.length) {
            const error = new GatewayError('BACKEND_UNAVAILABLE', 'Inference backend unavailable', {
              cause: new Error(
                `execute returned ${Array.isArray(scores) ? scores.length : typeof scores} scores for ${rows.length} rows`,
              ),
            });
            for (const part of parts) fail(part.entry, error);
            return;
          }
          for (const part of parts) {
            const { entry } = part;
            if (entry.settled) continue;
            for (let i = 0; i < part.length; i++) {
              entry.scores[part.entryOffset + i] = scores[part.batchOffset + i]!;
            }
            if (part.entryOffset === 0) entry.meta = meta;
            entry.remaining -= part.length;
            if (entry.remaining === 0) {
              entry.settled = true;
              entry.resolve({ scores: entry.scores, meta: entry.meta });
            }
          }
        },
        (error: unknown) => {
          const coded = asCoded(error);
          for (const part of parts) fail(part.entry, coded);
        },
      );
  }

  /** Takes up to `limit` rows off the front of `queue` (splitting a slice if needed) and runs them. */
  function runFrom(queue: Slice<TMeta>[], limit: number): number {
    const rows: number[][] = [];
    const parts: Part<TMeta>[] = [];
    while (queue.length > 0 && rows.length < limit) {
      const slice = queue[0]!;
      const available = slice.entry.rows.length - slice.offset;
      const length = Math.min(limit - rows.length, available);
      parts.push({
        entry: slice.entry,
        entryOffset: slice.offset,
        batchOffset: rows.length,
        length,
      });
      for (let i = 0; i < length; i++) rows.push(slice.entry.rows[slice.offset + i]!);
      if (length === available) queue.shift();
      else slice.offset += length;
    }
    if (rows.length > 0) runBatch(rows, parts);
    return rows.length;
  }

  function flush(): void {
    cancelTimer();
    while (pending.length > 0) runFrom(pending, maxBatchSize);
    pendingCount = 0;
  }

  /** The window closed: send what waits, as far as the in-flight limit allows. */
  function sendWaiting(): void {
    timer = undefined;
    while (pending.length > 0 && inFlight < maxInFlight) {
      pendingCount -= runFrom(pending, maxBatchSize);
    }
  }

  function submitWithMeta(
    rows: number[][],
    origin?: RequestOrigin,
  ): Promise<MicroBatchResult<TMeta>> {
    if (!Array.isArray(rows)) {
      return Promise.reject(new GatewayError('BAD_USER_INPUT', 'rows must be an array of rows'));
    }
    if (rows.length === 0) return Promise.resolve({ scores: [], meta: undefined });
    return new Promise<MicroBatchResult<TMeta>>((resolve, reject) => {
      const entry: Entry<TMeta> = {
        rows,
        origin,
        scores: new Array<number>(rows.length),
        remaining: rows.length,
        meta: undefined,
        settled: false,
        resolve,
        reject,
      };
      if (!enabled) {
        const own: Slice<TMeta>[] = [{ entry, offset: 0 }];
        while (own.length > 0) runFrom(own, maxBatchSize);
        return;
      }
      pending.push({ entry, offset: 0 });
      pendingCount += rows.length;
      // Full batches go now; a remainder waits for the window like any other submit.
      while (pendingCount >= maxBatchSize) pendingCount -= runFrom(pending, maxBatchSize);
      if (pendingCount === 0) cancelTimer();
      else if (timer === undefined) {
        timer = windowMs === 0 ? setImmediate(sendWaiting) : setTimeout(sendWaiting, windowMs);
      }
    });
  }

  return {
    submitWithMeta,
    submit: (rows, origin) => submitWithMeta(rows, origin).then((r) => r.scores),
    pendingRows: () => pendingCount,
    flush,
  };
}
