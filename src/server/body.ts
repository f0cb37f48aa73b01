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
  const reading = collect(req, limit);
  let buffer: Buffer;
  if (timeoutMs === undefined) {
    buffer = await reading;
  } else {
    // The reader left behind settles when the connection closes after the 408; never unhandled.
    reading.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(bodyTimeout(timeoutMs)), timeoutMs);
    });
    try {
      buffer = await Promise.race([reading, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
  try {
    return decoder.decode(buffer);
  } catch {
    throw new GatewayError('BAD_USER_INPUT', 'The request body is not valid UTF-8.');
  }
}

async function collect(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw tooLarge(limit);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof GatewayError) throw error;
    // The client went away mid-body (ECONNRESET "aborted"): its mistake, not ours to log.
    throw new GatewayError('BAD_USER_INPUT', 'The request body was not received completely.', {
      extensions: { reason: 'BODY_INCOMPLETE' },
    });
  }
  return Buffer.concat(chunks, size);
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
