import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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

/** A listening reference server: its URL, and a close that drains, then cuts what lingers. */
export interface Listening {
  url: string;
  port: number;
  /** Stops accepting, closes idle connections, waits for the rest up to the drain timeout. */
  close(): Promise<void>;
}

/** Listens on `host:port` (0: any free port) and resolves once the server accepts. */
export async function listenDrainable(
  server: Server,
  host: string,
  port: number,
  drainTimeoutMs: number,
): Promise<Listening> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${hostInUrl}:${address.port}`,
    port: address.port,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timer = setTimeout(() => server.closeAllConnections(), drainTimeoutMs);
        await closed;
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
