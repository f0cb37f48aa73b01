import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../src/errors.js';
import { readBody } from '../../../src/server/body.js';

const LIMIT = 64;
const TIMEOUT_MS = 300;

/** What the server's readBody made of each request, by the request's path. */
interface Outcome {
  text?: string;
  status?: number;
  reason?: unknown;
}
const outcomes = new Map<string, Promise<Outcome>>();
let server: Server;
let port: number;

beforeAll(async () => {
  server = createServer((req, res) => {
    const outcome: Promise<Outcome> = readBody(req, LIMIT, TIMEOUT_MS).then(
      (text) => ({ text }),
      (error: unknown) => {
        if (!isGatewayError(error)) throw error;
        return { status: error.status ?? 400, reason: error.extensions.reason };
      },
    );
    outcomes.set(req.url ?? '', outcome);
    void outcome.then(({ status }) => {
      res.statusCode = status ?? 200;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Sends `chunks` as a chunked upload (no Content-Length), `pauseMs` apart; `end` or not. */
function upload(path: string, chunks: Buffer[], options: { pauseMs?: number; end?: boolean } = {}) {
  const req = request({ port, host: '127.0.0.1', method: 'POST', path });
  req.on('error', () => undefined);
  const answered = new Promise<number>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('close', () => resolve(0));
  });
  void (async () => {
    for (const chunk of chunks) {
      if (req.destroyed) return;
      req.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, options.pauseMs ?? 5));
    }
    if (options.end ?? true) req.end();
  })();
  return { req, answered };
}

/** Resolves once the server is reading the request at `path`. */
async function arrived(path: string): Promise<void> {
  for (let waited = 0; !outcomes.has(path) && waited < 2_000; waited += 10) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function outcomeOf(path: string) {
  await arrived(path);
  return outcomes.get(path);
}

describe('readBody', () => {
  it('joins a body sent in pieces, a character split across two of them included', async () => {
    const text = JSON.stringify({ query: '{ a }', name: 'Zoë €' });
    const bytes = Buffer.from(text);
    const cut = bytes.indexOf(Buffer.from('€')) + 1;
    const { answered } = upload('/pieces', [bytes.subarray(0, cut), bytes.subarray(cut)]);
    expect(await answered).toBe(200);
    expect(await outcomeOf('/pieces')).toEqual({ text });
  });

  it('refuses a body that grows past the limit without a Content-Length (413)', async () => {
    const { answered } = upload('/big', [Buffer.alloc(40, 'a'), Buffer.alloc(40, 'b')], {
      end: false,
    });
    expect(await outcomeOf('/big')).toEqual({ status: 413, reason: 'PAYLOAD_TOO_LARGE' });
    expect(await answered).toBe(413);
  });

  it('refuses bytes that are not UTF-8', async () => {
    upload('/latin1', [Buffer.from([0x7b, 0xe9, 0x7d])]);
    expect(await outcomeOf('/latin1')).toEqual({ status: 400, reason: undefined });
  });

  it('refuses a body that does not arrive in time (408)', async () => {
    const { answered } = upload('/slow', [Buffer.from('{"query"')], { end: false });
    expect(await outcomeOf('/slow')).toEqual({ status: 408, reason: 'BODY_TIMEOUT' });
    expect(await answered).toBe(408);
  });

  it('tells a body whose client went away mid-way (BODY_INCOMPLETE)', async () => {
    const { req } = upload('/gone', [Buffer.from('{"query"')], { end: false });
    await arrived('/gone');
    await new Promise((resolve) => setTimeout(resolve, 20));
    req.destroy();
    expect(await outcomeOf('/gone')).toEqual({ status: 400, reason: 'BODY_INCOMPLETE' });
  });
});
