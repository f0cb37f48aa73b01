import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

/**
 * What the proxy does with traffic: `pass` forwards it; `slow` forwards each chunk after
 * `delayMs`; `blackhole` accepts and never forwards; `reset` answers every connection (new and
 * existing) with a TCP reset; `down` stops listening (connection refused).
 */
export type ProxyMode =
  | { kind: 'pass' }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'blackhole' }
  | { kind: 'reset' }
  | { kind: 'down' };

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  setMode(mode: ProxyMode): Promise<void>;
  close(): Promise<void>;
}

/** A loopback TCP proxy in front of `target` whose behaviour a test switches at run time. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = { kind: 'pass' };
  let accepted = 0;
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  const timers = new Set<NodeJS.Timeout>();

  const relay = (from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (mode.kind === 'blackhole') return;
      if (mode.kind === 'slow') {
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!to.destroyed) to.write(chunk);
        }, mode.delayMs);
        timers.add(timer);
        return;
      }
      if (!to.destroyed) to.write(chunk);
    });
  };

  const onConnection = (client: Socket) => {
    accepted += 1;
    if (mode.kind === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target);
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    relay(client, upstream);
    relay(upstream, client);
  };

  let server: Server = createServer(onConnection);
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });
  const port = await listen(0);
  const stopListening = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });

  return {
    port,
    get connections() {
      return accepted;
    },
    async setMode(next) {
      const wasDown = mode.kind === 'down';
      mode = next;
      if (next.kind === 'reset' || next.kind === 'down') {
        for (const { client, upstream } of pairs) {
          client.resetAndDestroy();
          upstream.destroy();
        }
        pairs.clear();
      }
      if (next.kind === 'down') await stopListening();
      if (wasDown && next.kind !== 'down') {
        server = createServer(onConnection);
        await listen(port);
      }
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await stopListening();
    },
  };
}
