/**
 * The child side of services/spawn-process.ts, shared by every reference service's main: the
 * one stdout line its parent waits for, then a drain on SIGTERM or SIGINT (exit 0, or 1 when
 * closing fails).
 */
export function announceAndDrain(
  name: string,
  server: { url: string; close(): Promise<void> },
  log: (message: string) => void,
): void {
  console.log(`${name} listening on ${server.url}`);
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal} received, draining`);
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log(`error while stopping: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
