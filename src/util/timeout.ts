/**
 * The bounded wait of the code base. It sits at the bottom of the layering (src/util/
 * imports no other src folder), so auth/ and store/ use it as freely as server/. The one other
 * is a request's deadline (limits/deadline.ts), whose backend calls share a single timer.
 */

/**
 * Settles like `work` if `work` settles within `ms`; otherwise like `onTimeout()` when the time
 * is up: what it returns resolves the result, what it throws rejects it (so each caller keeps
 * its own error, or gives up quietly by returning a value). `ms` ≤ 0 means the time is up
 * already: `onTimeout` runs at once.
 *
 * `work` is not cancelled (an `onTimeout` may abort it); its late outcome is dropped, never an
 * unhandled rejection. The timer is cleared as soon as `work` settles, so nothing lingers.
 * `ended`, when given, ends the wait early as if the time were up (a request whose client left).
 */
export function withTimeout<T, F = never>(
  work: PromiseLike<T>,
  ms: number,
  onTimeout: () => F,
  ended?: AbortSignal,
): Promise<T | F> {
  if (Number.isNaN(ms)) throw new TypeError('withTimeout: ms must be a number; received NaN');
  return new Promise<T | F>((resolve, reject) => {
    let settled = false;
    const expire = (): void => {
      if (settled) return;
      settled = true;
      try {
        resolve(onTimeout());
      } catch (error) {
        reject(error);
      }
    };
    // Handlers are attached in every case, so a late rejection of `work` is always handled.
    if (ms <= 0 || ended?.aborted) {
      work.then(
        () => undefined,
        () => undefined,
      );
      expire();
      return;
    }
    const timer = setTimeout(expire, ms);
    ended?.addEventListener('abort', expire, { once: true });
    const done = (): void => {
      settled = true;
      clearTimeout(timer);
      ended?.removeEventListener('abort', expire);
    };
    work.then(
      (value) => {
        if (settled) return;
        done();
        resolve(value);
      },
      (error: unknown) => {
        if (settled) return;
        done();
        reject(error);
      },
    );
  });
}
