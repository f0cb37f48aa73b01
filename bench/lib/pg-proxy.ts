/**
 * A counting TCP proxy in front of the local PostgreSQL, for round trips that no counter of
 * PostgreSQL's own shows (`pg_stat_database` counts transactions, not messages; a gateway in
 * another process cannot share an in-process hook). It reads the protocol's framing in both
 * directions and counts, per connection:
 *
 * - round trips: `ReadyForQuery` messages the server sent. A client that waits for an answer
 *   waits for exactly one: after a simple `Query` (however many statements it holds) and after
 *   each `Sync` of the extended protocol (Parse/Bind/Describe/Execute/Sync, one write). The
 *   first one of a connection ends its start-up, counted apart as a connection;
 * - statements: `Execute` messages (the parameterised statements; BEGIN/COMMIT and the isolation
 *   prelude are simple queries, counted apart with their text).
 *
 * Bytes are forwarded untouched as they arrive; only the framing is parsed. Used for counting
 * only, never in the path of a timed run (it costs this process's CPU).
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** Counters of one connection (or the sum of several). */
export interface WireCounts {
  connections: number;
  /** ReadyForQuery after start-up: one per request the client waited for. */
  roundTrips: number;
  /** Execute messages: parameterised statements. */
  executes: number;
  /** Simple-protocol queries, by their text (normalised whitespace, first 160 characters). */
  simpleQueries: Record<string, number>;
}

interface ConnectionCounts extends WireCounts {
  database: string;
  applicationName: string;
}

export interface CountingProxy {
  /** `postgres://…` URL of `database` through the proxy. */
  url(database: string): string;
  /** Sum over connections of `database` opened with `application_name` (all if omitted). */
  counts(database: string, applicationName?: string): WireCounts;
  close(): Promise<void>;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

function emptyCounts(): WireCounts {
  return { connections: 0, roundTrips: 0, executes: 0, simpleQueries: {} };
}

/** Difference of two readings (`after − before`), simple queries included. */
export function wireDelta(after: WireCounts, before: WireCounts): WireCounts {
  const simpleQueries: Record<string, number> = {};
  for (const [text, n] of Object.entries(after.simpleQueries)) {
    const d = n - (before.simpleQueries[text] ?? 0);
    if (d !== 0) simpleQueries[text] = d;
  }
  return {
    connections: after.connections - before.connections,
    roundTrips: after.roundTrips - before.roundTrips,
    executes: after.executes - before.executes,
    simpleQueries,
  };
}

/** Splits a byte stream into protocol messages; `onMessage` gets each type and its body. */
function framer(
  startup: boolean,
  onMessage: (type: number, body: Buffer | undefined) => void,
  wantsBody: (type: number) => boolean,
  onStartup?: (body: Buffer) => 'continue' | 'ssl-byte' | 'opaque',
): { push(chunk: Buffer): void; expectSslByte(): void } {
  let pending = Buffer.alloc(0);
  let skip = 0;
  let awaitingStartup = startup;
  let sslByte = false;
  let opaque = false;
  return {
    expectSslByte() {
      sslByte = true;
    },
    push(chunk) {
      if (opaque) return;
      let data = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      pending = Buffer.alloc(0);
      if (skip > 0) {
        const n = Math.min(skip, data.length);
        skip -= n;
        data = data.subarray(n);
      }
      for (;;) {
        if (sslByte) {
          if (data.length < 1) break;
          sslByte = false;
          // 'S' would start TLS: nothing after it can be read.
          if (data[0] === 0x53) {
            opaque = true;
            return;
          }
          data = data.subarray(1);
          continue;
        }
        if (awaitingStartup) {
          if (data.length < 4) break;
          const length = data.readInt32BE(0);
          if (data.length < length) break;
          const verdict = onStartup?.(data.subarray(4, length)) ?? 'continue';
          if (verdict === 'opaque') {
            opaque = true;
            return;
          }
          // After an SSL/GSS request the client sends its real start-up message.
          awaitingStartup = verdict === 'ssl-byte';
          data = data.subarray(length);
          continue;
        }
        if (data.length < 5) break;
        const type = data[0] as number;
        const length = data.readInt32BE(1);
        const total = 1 + length;
        if (wantsBody(type)) {
          if (data.length < total) break;
          onMessage(type, data.subarray(5, total));
          data = data.subarray(total);
        } else {
          onMessage(type, undefined);
          if (data.length < total) {
            skip = total - data.length;
            data = Buffer.alloc(0);
            break;
          }
          data = data.subarray(total);
        }
      }
      if (data.length > 0) pending = Buffer.from(data);
    },
  };
}

function startupParameters(body: Buffer): Record<string, string> {
  const parts = body.subarray(4).toString('utf8').split('\0');
  const params: Record<string, string> = {};
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const key = parts[i];
    if (!key) break;
    params[key] = parts[i + 1] ?? '';
  }
  return params;
}

function normalise(sql: string): string {
  return sql.replace(/\s+/g, ' ').trim().slice(0, 160);
}

/** Starts the proxy on 127.0.0.1 (a free port) in front of `upstreamHost:upstreamPort`. */
export async function startCountingProxy(
  upstreamHost = '127.0.0.1',
  upstreamPort = 5432,
  user = 'postgres',
): Promise<CountingProxy> {
  const connections: ConnectionCounts[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: upstreamHost, port: upstreamPort });
    sockets.add(client);
    sockets.add(upstream);
    const counts: ConnectionCounts = {
      ...emptyCounts(),
      connections: 1,
      database: '',
      applicationName: '',
    };
    connections.push(counts);
    let started = false;
    const fromServer = framer(
      false,
      (type) => {
        if (type !== 0x5a) return; // 'Z' ReadyForQuery
        if (!started) started = true;
        else counts.roundTrips += 1;
      },
      () => false,
    );
    const fromClient = framer(
      true,
      (type, body) => {
        if (type === 0x45) counts.executes += 1; // 'E' Execute
        if (type === 0x51 && body) {
          // 'Q' Query: text up to the terminating NUL
          const text = normalise(body.subarray(0, body.length - 1).toString('utf8'));
          counts.simpleQueries[text] = (counts.simpleQueries[text] ?? 0) + 1;
        }
      },
      (type) => type === 0x51,
      (body) => {
        const code = body.readInt32BE(0);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          fromServer.expectSslByte();
          return 'ssl-byte';
        }
        if (code === CANCEL_REQUEST) return 'opaque';
        const params = startupParameters(body);
        counts.database = params.database ?? params.user ?? '';
        counts.applicationName = params.application_name ?? '';
        return 'continue';
      },
    );
    client.on('data', (chunk: Buffer) => fromClient.push(chunk));
    upstream.on('data', (chunk: Buffer) => fromServer.push(chunk));
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy: no TCP address');
  const port = address.port;
  return {
    url: (database) => `postgres://${user}@127.0.0.1:${port}/${database}`,
    counts(database, applicationName) {
      const sum = emptyCounts();
      for (const c of connections) {
        if (c.database !== database) continue;
        if (applicationName !== undefined && c.applicationName !== applicationName) continue;
        sum.connections += c.connections;
        sum.roundTrips += c.roundTrips;
        sum.executes += c.executes;
        for (const [text, n] of Object.entries(c.simpleQueries)) {
          sum.simpleQueries[text] = (sum.simpleQueries[text] ?? 0) + n;
        }
      }
      return sum;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
