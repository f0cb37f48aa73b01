/**
 * The one bounded wait of the code base. It sits at the bottom of the layering (src/util/
 * imports no other src folder), so auth/ and store/ use it as freely as server/.
 */

/**
 * Settles like `work` if `work` settles within `ms`; otherwise like `onTimeout()` when the time
 * is up: what it returns resolves the result, what it throws rejects it (so each caller keeps
 * its own error, or gives up quietly by returning a value). `ms` ≤ 0 means the time is up
 * already: `onTimeout` runs at once.
 *
 * `work` is not cancelled (an `onTimeout` may abort it); its late outcome is dropped, never an
 * unhandled rejection. The timer is cleared as soon as `work` settles, so nothing lingers.
 */
export function withTimeout<T, F = never>(
  work: PromiseLike<T>,
  ms: number,
  onTimeout: () => F,
): Promise<T | F> {
  if (Number.isNaN(ms)) throw new TypeError('withTimeout: ms must be a number; received NaN');
  return new Promise<T | F>((resolve, reject) => {
    const expire = (): void => {
      try {
        resolve(onTimeout());
      } catch (error) {
        reject(error);
      }
    };
    // Handlers are attached in every case, so a late rejection of `work` is always handled.
    if (ms <= 0) {
      work.then(
        () => undefined,
        () => undefined,
      );
      expire();
      return;
    }
    const timer = setTimeout(expire, ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
