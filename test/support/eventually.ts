/**
 * Retries `check` until it neither throws nor returns `false`, for at most `timeoutMs`; then
 * rethrows its last failure. Resolves to what `check` returned. For effects that land just
 * after the answer (a response's `close` event, a pub/sub message, a pool closing).
 */
export async function eventually<T>(
  check: () => T | Promise<T>,
  timeoutMs = 2_000,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value !== false) return value;
      throw new Error(`condition not met within ${timeoutMs} ms`);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }
}
