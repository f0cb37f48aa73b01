import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors.js';

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads a request body up to `limit` bytes. A larger body is refused as soon as it passes the
 * limit (by Content-Length or by counting), without buffering the rest.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
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
  try {
    return decoder.decode(Buffer.concat(chunks, size));
  } catch {
    throw new GatewayError('BAD_USER_INPUT', 'The request body is not valid UTF-8.');
  }
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
