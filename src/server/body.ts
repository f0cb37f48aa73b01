import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors.js';

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads a request body up to `limit` bytes. A larger body is refused as soon as it passes the
 * limit (by Content-Length or by counting), without buffering the rest. With `timeoutMs`, a
 * body not complete by then is refused with 408 and `Connection: close`: a slow upload must not
 * hold its request (and the tenant's concurrency lease) for as long as the client likes.
 */
export async function readBody(
  req: IncomingMessage,
  limit: number,
  timeoutMs?: number,
): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const buffer = await collect(req, limit, timeoutMs);
  try {
    return decoder.decode(buffer);
  } catch {
    throw new GatewayError('BAD_USER_INPUT', 'The request body is not valid UTF-8.');
  }
}

/**
 * The body's bytes, from the stream's events (no async iterator, one timer). Once it settles
 * the listeners are gone; a body refused for its size or time is not read further (the
 * connection closes after the answer).
 */
function collect(req: IncomingMessage, limit: number, timeoutMs?: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (error: GatewayError | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      // The 'error' listener stays: a late error of a body no longer read is nobody's crash.
      if (error === undefined) resolve(Buffer.concat(chunks, size));
      else {
        // Nothing more is read: the stream stays paused until the connection closes.
        req.pause();
        reject(error);
      }
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) settle(tooLarge(limit));
      else chunks.push(chunk);
    };
    const onEnd = (): void => settle(undefined);
    // The client went away mid-body (ECONNRESET "aborted"): its mistake, not ours to log.
    const onIncomplete = (): void => settle(incomplete());
    const onClose = (): void => {
      if (!req.complete) settle(incomplete());
    };
    if (timeoutMs !== undefined)
      timer = setTimeout(() => settle(bodyTimeout(timeoutMs)), timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onIncomplete);
    req.on('close', onClose);
  });
}

function incomplete(): GatewayError {
  return new GatewayError('BAD_USER_INPUT', 'The request body was not received completely.', {
    extensions: { reason: 'BODY_INCOMPLETE' },
  });
}

function bodyTimeout(ms: number): GatewayError {
  return new GatewayError('BAD_USER_INPUT', `The request body did not arrive within ${ms} ms.`, {
    status: 408,
    // The rest of the body may still be on its way: the connection cannot be reused.
    headers: { Connection: 'close' },
    extensions: { reason: 'BODY_TIMEOUT' },
  });
}

function tooLarge(limit: number): GatewayError {
  return new GatewayError('BAD_USER_INPUT', `The request body is larger than ${limit} bytes.`, {
    status: 413,
    extensions: { reason: 'PAYLOAD_TOO_LARGE' },
  });
}

/**
 * Parses a JSON body when the content type says JSON; anything else is handed on as text so
 * that Apollo Server gives its own coded 400/415 answer (and CSRF prevention sees the type).
 */
export function parseBody(text: string, contentType: string | undefined): unknown {
  if (text.length === 0) return undefined;
  const type = contentType?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json' && type !== 'application/graphql-response+json') return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new GatewayError('BAD_USER_INPUT', 'The request body is not valid JSON.', {
      extensions: { reason: 'MALFORMED_JSON' },
    });
  }
}
