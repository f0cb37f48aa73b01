import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the server saw of one request. */
export interface RecordedRequest {
  method: string;
  path: string;
  /** Parsed JSON body of an infer call; `undefined` otherwise. */
  body: unknown;
  /** The input rows of an infer call, reshaped from the flat data by its shape. */
  rows: number[][];
  /** The request headers of an infer call; `{}` otherwise. */
  headers: IncomingHttpHeaders;
}

/** How to answer one request. */
export type Action =
  /** A correct OIP answer: score = sum(row) / 100; `mutate` may spoil it. */
  | { kind: 'ok'; mutate?: (response: Record<string, unknown>) => unknown }
  | { kind: 'status'; status: number; body?: string }
  /** Never answer (the socket stays open until the server closes). */
  | { kind: 'hang' }
  /** Answer after `ms`. */
  | { kind: 'delay'; ms: number; then?: Action }
  /** Destroy the connection without a response. */
  | { kind: 'reset' }
  /** 200 with this raw body. */
  | { kind: 'raw'; body: string };

export type Behaviour = (request: RecordedRequest, index: number) => Action;

export interface FakeOipServer {
  url: string;
  /** Every request seen, in arrival order. */
  requests: RecordedRequest[];
  /** Infer requests only. */
  inferRequests(): RecordedRequest[];
  /** TCP connections accepted so far. */
  connections(): number;
  /** Replaces how requests are answered (index counts infer calls from 0). */
  behave(behaviour: Behaviour): void;
  close(): Promise<void>;
}

export const score = (row: readonly number[]): number => row.reduce((a, b) => a + b, 0) / 100;

const INFER_PATH = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?\/infer$/;
const READY_PATH = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?\/ready$/;
const META_PATH = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?$/;

function reshape(body: unknown): number[][] {
  const input = (body as { inputs?: { shape?: number[]; data?: number[] }[] }).inputs?.[0];
  const [n = 0, f = 0] = input?.shape ?? [];
  const data = input?.data ?? [];
  const rows: number[][] = [];
  for (let r = 0; r < n; r++) rows.push(data.slice(r * f, (r + 1) * f));
  return rows;
}

/**
 * A tiny OIP v2 server on loopback whose answers a test controls: correct scores, status
 * codes, hangs, resets, malformed bodies. It records every request so tests can count calls
 * and inspect what was sent.
 */
export async function startFakeOipServer(initial?: Behaviour): Promise<FakeOipServer> {
  const requests: RecordedRequest[] = [];
  let behaviour: Behaviour = initial ?? (() => ({ kind: 'ok' }));
  let inferIndex = 0;

  function respond(res: ServerResponse, recorded: RecordedRequest, action: Action): void {
    switch (action.kind) {
      case 'ok': {
        const match = INFER_PATH.exec(recorded.path);
        const response: Record<string, unknown> = {
          model_name: decodeURIComponent(match?.[1] ?? ''),
          model_version: decodeURIComponent(match?.[2] ?? '7'),
          outputs: [
            {
              name: 'probability',
              datatype: 'FP32',
              shape: [recorded.rows.length, 1],
              data: recorded.rows.map(score),
            },
          ],
        };
        const mutated = action.mutate ? action.mutate(response) : response;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(mutated));
        return;
      }
      case 'status':
        res.writeHead(action.status, { 'content-type': 'application/json' });
        res.end(action.body ?? JSON.stringify({ error: `status ${action.status}` }));
        return;
      case 'hang':
        return;
      case 'delay':
        setTimeout(() => respond(res, recorded, action.then ?? { kind: 'ok' }), action.ms);
        return;
      case 'reset':
        res.socket?.destroy();
        return;
      case 'raw':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(action.body);
        return;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const path = req.url ?? '';
    const method = req.method ?? '';
    if (method === 'POST' && INFER_PATH.test(path)) {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end(JSON.stringify({ error: 'bad json' }));
        return;
      }
      const recorded: RecordedRequest = {
        method,
        path,
        body,
        rows: reshape(body),
        headers: req.headers,
      };
      requests.push(recorded);
      respond(res, recorded, behaviour(recorded, inferIndex++));
      return;
    }
    requests.push({ method, path, body: undefined, rows: [], headers: {} });
    if (method === 'GET' && path === '/v2/health/ready') {
      res.writeHead(200).end();
      return;
    }
    const ready = READY_PATH.exec(path);
    if (method === 'GET' && ready) {
      const known = ready[1] === 'churn';
      res.writeHead(known ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(known ? { name: 'churn', ready: true } : { error: 'unknown model' }));
      return;
    }
    const meta = META_PATH.exec(path);
    if (method === 'GET' && meta) {
      if (meta[1] !== 'churn') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'unknown model' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          name: 'churn',
          versions: ['1', '2'],
          platform: 'onnxruntime_onnx',
          inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 5] }],
          outputs: [{ name: 'probability', datatype: 'FP32', shape: [-1, 1] }],
        }),
      );
      return;
    }
    res.writeHead(404).end(JSON.stringify({ error: 'not found' }));
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.socket?.destroy());
  });
  let connections = 0;
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    inferRequests: () => requests.filter((r) => r.method === 'POST'),
    connections: () => connections,
    behave(next) {
      behaviour = next;
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}
